#include "report/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "report/assets.h"
#include "store/store.h"

namespace normlab::report {
namespace {

namespace fs = std::filesystem;
using store::RunStatus;
using store::ScalarPoint;
using store::Store;

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// Mean ± sample std and t-based 95% CI half-width, computed here independently of
// report/seed_stats, formatted like the report's table.
std::string expected_cell(const std::vector<double>& v) {
  const double t975[] = {12.706, 4.303, 3.182};  // df 1..3, from a printed t table
  double n = static_cast<double>(v.size());
  double mean = 0;
  for (double x : v) mean += x / n;
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean) / (n - 1);
  double sd = std::sqrt(var);
  double ci = t975[v.size() - 2] * sd / std::sqrt(n);
  char buf[200];
  std::snprintf(buf, sizeof buf, "%.4g &plusmn; %.4g <span class=\"ci\">(95%% CI &plusmn; %.4g)",
                mean, sd, ci);
  return buf;
}

constexpr int64_t kEpochs = 3;
constexpr int64_t kStepsPerEpoch = 700;  // 2100 steps: the report must downsample to <= 500

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("normlab_report_test_" + std::to_string(rd()));
    fs::create_directories(dir_);
    store_path_ = (dir_ / "study.db").string();
    out_path_ = (dir_ / "report.html").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Adds a run whose final val/acc is `final_acc`; the other metrics follow from it.
  int64_t add_run(Store& db, const std::string& group, int64_t seed, double final_acc,
                  RunStatus status = RunStatus::kComplete) {
    std::string config = R"({"group":")" + group + R"(","seed":)" + std::to_string(seed) + "}";
    auto run = db.upsert_run(group + ",seed=" + std::to_string(seed), group, config, seed);
    for (int64_t e = 0; e < kEpochs; ++e) {
      double acc = final_acc - 0.1 * static_cast<double>(kEpochs - 1 - e);
      std::vector<ScalarPoint> steps;
      for (int64_t s = 0; s < kStepsPerEpoch; ++s) {
        int64_t step = e * kStepsPerEpoch + s;
        steps.push_back({"grad_norm/total", step, 1.0 + static_cast<double>(seed)});
        steps.push_back({"grad_norm/fc.weight", step, 0.5});
        steps.push_back({"grad_norm/conv1.weight", step, 0.25});
      }
      db.write_epoch(run.id, e, steps,
                     {{"val/acc", e, acc},
                      {"val/loss", e, 2.0 - acc},
                      {"train/acc", e, acc + 0.05},
                      {"train/loss", e, 1.9 - acc},
                      {"test/acc", e, acc - 0.01}});
    }
    db.set_status(run.id, status, "", 12.5);
    return run.id;
  }

  // bn: {0.80, 0.84} best; ln: {0.70, 0.72} overlaps bn's interval (t_1 = 12.7 is wide);
  // gn: {0.30, 0.31} clearly worse; frn: one seed. ln also has a running seed whose numbers
  // must not enter the table.
  void build_store() {
    auto db = Store::open(store_path_);
    db->set_meta("study_name", "s0 test study");
    db->set_meta("spec", "[study]\nname = \"s0\"\n");
    int64_t bn1 = add_run(*db, "norm=bn", 1, 0.80);
    add_run(*db, "norm=bn", 2, 0.84);
    add_run(*db, "norm=ln", 1, 0.70);
    add_run(*db, "norm=ln", 2, 0.72);
    add_run(*db, "norm=ln", 3, 0.99, RunStatus::kRunning);
    add_run(*db, "norm=gn", 1, 0.30);
    add_run(*db, "norm=gn", 2, 0.31);
    add_run(*db, kNastyGroup, 1, 0.50);
    auto failed = db->upsert_run("norm=none,seed=1", "norm=none", R"({"norm":"none"})", 1);
    db->set_status(failed.id, RunStatus::kFailed, "loss is <b>NaN</b> at step 12", 1.0);

    db->put_artifact(bn1, "landscape",
                     {{"alphas", {-1.0, 0.0, 1.0}},
                      {"betas", {-0.5, 0.5}},
                      {"loss", {{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}}}});
    db->put_artifact(bn1, "confusion",
                     {{"labels", {"sandal", "shirt"}}, {"matrix", {{9, 1}, {2, 8}}}});
  }

  ReportOptions options() const { return {store_path_, out_path_, ""}; }

  static constexpr const char* kNastyGroup = "norm=frn</script><script>alert(1)";
  fs::path dir_;
  std::string store_path_;
  std::string out_path_;
};

nlohmann::json embedded_data(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"normlab-data\">";
  auto begin = html.find(open);
  EXPECT_NE(begin, std::string::npos);
  begin += open.size();
  auto end = html.find("</script>", begin);
  return nlohmann::json::parse(html.substr(begin, end - begin));
}

