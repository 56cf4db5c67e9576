#!/usr/bin/env python3
"""Statistical agreement of two systems' per-seed accuracies (bench/s0_bench.py, issue 10).

a and b are the final validation accuracies (in %, one per seed) of two systems on one
configuration, e.g. a = normlab, b = a PyTorch peer. Every difference is a - b.

welch(a, b, alpha)
    Welch's two-sample t-test (unequal variances, Welch-Satterthwaite degrees of freedom),
    two-sided: H0 mean(a) == mean(b). Same numbers as
    scipy.stats.ttest_ind(a, b, equal_var=False). Also the (1 - alpha) confidence interval
    of the difference.

tost(a, b, margin, alpha)
    Two one-sided Welch t-tests of equivalence (Schuirmann's TOST) with margin m > 0:
      lower: H0 diff <= -m  vs  H1 diff > -m,    t = (diff + m) / se, p = P(T >= t)
      upper: H0 diff >= +m  vs  H1 diff < +m,    t = (diff - m) / se, p = P(T <= t)
    with T ~ Student t(df), df and se as in welch. Equivalent when both reject at alpha,
    i.e. p_tost = max(p_lower, p_upper) < alpha; this is the same as the (1 - 2 alpha)
    confidence interval of the difference lying inside (-m, m).

verdict(a, b, margin, alpha)   -- the rule printed by the bench
    "equivalent"    TOST rejects both one-sided nulls (p_tost < alpha);
    "different"     otherwise, when Welch's two-sided p < alpha;
    "inconclusive"  otherwise (neither shown equal within the margin nor shown different),
                    and always when a system has fewer than 2 values (no variance estimate).
    Equivalence takes precedence: a difference that is statistically significant but whose
    (1 - 2 alpha) interval lies inside (-m, m) is "equivalent" (it is smaller than the
    margin we care about).

Zero variance in both groups (se = 0, e.g. identical constant samples): the tests are
degenerate, and the limits are used: the difference is known exactly, so Welch's p is 1 when
diff == 0 and 0 otherwise, and TOST's p is 0 when |diff| < m and 1 otherwise. Hence
constant samples are "equivalent" when |diff| < m and "different" when |diff| >= m.
If only one group has zero variance, se > 0 and the ordinary formulas apply (df = n - 1 of
the other group).

paired(a_by_seed, b_by_seed)
    The per-seed differences a[s] - b[s] over the seeds both have, their mean and sample sd,
    and the paired t-test (scipy.stats.ttest_rel). The pairing is by seed number: both
    systems use the same seed number and the same data subset and validation images, but
    their random streams (initial head weights, shuffling, augmentation, dropout) differ,
    so the pairs share the data, not the randomness.

per_image(pred_a, pred_b, labels)
    When both systems' per-image predictions on the same validation images are available:
    the fraction of images with the same predicted class, and the discordant counts (right
    in a only, right in b only) with McNemar's exact two-sided test.

scipy.stats provides the Student t distribution when installed; without it a small
implementation (regularized incomplete beta function, Lentz's continued fraction) is used.
`/usr/bin/python3 bench/test_agreement.py` checks both.
"""

import math
import statistics

try:
    from scipy import stats as _scipy_stats
except ImportError:  # pragma: no cover - exercised by the self-test with force_fallback
    _scipy_stats = None

_force_fallback = False  # the self-test sets this to check the fallback against scipy


# ---------------------------------------------------------------------------------------------
# Student t distribution


def _betacf(a, b, x):
    """Continued fraction of the regularized incomplete beta (Numerical Recipes 6.4, modified
    Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
           + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_sf(t, df):
    """P(T >= t) for T ~ Student t(df), df > 0 (not necessarily an integer)."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if _scipy_stats is not None and not _force_fallback:
        return float(_scipy_stats.t.sf(t, df))
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T >= |t|)
    return tail if t >= 0 else 1.0 - tail


