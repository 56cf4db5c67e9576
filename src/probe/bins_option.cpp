#include "probe/bins_option.h"

#include "core/error.h"

namespace normlab::probe {

train::BinSpec bin_spec(const nlohmann::json& o, const std::string& probe,
                        const std::string& where) {
  auto key = [&](const char* k) { return where + ": key 'probe." + probe + "." + k + "'"; };
  train::BinSpec s;
  s.bins = o.at("bins").get<int64_t>();
  require(s.bins >= 1 && s.bins <= 10000, key("bins"),
          "must be in [1, 10000], got " + std::to_string(s.bins));
  s.scale = o.at("scale").get<std::string>();
  require(s.scale == "linear" || s.scale == "log10", key("scale"),
          "unknown scale '" + s.scale + "'", "use \"linear\" or \"log10\" (of |value|)");
  const auto& r = o.at("range");
  require(r.is_array() && r.size() == 2 && r[0].is_number() && r[1].is_number(), key("range"),
          "expected [lo, hi], got " + r.dump());
  s.lo = r[0].get<double>();
  s.hi = r[1].get<double>();
  require(
      s.lo < s.hi, key("range"), "needs lo < hi, got " + r.dump(),
      s.scale == "log10" ? "with scale log10 the range is of log10 |value|, e.g. [-10, 1]" : "");
  return s;
}

}  // namespace normlab::probe