TEST_F(ReportTest, WritesSelfContainedReport) {
  build_store();
  write_html_report(options());
  std::string html = read_file_text(out_path_);

  // Plotly is inlined, nothing is fetched from the network.
  std::string plotly = read_first_asset(plotly_candidates(), "plotly.min.js");
  auto inlined = html.find(plotly);
  ASSERT_NE(inlined, std::string::npos);
  EXPECT_NE(plotly.find("plotly.js v"), std::string::npos);
  // (Plotly's own map-icon loader mentions a URL; outside it the page names none.)
  std::string page = html.substr(0, inlined) + html.substr(inlined + plotly.size());
  EXPECT_EQ(page.find("<script src"), std::string::npos);
  EXPECT_EQ(page.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.find("http"), std::string::npos);
  // Exactly our three script elements: no embedded text closed one early.
  EXPECT_EQ(count(html, "<script"), 3u);
  EXPECT_EQ(count(html, "</script>"), 3u);
  EXPECT_EQ(html.find("norm=frn</script>"), std::string::npos);

  EXPECT_NE(html.find("<title>s0 test study</title>"), std::string::npos);
  for (const char* group : {"norm=bn", "norm=ln", "norm=gn", "norm=none"}) {
    EXPECT_NE(html.find("<td>" + std::string(group) + "</td>"), std::string::npos) << group;
  }
  EXPECT_NE(html.find("<td>norm=frn&lt;/script&gt;&lt;script&gt;alert(1)</td>"), std::string::npos);

  // Final metrics: independent mean ± std and CI over complete seeds only.
  EXPECT_NE(html.find(expected_cell({0.80, 0.84})), std::string::npos) << "bn val/acc";
  EXPECT_NE(html.find(expected_cell({0.70, 0.72})), std::string::npos) << "ln val/acc";
  EXPECT_NE(html.find(expected_cell({2.0 - 0.70, 2.0 - 0.72})), std::string::npos) << "ln loss";
  EXPECT_NE(html.find(expected_cell({0.30 - 0.01, 0.31 - 0.01})), std::string::npos) << "test/acc";
  EXPECT_NE(html.find("0.5 <span class=\"ci\">(n=1)</span>"), std::string::npos);
  EXPECT_NE(html.find("<th>test/acc</th>"), std::string::npos);

  // Verdicts against the best (bn) by val/acc.
  auto row = [&](const std::string& group) {
    auto start = html.find("<td>" + group + "</td>");
    return html.substr(start, html.find("</tr>", start) - start);
  };
  EXPECT_NE(row("norm=bn").find("<strong>best</strong>"), std::string::npos);
  EXPECT_NE(row("norm=ln").find("not distinguishable from best"), std::string::npos);
  EXPECT_NE(row("norm=ln").find("<td>2</td>"), std::string::npos);  // the running seed is out
  EXPECT_NE(row("norm=gn").find("worse than best"), std::string::npos);

  // The failed run is listed with its (escaped) error.
  EXPECT_NE(html.find("loss is &lt;b&gt;NaN&lt;/b&gt; at step 12"), std::string::npos);

  auto data = embedded_data(html);
  ASSERT_EQ(data["curves"].size(), 4u);
  EXPECT_EQ(data["curves"][0]["metric"], "val/acc");
  const auto& bn_curve = data["curves"][0]["groups"][0];
  EXPECT_EQ(bn_curve["name"], "norm=bn");
  ASSERT_EQ(bn_curve["mean"].size(), static_cast<size_t>(kEpochs));
  EXPECT_NEAR(bn_curve["mean"][2].get<double>(), 0.82, 1e-9);
  EXPECT_NEAR(bn_curve["hi"][2].get<double>() - bn_curve["lo"][2].get<double>(),
              2 * std::sqrt(0.0008), 1e-4);
  // The running ln seed does count in the curves (they show progress).
  EXPECT_EQ(data["curves"][0]["groups"][1]["n"][0], 3);

  ASSERT_EQ(data["grad_total"].size(), 4u);
  for (const auto& trace : data["grad_total"]) {
    EXPECT_LE(trace["y"].size(), 500u);
    EXPECT_GE(trace["y"].size(), 250u);
  }
  EXPECT_NEAR(data["grad_total"][0]["y"][0].get<double>(), 2.5, 1e-9);  // seeds 1, 2
  ASSERT_EQ(data["grad_layers"].size(), 4u);
  EXPECT_EQ(data["grad_layers"][0]["run"], "norm=bn,seed=1");
  ASSERT_EQ(data["grad_layers"][0]["layers"].size(), 2u);
  EXPECT_EQ(data["grad_layers"][0]["layers"][0]["name"], "conv1.weight");

  ASSERT_EQ(data["landscapes"].size(), 1u);
  // z[y = beta][x = alpha], transposed from loss[alpha][beta].
  EXPECT_EQ(data["landscapes"][0]["z"], nlohmann::json({{1.0, 3.0, 5.0}, {2.0, 4.0, 6.0}}));
  EXPECT_EQ(data["confusion"]["group"], "norm=bn");
  EXPECT_EQ(data["confusion"]["labels"][1], "shirt");
  EXPECT_NE(html.find("Confusion matrix of the best configuration (norm=bn)"), std::string::npos);

  // Metadata, with long values folded.
  EXPECT_NE(html.find("<th>study_name</th><td>s0 test study</td>"), std::string::npos);
  EXPECT_NE(html.find("[study]\nname = &quot;s0&quot;"), std::string::npos);
}