def t_cdf(t, df):
    """P(T <= t)."""
    return t_sf(-t, df)


def t_ppf(q, df):
    """The q quantile of Student t(df), 0 < q < 1."""
    if _scipy_stats is not None and not _force_fallback:
        return float(_scipy_stats.t.ppf(q, df))
    lo, hi = -1.0, 1.0
    while t_cdf(lo, df) > q:
        lo *= 2.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):  # bisection to machine precision
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------------------------
# Tests


def _clean(values):
    return [float(v) for v in values if v is not None]


def _moments(values):
    n = len(values)
    mean = statistics.fmean(values) if n else None
    var = statistics.variance(values) if n > 1 else None
    return n, mean, var


def welch(a, b, alpha=0.05):
    """Welch's t-test of mean(a) == mean(b), two-sided. Returns a dict: n_a, n_b, mean_a,
    mean_b, sd_a, sd_b, diff, se, df, t, p, ci (the (1 - alpha) interval of the difference;
    None where undefined). p, t, df, se and ci are None when a group has fewer than 2 values."""
    a, b = _clean(a), _clean(b)
    n_a, mean_a, var_a = _moments(a)
    n_b, mean_b, var_b = _moments(b)
    out = {"n_a": n_a, "n_b": n_b, "mean_a": mean_a, "mean_b": mean_b,
           "sd_a": None if var_a is None else math.sqrt(var_a),
           "sd_b": None if var_b is None else math.sqrt(var_b),
           "diff": None if mean_a is None or mean_b is None else mean_a - mean_b,
           "se": None, "df": None, "t": None, "p": None, "ci": None}
    if var_a is None or var_b is None:
        return out
    va, vb = var_a / n_a, var_b / n_b
    se = math.sqrt(va + vb)
    diff = out["diff"]
    out["se"] = se
    if se == 0.0:  # both groups constant: the difference is exact
        out["df"] = float(n_a + n_b - 2)
        out["t"] = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
        out["p"] = 1.0 if diff == 0.0 else 0.0
        out["ci"] = (diff, diff)
        return out
    df = (va + vb) ** 2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))
    t = diff / se
    half = t_ppf(1.0 - alpha / 2.0, df) * se
    out.update(df=df, t=t, p=min(1.0, 2.0 * t_sf(abs(t), df)), ci=(diff - half, diff + half))
    return out


def tost(a, b, margin=1.0, alpha=0.05):
    """Two one-sided Welch t-tests of |mean(a) - mean(b)| < margin. Returns welch's dict plus
    margin, alpha, t_lower, p_lower, t_upper, p_upper, p (= max of the two), ci_tost (the
    (1 - 2 alpha) interval) and equivalent (bool; None when a group has < 2 values)."""
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    w = welch(a, b, alpha)
    out = dict(w, margin=margin, alpha=alpha, t_lower=None, p_lower=None, t_upper=None,
               p_upper=None, p_tost=None, ci_tost=None, equivalent=None)
    if w["se"] is None:
        return out
    diff, se = w["diff"], w["se"]
    if se == 0.0:
        inside = abs(diff) < margin
        p = 0.0 if inside else 1.0
        out.update(t_lower=math.inf if diff > -margin else -math.inf,
                   t_upper=-math.inf if diff < margin else math.inf,
                   p_lower=0.0 if diff > -margin else 1.0,
                   p_upper=0.0 if diff < margin else 1.0,
                   p_tost=p, ci_tost=(diff, diff), equivalent=inside)
        return out
    df = w["df"]
    t_lower = (diff + margin) / se
    t_upper = (diff - margin) / se
    p_lower = t_sf(t_lower, df)
    p_upper = t_cdf(t_upper, df)
    half = t_ppf(1.0 - alpha, df) * se
    p_tost = max(p_lower, p_upper)
    out.update(t_lower=t_lower, p_lower=p_lower, t_upper=t_upper, p_upper=p_upper,
               p_tost=p_tost, ci_tost=(diff - half, diff + half), equivalent=p_tost < alpha)
    return out


