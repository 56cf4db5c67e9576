// Opt-in end-to-end check (label "slow"): the full quickstart on Debian's FashionMNIST, then
// the report rendered by headless Chromium, as a user would open it.
#include <gtest/gtest.h>

#include "cli/run_normlab.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <set>

#include "store/store.h"

namespace {

namespace fs = std::filesystem;

std::string capture(const std::string& cmd, int* code) {
  auto r = normlab::testing::run_command(cmd);
  *code = r.code;
  return r.output;
}

TEST(QuickstartSlow, RunsOnFashionMnistAndReportRendersInChromium) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist"))
    GTEST_SKIP() << "dataset-fashion-mnist missing";
  fs::path dir = fs::temp_directory_path() / ("normlab_quickstart_" + std::to_string(getpid()));
  fs::remove_all(dir);
  std::string bin = std::getenv("NORMLAB_BINARY");
  std::string spec = std::string(std::getenv("NORMLAB_SOURCE_DIR")) + "/studies/quickstart.toml";
  int code = 0;
  std::string out = capture(bin + " study run " + spec + " --quiet --out " + dir.string(), &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("13 runs trained"), std::string::npos) << out;

  auto db = normlab::store::Store::open((dir / "study.db").string(), {true, false});
  std::set<std::string> groups;
  for (const auto& run : db->runs()) {
    EXPECT_EQ(run.status, normlab::store::RunStatus::kComplete) << run.name;
    if (run.group == "pretrain") continue;
    groups.insert(run.group);
    auto acc = db->scalars(run.id, "epoch", "test/acc");
    ASSERT_EQ(acc.size(), 1u) << run.name;
    // Five balanced classes: chance is 20%. A working transfer is far above it.
    EXPECT_GT(acc[0].value, 70.0) << run.name;
    EXPECT_FALSE(db->scalars(run.id, "step", "grad_norm/pre/head.0.weight").empty()) << run.name;
    EXPECT_EQ(db->surfaces(run.id, "landscape").size(), 1u) << run.name;
  }
  EXPECT_EQ(groups.size(), 6u);

  const char* chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium)) GTEST_SKIP() << "chromium not installed (apt-get install chromium)";
  std::string dom =
      capture(std::string(chromium) +
                  " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                  " --disable-background-networking --disable-component-update"
                  " --disable-sync --user-data-dir=" +
                  (dir / "chromium").string() + " --virtual-time-budget=10000 --dump-dom file://" +
                  (dir / "report.html").string(),
              &code);
  ASSERT_EQ(code, 0) << dom.substr(0, 2000);
  // Plotly draws one legend entry per trace; every configuration must appear as one.
  for (const auto& g : groups) {
    std::regex legend("class=\"legendtext\"[^>]*>" +
                      std::regex_replace(g, std::regex("[.]"), "\\.") + "<");
    EXPECT_TRUE(std::regex_search(dom, legend)) << "no rendered legend entry for " << g;
  }
  fs::remove_all(dir);
}

}  // namespace
