// The probe registry: every probe is listed, has an "enabled" option and checks its defaults.
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "probe/registry.h"

namespace normlab::probe {
namespace {

TEST(ProbeRegistry, EveryProbeIsListedOnceWithValidDefaults) {
  std::set<std::string> names;
  for (const auto& p : probes()) {
    EXPECT_TRUE(names.insert(p.name).second) << p.name;
    EXPECT_FALSE(p.summary.empty()) << p.name;
    ASSERT_TRUE(p.defaults.contains("enabled")) << p.name;
    EXPECT_NO_THROW(p.check(p.defaults, "defaults")) << p.name;
    for (const auto& [key, help] : p.help) EXPECT_TRUE(p.defaults.contains(key)) << p.name << key;
  }
  for (const char* expected : {"grad_norms", "grad_hist", "weight_hist", "clip", "update_ratio",
                               "landscape", "interpolation", "esm", "smoothness"}) {
    EXPECT_EQ(names.count(expected), 1u) << expected;
  }
  EXPECT_EQ(default_probe_options().size(), probes().size());
}

TEST(ProbeRegistry, UnknownProbeNamesTheKnownOnes) {
  try {
    find_probe("grad_hsit");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("grad_hist"), std::string::npos);
  }
}

}  // namespace
}  // namespace normlab::probe