def verdict(a, b, margin=1.0, alpha=0.05):
    """The bench's verdict for one configuration (rule in the module docstring). Returns
    tost's dict plus "verdict" ("equivalent", "different" or "inconclusive") and "reason"."""
    r = tost(a, b, margin, alpha)
    if r["equivalent"] is None:
        v, why = "inconclusive", (f"needs >= 2 values per system (n = {r['n_a']}, "
                                  f"{r['n_b']})")
    elif r["equivalent"]:
        v, why = "equivalent", f"TOST p = {r['p_tost']:.3g} < {alpha:g}"
    elif r["p"] < alpha:
        v, why = "different", (f"Welch p = {r['p']:.3g} < {alpha:g} and TOST p = "
                               f"{r['p_tost']:.3g} >= {alpha:g}")
    else:
        v, why = "inconclusive", (f"Welch p = {r['p']:.3g} >= {alpha:g} and TOST p = "
                                  f"{r['p_tost']:.3g} >= {alpha:g}")
    r["verdict"], r["reason"] = v, why
    return r


def paired(a_by_seed, b_by_seed):
    """Per-seed differences a[s] - b[s] over the seeds present (not None) in both dicts, with
    mean, sample sd and the paired t-test (two-sided). Returns a dict: seeds, diffs, n, mean,
    sd, t, df, p (t, df, p None with fewer than 2 pairs; with zero sd, p is 1 when the mean
    difference is 0 and 0 otherwise, as in welch)."""
    seeds = sorted(s for s in a_by_seed if s in b_by_seed
                   and a_by_seed[s] is not None and b_by_seed[s] is not None)
    diffs = [float(a_by_seed[s]) - float(b_by_seed[s]) for s in seeds]
    n = len(diffs)
    out = {"seeds": seeds, "diffs": diffs, "n": n,
           "mean": statistics.fmean(diffs) if n else None,
           "sd": statistics.stdev(diffs) if n > 1 else None, "t": None, "df": None, "p": None}
    if n < 2:
        return out
    se = out["sd"] / math.sqrt(n)
    out["df"] = n - 1
    if se == 0.0:
        out["t"] = 0.0 if out["mean"] == 0.0 else math.copysign(math.inf, out["mean"])
        out["p"] = 1.0 if out["mean"] == 0.0 else 0.0
        return out
    out["t"] = out["mean"] / se
    out["p"] = min(1.0, 2.0 * t_sf(abs(out["t"]), n - 1))
    return out


def binom_two_sided_half(k, n):
    """Exact two-sided p of k successes in n Bernoulli(1/2) trials (McNemar's exact test):
    min(1, 2 P(X <= min(k, n - k)))."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def per_image(pred_a, pred_b, labels):
    """Per-image comparison of two systems' predicted classes on the same images. Returns
    n, same (fraction of images with equal predictions), acc_a, acc_b (%), only_a (a right,
    b wrong), only_b, and mcnemar_p (exact, two-sided)."""
    if not (len(pred_a) == len(pred_b) == len(labels)) or not labels:
        raise ValueError(f"lengths differ or empty: {len(pred_a)}, {len(pred_b)}, "
                         f"{len(labels)}")
    n = len(labels)
    same = sum(1 for x, y in zip(pred_a, pred_b) if x == y)
    right_a = [x == y for x, y in zip(pred_a, labels)]
    right_b = [x == y for x, y in zip(pred_b, labels)]
    only_a = sum(1 for x, y in zip(right_a, right_b) if x and not y)
    only_b = sum(1 for x, y in zip(right_a, right_b) if y and not x)
    return {"n": n, "same": same / n, "acc_a": 100.0 * sum(right_a) / n,
            "acc_b": 100.0 * sum(right_b) / n, "only_a": only_a, "only_b": only_b,
            "mcnemar_p": binom_two_sided_half(only_a, only_a + only_b)}
