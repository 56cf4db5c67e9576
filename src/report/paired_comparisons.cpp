#include "report/paired_comparisons.h"

#include <cmath>
#include <cstddef>
#include <sstream>
#include <utility>

#include "report/html.h"

namespace normlab::report {
namespace {

// A label's tokens as (key, value); a token without '=' is its own key with no value, so it
// must match exactly (a sub-grid's "lr_sweep:" prefix).
struct Token {
  std::string key;
  std::string value;
  bool has_value = false;
};

std::vector<Token> tokens(const std::string& label) {
  std::vector<Token> out;
  size_t start = 0;
  while (start <= label.size()) {
    size_t end = label.find(' ', start);
    if (end == std::string::npos) end = label.size();
    std::string text = label.substr(start, end - start);
    if (!text.empty()) {
      const size_t eq = text.find('=');
      if (eq == std::string::npos || eq == 0) {
        out.push_back({text, "", false});
      } else {
        out.push_back({text.substr(0, eq), text.substr(eq + 1), true});
      }
    }
    start = end + 1;
  }
  return out;
}

// The index of the one token in which a and b differ, when their keys agree token by token
// and exactly one key=value token differs; -1 otherwise.
int single_difference(const std::vector<Token>& a, const std::vector<Token>& b) {
  if (a.size() != b.size()) return -1;
  int diff = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].key != b[i].key || a[i].has_value != b[i].has_value) return -1;
    if (a[i].value == b[i].value) continue;
    if (diff >= 0) return -1;
    diff = static_cast<int>(i);
  }
  return diff;
}

std::string shared_text(const std::vector<Token>& t, int skip) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (static_cast<int>(i) == skip) continue;
    if (!out.empty()) out += ' ';
    out += t[i].has_value ? t[i].key + "=" + t[i].value : t[i].key;
  }
  return out;
}

PairVerdict verdict_of(const SeedStats& d) {
  if (d.n < 2 || !std::isfinite(d.ci95)) return PairVerdict::kNoInterval;
  if (d.mean - d.ci95 > 0) return PairVerdict::kHigher;
  if (d.mean + d.ci95 < 0) return PairVerdict::kLower;
  return PairVerdict::kNotDistinguishable;
}

// NaN (no interval) as null, which is what the page's JSON holds anyway.
nlohmann::json number_or_null(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

}  // namespace

std::vector<PairedComparison> paired_comparisons(const std::vector<PairInput>& groups) {
  std::vector<std::vector<Token>> parsed;
  parsed.reserve(groups.size());
  for (const auto& g : groups) parsed.push_back(tokens(g.label));

  // Bucketed by the position of the differing token, so that settings come in the labels'
  // (the grid's) order and, within one, the configurations' order is kept.
  std::map<int, std::vector<PairedComparison>> by_position;
  for (size_t ia = 0; ia < groups.size(); ++ia) {
    for (size_t ib = 0; ib < ia; ++ib) {
      const int d = single_difference(parsed[ia], parsed[ib]);
      if (d < 0) continue;
      std::vector<double> diffs;
      for (const auto& [seed, a_value] : groups[ia].by_seed) {
        auto it = groups[ib].by_seed.find(seed);
        if (it != groups[ib].by_seed.end()) diffs.push_back(a_value - it->second);
      }
      if (diffs.empty()) continue;  // nothing to compare yet (no complete seed in common)
      PairedComparison c;
      const auto di = static_cast<size_t>(d);
      c.setting = parsed[ia][di].key;
      c.a_value = parsed[ia][di].value;
      c.b_value = parsed[ib][di].value;
      c.shared = shared_text(parsed[ia], d);
      c.a_label = groups[ia].label;
      c.b_label = groups[ib].label;
      c.difference = seed_stats(diffs);
      c.verdict = verdict_of(c.difference);
      by_position[d].push_back(std::move(c));
    }
  }
  std::vector<PairedComparison> out;
  for (auto& [position, comparisons] : by_position) {
    for (auto& c : comparisons) out.push_back(std::move(c));
  }
  return out;
}

const char* to_string(PairVerdict verdict) {
  switch (verdict) {
    case PairVerdict::kHigher:
      return "higher";
    case PairVerdict::kLower:
      return "lower";
    case PairVerdict::kNotDistinguishable:
      return "not distinguishable";
    case PairVerdict::kNoInterval:
      return "no interval (n<2)";
  }
  return "?";
}

nlohmann::json paired_comparisons_json(const std::vector<PairedComparison>& pairs) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : pairs) {
    const auto& d = p.difference;
    out.push_back({{"setting", p.setting},
                   {"a", p.a_label},
                   {"b", p.b_label},
                   {"a_value", p.a_value},
                   {"b_value", p.b_value},
                   {"shared", p.shared},
                   {"n", d.n},
                   {"mean", number_or_null(d.mean)},
                   {"sd", number_or_null(d.std)},
                   {"ci95", number_or_null(d.ci95)},
                   {"verdict", to_string(p.verdict)}});
  }
  return out;
}

std::string paired_comparisons_section(const std::vector<PairedComparison>& pairs,
                                       const std::string& metric) {
  std::ostringstream html;
  html << "<p class=\"note\">Every two configurations that differ in one setting, compared on "
       << "the last-epoch " << html_escape(metric) << " seed by seed (a run and its partner of "
       << "the same seed share the initial weights of what they have in common and, in "
       << "lockstep, the batches): mean &plusmn; sample standard deviation of the per-seed "
       << "difference a &minus; b and its 95% interval (Student t). <em>higher</em> or "
       << "<em>lower</em> only when the interval excludes 0; otherwise the difference is "
       << "<em>not distinguishable</em> from seed-to-seed variation. The intervals are not "
       << "corrected for the number of rows: when nothing differs, about one row in twenty is "
       << "expected to exclude 0 by chance.</p>\n"
       << "<table class=\"final\">\n<thead><tr><th>setting</th><th>a &minus; b</th>"
       << "<th>with</th><th>n seeds</th><th>mean difference</th><th>verdict</th></tr></thead>\n"
       << "<tbody>\n";
  for (const auto& p : pairs) {
    const auto& d = p.difference;
    std::string cell = "&mdash;";
    if (d.n == 1) cell = table_number(d.mean) + " <span class=\"ci\">(n=1)</span>";
    if (d.n >= 2) {
      cell = table_number(d.mean) + " &plusmn; " + table_number(d.std) +
             " <span class=\"ci\">(95% CI " + table_number(d.mean - d.ci95) + " to " +
             table_number(d.mean + d.ci95) + ")</span>";
    }
    const bool real = p.verdict == PairVerdict::kHigher || p.verdict == PairVerdict::kLower;
    html << "<tr><td>" << html_escape(p.setting) << "</td><td>" << html_escape(p.a_value)
         << " &minus; " << html_escape(p.b_value) << "</td><td>" << html_escape(p.shared)
         << "</td><td>" << d.n << "</td><td>" << cell << "</td><td>" << (real ? "<strong>" : "")
         << to_string(p.verdict) << (real ? "</strong>" : "") << "</td></tr>\n";
  }
  html << "</tbody>\n</table>\n";
  return html.str();
}

}  // namespace normlab::report
