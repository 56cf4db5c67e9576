#!/usr/bin/env python3
"""Self-test of bench/agreement.py: /usr/bin/python3 bench/test_agreement.py

Checks Welch's test, TOST, the verdict rule and the paired test on fixed numbers against
hand-written formulas, against values computed once with scipy 1.10.1 (so the numbers are
checked even where scipy is missing) and, when scipy is installed, against scipy itself. Every
check runs twice: with scipy's t distribution and with agreement.py's own fallback.
"""

import math
import os
import sys
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agreement  # noqa: E402

try:
    import numpy as np
    from scipy import stats
except ImportError:
    stats = None

# name: (a, b, expected verdict at margin 1, alpha 0.05,
#        scipy 1.10.1: Welch t, Welch p, TOST p_lower, TOST p_upper)
# p_lower = ttest_ind(a, b - 1, equal_var=False, alternative="greater").pvalue,
# p_upper = ttest_ind(a, b + 1, equal_var=False, alternative="less").pvalue.
kCases = {
    # 5 points apart, tight seeds: Welch rejects, TOST cannot.
    "different": ([90.1, 90.3, 90.2], [85.0, 85.2, 84.9], "different",
                  49.01530373260979, 5.004385222059946e-06, 1.3602424375385042e-06,
                  0.999994752003077),
    # 0.02 apart, sd 0.05: TOST rejects both one-sided nulls.
    "equivalent": ([90.00, 90.05, 90.10], [90.02, 90.07, 90.12], "equivalent",
                   -0.4898979485565312, 0.6498602432867739, 8.931134399882331e-06,
                   7.617178518074832e-06),
    # 1 point apart, sd 2: neither test rejects.
    "inconclusive": ([88.0, 90.0, 92.0], [89.0, 91.0, 87.0], "inconclusive",
                     0.6123724356957945, 0.5733922538253555, 0.1439320673633454, 0.5),
    # 0.5 apart, sd 0.01: significant, but inside the margin: equivalence takes precedence.
    "significant but within the margin": (
        [90.50, 90.51, 90.49], [90.00, 90.01, 89.99], "equivalent",
        61.23724356954813, 4.259092087173392e-07, 2.6332246909906275e-09,
        2.129546043586696e-07),
    # 1.15 apart, unequal n-1 spreads: different.
    "different, 4 seeds": ([90.0, 90.4, 90.8, 91.2], [89.0, 89.3, 89.6, 89.9], "different",
                           3.563144678510835, 0.013493346977069795, 0.0003768035462920791,
                           0.6701339873609815),
}