TEST_F(ReportTest, TitleOptionWinsAndEmptyStoreStillRenders) {
  { Store::open(store_path_); }
  ReportOptions opts = options();
  opts.title = "My <study>";
  write_html_report(opts);
  std::string html = read_file_text(out_path_);
  EXPECT_NE(html.find("<h1>My &lt;study&gt;</h1>"), std::string::npos);
  EXPECT_NE(html.find("No epoch metrics recorded."), std::string::npos);
  EXPECT_NE(html.find("No failed runs."), std::string::npos);
  auto data = embedded_data(html);
  EXPECT_TRUE(data["curves"].empty());
  EXPECT_TRUE(data["confusion"].is_null());
}

TEST_F(ReportTest, AuxiliaryGroupsAreListedButNotCompared) {
  {
    auto db = Store::open(store_path_);
    add_run(*db, "norm=bn", 1, 0.80);
    add_run(*db, "norm=bn", 2, 0.84);
    add_run(*db, "pretrain", 0, 0.99);  // another task: must not become "best"
    db->set_meta("auxiliary_groups", R"(["pretrain"])");
  }
  write_html_report(options());
  std::string html = read_file_text(out_path_);
  auto aux = html.find("<h3>Auxiliary runs</h3>");
  ASSERT_NE(aux, std::string::npos);
  EXPECT_GT(html.find("<td>pretrain</td>", aux), aux);
  EXPECT_NE(html.find("<tr class=\"best\"><td>norm=bn</td>"), std::string::npos)
      << html.substr(0, 0);
  for (const auto& curve : embedded_data(html)["curves"]) {
    for (const auto& trace : curve["groups"]) EXPECT_NE(trace["name"], "pretrain");
  }
}

TEST_F(ReportTest, MissingStoreIsAnErrorNamingIt) {
  try {
    write_html_report(options());
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(store_path_), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out_path_));
  EXPECT_FALSE(fs::exists(store_path_));  // a report never creates a store
}

TEST_F(ReportTest, CorruptStoreLeavesExistingReportUnchanged) {
  write_file_atomic(store_path_, std::string(8192, '\x5a'));
  write_file_atomic(out_path_, "previous report");
  auto store_before = read_file_bytes(store_path_);
  try {
    write_html_report(options());
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(store_path_), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file_text(out_path_), "previous report");
  EXPECT_EQ(read_file_bytes(store_path_), store_before);
}

TEST_F(ReportTest, MissingAssetNamesEveryPathAndTheFix) {
  std::vector<std::string> tried = {(dir_ / "a" / "plotly.min.js").string(),
                                    (dir_ / "b" / "plotly.min.js").string()};
  try {
    read_first_asset(tried, "plotly.min.js");
    FAIL() << "expected Error";
  } catch (const Error& e) {
    std::string what = e.what();
    for (const auto& p : tried) EXPECT_NE(what.find(p), std::string::npos) << what;
    EXPECT_NE(what.find("npm ci"), std::string::npos) << what;
  }
}

TEST_F(ReportTest, AssetsEnvironmentOverrideComesFirst) {
  const char* old = std::getenv("NORMLAB_ASSETS");
  std::string saved = old != nullptr ? old : "";
  setenv("NORMLAB_ASSETS", dir_.c_str(), 1);
  auto candidates = plotly_candidates();
  if (old != nullptr) {
    setenv("NORMLAB_ASSETS", saved.c_str(), 1);
  } else {
    unsetenv("NORMLAB_ASSETS");
  }
  ASSERT_GE(candidates.size(), 2u);
  EXPECT_EQ(candidates[0], (dir_ / "plotly.js-dist-min" / "plotly.min.js").string());
  EXPECT_NE(candidates.back().find("share/normlab/plotly.min.js"), std::string::npos);
}

TEST(ReportAssets, EscapesClosingScriptTags) {
  EXPECT_EQ(escape_script_text("a</script>b</SCRIPT >c</div>"), "a<\\/script>b<\\/SCRIPT >c</div>");
  EXPECT_EQ(escape_script_text("</scrip"), "</scrip");
}

}  // namespace
}  // namespace normlab::report