def hand_welch(a, b):
    """Welch's t and df written out from the textbook formulas."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    se2 = va / na + vb / nb
    df = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return (ma - mb) / math.sqrt(se2), df, ma - mb, math.sqrt(se2)


class Base(unittest.TestCase):
    fallback = False

    def setUp(self):
        agreement._force_fallback = self.fallback

    def tearDown(self):
        agreement._force_fallback = False

    def close(self, x, y, rel=1e-9, abs_=1e-12):
        self.assertTrue(math.isclose(x, y, rel_tol=rel, abs_tol=abs_), f"{x} != {y}")


class TestTDistribution(Base):
    def test_known_values(self):
        # scipy 1.10.1: t.sf(2.0, 3.7), t.ppf(0.975, 2.3); closed forms for df = 1 and 2.
        self.close(agreement.t_sf(2.0, 3.7), 0.06090860095261697, rel=1e-9)
        self.close(agreement.t_ppf(0.975, 2.3), 3.8071632082582774, rel=1e-9)
        for t in (-3.0, -0.5, 0.0, 0.7, 4.0):
            self.close(agreement.t_cdf(t, 1), 0.5 + math.atan(t) / math.pi, rel=1e-10)
            self.close(agreement.t_cdf(t, 2), 0.5 + t / (2 * math.sqrt(2 + t * t)), rel=1e-10)
        self.assertEqual(agreement.t_sf(math.inf, 3), 0.0)
        self.assertEqual(agreement.t_sf(-math.inf, 3), 1.0)

    @unittest.skipIf(stats is None, "scipy not installed")
    def test_against_scipy(self):
        for df in (1.0, 1.7, 2.0, 3.3, 4.0, 9.5, 30.0):
            for t in (-8.0, -2.1, -0.3, 0.0, 0.4, 1.9, 6.0, 40.0):
                self.close(agreement.t_sf(t, df), float(stats.t.sf(t, df)), rel=1e-8,
                           abs_=1e-15)
            for q in (0.9, 0.95, 0.975, 0.995):
                self.close(agreement.t_ppf(q, df), float(stats.t.ppf(q, df)), rel=1e-8)


class TestWelchTost(Base):
    def test_fixed_cases(self):
        for name, (a, b, expected, t, p, p_lower, p_upper) in kCases.items():
            with self.subTest(name):
                r = agreement.verdict(a, b, margin=1.0, alpha=0.05)
                ht, hdf, hdiff, hse = hand_welch(a, b)
                self.close(r["t"], ht, rel=1e-12)
                self.close(r["df"], hdf, rel=1e-12)
                self.close(r["diff"], hdiff, rel=1e-12)
                self.close(r["se"], hse, rel=1e-12)
                self.close(r["t"], t, rel=1e-9)
                self.close(r["p"], p, rel=1e-7)
                self.close(r["p_lower"], p_lower, rel=1e-7)
                self.close(r["p_upper"], p_upper, rel=1e-7)
                self.close(r["t_lower"], (hdiff + 1.0) / hse, rel=1e-12)
                self.close(r["t_upper"], (hdiff - 1.0) / hse, rel=1e-12)
                self.close(r["p_tost"], max(p_lower, p_upper), rel=1e-7)
                self.assertEqual(r["verdict"], expected, r["reason"])
                # TOST at alpha <=> the (1 - 2 alpha) interval inside (-margin, margin)
                lo, hi = r["ci_tost"]
                self.assertEqual(r["equivalent"], -1.0 < lo and hi < 1.0)

    @unittest.skipIf(stats is None, "scipy not installed")
    def test_against_scipy(self):
        for name, (a, b, *_rest) in kCases.items():
            with self.subTest(name):
                r = agreement.tost(a, b, margin=1.0, alpha=0.05)
                w = stats.ttest_ind(a, b, equal_var=False)
                self.close(r["t"], float(w.statistic), rel=1e-9)
                self.close(r["p"], float(w.pvalue), rel=1e-7)
                lo = stats.ttest_ind(a, np.array(b) - 1.0, equal_var=False,
                                     alternative="greater")
                hi = stats.ttest_ind(a, np.array(b) + 1.0, equal_var=False, alternative="less")
                self.close(r["p_lower"], float(lo.pvalue), rel=1e-7)
                self.close(r["p_upper"], float(hi.pvalue), rel=1e-7)
                # the (1 - alpha) interval of the difference
                q = float(stats.t.ppf(0.975, r["df"]))
                self.close(r["ci"][0], r["diff"] - q * r["se"], rel=1e-8)
                self.close(r["ci"][1], r["diff"] + q * r["se"], rel=1e-8)

    def test_margin_and_alpha(self):
        a, b = kCases["inconclusive"][:2]
        # a wide margin makes the 'inconclusive' case equivalent
        self.assertEqual(agreement.verdict(a, b, margin=20.0)["verdict"], "equivalent")
        # a 5-point gap is equivalent under a 10-point margin
        a, b = kCases["different"][:2]
        self.assertEqual(agreement.verdict(a, b, margin=10.0)["verdict"], "equivalent")
        with self.assertRaises(ValueError):
            agreement.tost(a, b, margin=0.0)

    def test_zero_variance_both(self):
        # identical constant samples: the difference is exact
        r = agreement.verdict([90.0] * 3, [90.0] * 3, margin=1.0)
        self.assertEqual((r["verdict"], r["p"], r["p_tost"]), ("equivalent", 1.0, 0.0))
        r = agreement.verdict([90.0] * 3, [90.5] * 3, margin=1.0)
        self.assertEqual((r["verdict"], r["p"], r["p_tost"]), ("equivalent", 0.0, 0.0))
        r = agreement.verdict([90.0] * 3, [88.0] * 3, margin=1.0)
        self.assertEqual((r["verdict"], r["p"], r["p_tost"]), ("different", 0.0, 1.0))
        r = agreement.verdict([91.0] * 2, [90.0] * 3, margin=1.0)  # |diff| == margin
        self.assertEqual(r["verdict"], "different")
        self.assertEqual(r["diff"], 1.0)

    def test_zero_variance_one_group(self):
        # one constant group: ordinary Welch with df = n - 1 of the other group
        a, b = [90.0, 90.0, 90.0], [89.0, 90.0, 91.0]
        r = agreement.verdict(a, b)
        self.close(r["df"], 2.0, rel=1e-12)
        self.close(r["se"], math.sqrt(1.0 / 3.0), rel=1e-12)
        self.assertEqual(r["verdict"], "inconclusive")
        if stats is not None:
            with warnings.catch_warnings():  # scipy warns about the constant group
                warnings.simplefilter("ignore", RuntimeWarning)
                p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
            self.close(r["p"], p, rel=1e-8)

    def test_too_few_values(self):
        r = agreement.verdict([90.0], [85.0, 85.5])
        self.assertEqual(r["verdict"], "inconclusive")
        self.assertIsNone(r["p"])
        self.assertEqual(r["diff"], 90.0 - 85.25)
        r = agreement.verdict([], [85.0, 85.5])
        self.assertEqual(r["verdict"], "inconclusive")
        self.assertIsNone(r["diff"])
        r = agreement.verdict([90.0, None, 91.0], [85.0, 85.5])  # None (failed run) dropped
        self.assertEqual(r["n_a"], 2)


class TestPaired(Base):
    def test_paired(self):
        a = {0: 90.0, 1: 91.0, 2: 89.5}
        b = {0: 89.0, 1: 90.5, 2: 89.7, 3: 50.0}  # seed 3 has no partner: ignored
        r = agreement.paired(a, b)
        self.assertEqual(r["seeds"], [0, 1, 2])
        for x, y in zip(r["diffs"], [1.0, 0.5, -0.2]):
            self.close(x, y, rel=1e-12, abs_=1e-12)
        self.close(r["mean"], 1.3 / 3, rel=1e-12)
        # scipy 1.10.1: ttest_rel([90, 91, 89.5], [89, 90.5, 89.7]) = (1.2451741707874910,
        # 0.3391728618920482, df 2)
        self.close(r["t"], 1.245174170787491, rel=1e-9)
        self.close(r["p"], 0.3391728618920482, rel=1e-7)
        self.assertEqual(r["df"], 2)
        if stats is not None:
            s = stats.ttest_rel([a[k] for k in r["seeds"]], [b[k] for k in r["seeds"]])
            self.close(r["t"], float(s.statistic), rel=1e-9)
            self.close(r["p"], float(s.pvalue), rel=1e-8)

    def test_paired_edge_cases(self):
        r = agreement.paired({0: 90.0}, {0: 89.0})
        self.assertEqual((r["n"], r["mean"], r["sd"], r["p"]), (1, 1.0, None, None))
        r = agreement.paired({0: 90.0, 1: 91.0}, {0: 89.0, 1: 90.0})  # constant difference
        self.assertEqual((r["sd"], r["p"]), (0.0, 0.0))
        r = agreement.paired({0: 90.0, 1: None}, {0: 89.0, 1: 90.0})
        self.assertEqual(r["seeds"], [0])

    def test_per_image(self):
        labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        pa = [0, 1, 2, 3, 4, 5, 6, 7, 0, 0]  # 8 right
        pb = [0, 1, 2, 3, 4, 5, 0, 0, 8, 0]  # 7 right
        r = agreement.per_image(pa, pb, labels)
        self.assertEqual((r["n"], r["only_a"], r["only_b"]), (10, 2, 1))
        self.close(r["same"], 0.7)
        self.close(r["acc_a"], 80.0)
        self.close(r["acc_b"], 70.0)
        self.close(r["mcnemar_p"], 1.0)  # 2 vs 1 discordant: 2 * P(X <= 1 | n=3) = 1
        self.close(agreement.binom_two_sided_half(0, 10), 2.0 / 1024)
        if stats is not None:
            self.close(agreement.binom_two_sided_half(3, 17),
                       float(stats.binomtest(3, 17, 0.5).pvalue), rel=1e-12)


class TestWelchTostFallback(TestWelchTost):
    fallback = True


class TestTDistributionFallback(TestTDistribution):
    fallback = True


class TestPairedFallback(TestPaired):
    fallback = True


if __name__ == "__main__":
    print(f"scipy: {'not installed' if stats is None else stats.__name__ + ' available'}")
    unittest.main(verbosity=2)
