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
using store::Axis;
using store::EpochRecords;
using store::Histogram;
using store::RunStatus;
using store::ScalarPoint;
using store::Store;
using store::Surface;

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
      EpochRecords records;
      for (int64_t s = 0; s < kStepsPerEpoch; ++s) {
        int64_t step = e * kStepsPerEpoch + s;
        records.step_scalars.push_back({"grad_norm/total", step, 1.0 + static_cast<double>(seed)});
        records.step_scalars.push_back({"grad_norm/fc.weight", step, 0.5});
        records.step_scalars.push_back({"grad_norm/conv1.weight", step, 0.25});
        records.step_scalars.push_back(
            {"train/loss", step, 2.0 - 0.01 * static_cast<double>(step)});
        if (s % 2 == 1) records.step_scalars.push_back({"step_val/loss", step, 2.5 - acc});
        records.step_scalars.push_back(
            {"weight_var_delta/fc", step, 0.01 * static_cast<double>(s)});
        records.step_scalars.push_back({"weight_var_delta/conv1", step, 0.02});
      }
      records.epoch_scalars = {{"val/acc", e, acc},
                               {"val/loss", e, 2.0 - acc},
                               {"train/acc", e, acc + 0.05},
                               {"train/loss", e, 1.9 - acc},
                               {"test/acc", e, acc - 0.01}};
      db.write_epoch(run.id, e, records);
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

    // Final evaluation, after the last epoch: a non-square landscape and the confusion matrix.
    EpochRecords final_eval;
    final_eval.surfaces.push_back({"landscape", kEpochs - 1, non_square_landscape()});
    store::Matrix confusion;
    confusion.row_labels = confusion.column_labels = {"sandal", "shirt"};
    confusion.values = {{9, 1}, {2, 8}};
    final_eval.matrices.push_back({"confusion/val", kEpochs - 1, confusion});
    db->put_records(bn1, kEpochs - 1, final_eval);
  }

  // 3 x values, 2 y values: z[i][j] = f(x[j], y[i]) = 10 * y[i] + x[j], so a transposed or
  // flattened grid cannot pass for the stored one.
  static Surface non_square_landscape() {
    Surface s;
    s.x_label = "alpha";
    s.y_label = "beta";
    s.z_label = "loss";
    s.x = {-1.0, 0.0, 1.0};
    s.y = {-0.5, 0.5};
    for (double y : s.y) {
      std::vector<double> row;
      for (double x : s.x) row.push_back(10 * y + x);
      s.z.push_back(row);
    }
    return s;
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

  // Paired by seed (seeds 1 and 2): ln - bn = -0.10, -0.12 is within t_1's wide interval;
  // gn - bn = -0.50, -0.53 is not. The failed none group has no complete seed: no row.
  EXPECT_NE(html.find("<h2>Paired comparisons</h2>"), std::string::npos);
  const auto paired = embedded_data(html)["paired"];
  auto pair_row = [&](const std::string& a, const std::string& b) {
    for (const auto& r : paired) {
      if (r["a"] == a && r["b"] == b) return r;
    }
    return nlohmann::json();
  };
  EXPECT_EQ(pair_row("norm=ln", "norm=bn")["verdict"], "not distinguishable");
  EXPECT_NEAR(pair_row("norm=ln", "norm=bn")["mean"].get<double>(), -0.11, 1e-9);
  EXPECT_EQ(pair_row("norm=gn", "norm=bn")["verdict"], "lower");
  EXPECT_EQ(pair_row("norm=gn", "norm=bn")["n"], 2);
  EXPECT_TRUE(pair_row("norm=none", "norm=bn").is_null());

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

  ASSERT_EQ(data["surfaces"].size(), 1u);
  const auto& land = data["surfaces"][0];
  EXPECT_EQ(land["name"], "landscape");
  EXPECT_EQ(land["run"], "norm=bn,seed=1");
  EXPECT_EQ(land["epoch"], kEpochs - 1);
  EXPECT_EQ(land["x_label"], "alpha");
  EXPECT_EQ(land["y_label"], "beta");
  EXPECT_EQ(land["z_label"], "loss");
  // (Y, X) exactly as stored: row i is y[i], column j is x[j].
  EXPECT_EQ(land["x"], nlohmann::json({-1.0, 0.0, 1.0}));
  EXPECT_EQ(land["y"], nlohmann::json({-0.5, 0.5}));
  EXPECT_EQ(land["z"], nlohmann::json({{-6.0, -5.0, -4.0}, {4.0, 5.0, 6.0}}));
  EXPECT_EQ(data["confusion"]["group"], "norm=bn");
  EXPECT_EQ(data["confusion"]["name"], "confusion/val");
  EXPECT_EQ(data["confusion"]["labels"][1], "shirt");
  EXPECT_EQ(data["confusion"]["row_labels"][0], "sandal");
  EXPECT_EQ(data["confusion"]["matrix"], nlohmann::json({{9.0, 1.0}, {2.0, 8.0}}));
  EXPECT_TRUE(data["histograms"].empty());
  // The same data, from the function the page is built with.
  EXPECT_EQ(report_data(*Store::open(store_path_, {/*read_only=*/true})), data);
  EXPECT_NE(html.find("Confusion matrix of the best configuration (norm=bn)"), std::string::npos);

  // Metadata, with long values folded.
  EXPECT_NE(html.find("<th>study_name</th><td>s0 test study</td>"), std::string::npos);
  EXPECT_NE(html.find("[study]\nname = &quot;s0&quot;"), std::string::npos);
}

Histogram hist(const std::string& scale, std::vector<double> edges, std::vector<int64_t> counts) {
  Histogram h;
  h.scale = scale;
  h.edges = std::move(edges);
  h.counts = std::move(counts);
  for (int64_t c : h.counts) h.count += c;
  return h;
}

// Per-epoch gradient histograms before/after clipping, a weight histogram per step, and a
// family whose bin edges change: each kind of panel the report draws.
TEST_F(ReportTest, HistogramsAreNormalisedHeatmapsPairedByStage) {
  const std::string nasty_item = "weight_hist/fc</select><script>x()</script>";
  {
    auto db = Store::open(store_path_);
    for (int64_t seed : {1, 2}) {
      auto run = db->upsert_run("norm=bn,seed=" + std::to_string(seed), "norm=bn",
                                R"({"s":)" + std::to_string(seed) + "}", seed);
      for (int64_t e = 0; e < 3; ++e) {
        EpochRecords r;
        r.epoch_scalars = {{"val/acc", e, 0.5}};
        const std::vector<double> log_edges = {-8, -6, -4, -2, 0};
        // Seed 2's counts differ: the panel must show seed 1's.
        r.histograms.push_back({"grad_hist/pre/fc.weight", Axis::kEpoch, e,
                                hist("log10", log_edges, {1 + e + 10 * (seed - 1), 1, 0, 2})});
        r.histograms.push_back(
            {"grad_hist/post/fc.weight", Axis::kEpoch, e, hist("log10", log_edges, {0, 0, 3, 1})});
        r.histograms.push_back({"grad_hist/pre/conv1.weight", Axis::kEpoch, e,
                                hist("log10", log_edges, {0, 0, 0, 5})});
        for (int64_t s = 0; s < 150; ++s) {
          int64_t step = 150 * e + s;
          r.histograms.push_back({nasty_item, Axis::kStep, step,
                                  hist("linear", {-1, 0, 1}, {step % 2 == 0 ? 1 : 3, 3})});
        }
        r.histograms.push_back({"act_hist/head", Axis::kEpoch, e,
                                hist("linear", {0, 1.0 + static_cast<double>(e)}, {4})});
        db->write_epoch(run.id, e, r);
      }
      db->set_status(run.id, RunStatus::kComplete);
    }
    add_run(*db, "norm=ln", 1, 0.7);  // no histograms: no panel
  }
  std::vector<std::string> notes;
  auto data = report_data(*Store::open(store_path_, {/*read_only=*/true}), &notes);
  const auto& panels = data["histograms"];
  ASSERT_EQ(panels.size(), 3u);  // act_hist, grad_hist, weight_hist for norm=bn
  EXPECT_EQ(panels[0]["family"], "act_hist");
  EXPECT_EQ(panels[1]["family"], "grad_hist");
  EXPECT_EQ(panels[2]["family"], "weight_hist");
  for (const auto& p : panels) {
    EXPECT_EQ(p["group"], "norm=bn");
    EXPECT_EQ(p["run"], "norm=bn,seed=1");
  }

  // grad_hist: items by name; fc.weight has pre and post side by side, conv1.weight only pre.
  const auto& grad = panels[1];
  EXPECT_EQ(grad["stages"], nlohmann::json({"pre", "post"}));
  ASSERT_EQ(grad["items"].size(), 2u);
  EXPECT_EQ(grad["items"][0]["name"], "conv1.weight");
  ASSERT_EQ(grad["items"][0]["plots"].size(), 1u);
  EXPECT_EQ(grad["items"][0]["plots"][0]["stage"], "pre");
  const auto& fc = grad["items"][1];
  EXPECT_EQ(fc["name"], "fc.weight");
  ASSERT_EQ(fc["plots"].size(), 2u);
  const auto& pre = fc["plots"][0];
  const auto& post = fc["plots"][1];
  EXPECT_EQ(pre["stage"], "pre");
  EXPECT_EQ(pre["name"], "grad_hist/pre/fc.weight");
  EXPECT_EQ(post["stage"], "post");
  EXPECT_EQ(pre["axis"], "epoch");
  EXPECT_EQ(pre["y_label"], "log10 |value|");
  EXPECT_EQ(pre["x"], nlohmann::json({0, 1, 2}));
  EXPECT_EQ(pre["y"], nlohmann::json({-7.0, -5.0, -3.0, -1.0}));  // bin centres
  // z is (bins, epochs): counts {1 + e, 1, 0, 2} over their sum 4 + e.
  ASSERT_EQ(pre["z"].size(), 4u);
  for (int e = 0; e < 3; ++e) {
    const double n = 4.0 + e;
    const double want[4] = {(1.0 + e) / n, 1.0 / n, 0.0, 2.0 / n};
    for (int b = 0; b < 4; ++b) {
      EXPECT_NEAR(pre["z"][b][e].get<double>(), want[b], 1e-5) << "bin " << b << " epoch " << e;
    }
  }
  EXPECT_EQ(post["z"][2], nlohmann::json({0.75, 0.75, 0.75}));
  // One colour scale for the pair: the larger maximum of the two.
  EXPECT_NEAR(fc["zmax"].get<double>(), 0.75, 1e-9);

  // weight_hist: no stage, per step, 450 columns averaged down to <= 200 (buckets of 3).
  const auto& weight = panels[2];
  EXPECT_EQ(weight["stages"], nlohmann::json({""}));
  ASSERT_EQ(weight["items"].size(), 1u);
  EXPECT_EQ(weight["items"][0]["name"], "fc</select><script>x()</script>");
  const auto& w = weight["items"][0]["plots"][0];
  EXPECT_EQ(w["axis"], "step");
  EXPECT_EQ(w["y_label"], "value");
  EXPECT_EQ(w["y"], nlohmann::json({-0.5, 0.5}));
  ASSERT_EQ(w["x"].size(), 150u);
  EXPECT_EQ(w["x"][0], 1.0);  // mean of steps 0, 1, 2
  // Steps 0, 1, 2: fractions 1/4, 3/6, 1/4 in bin 0 -> mean 1/3.
  EXPECT_NEAR(w["z"][0][0].get<double>(), 1.0 / 3.0, 1e-5);

  // act_hist: edges widen every epoch, so the columns are re-binned onto one grid (noted).
  const auto& act = panels[0]["items"][0]["plots"][0];
  EXPECT_EQ(act["y"], nlohmann::json({1.5}));
  EXPECT_EQ(act["z"], nlohmann::json({{1.0, 1.0, 1.0}}));
  bool noted = false;
  for (const auto& n : notes) noted = noted || n.find("act_hist/head") != std::string::npos;
  EXPECT_TRUE(noted);

  // The page: a <select> per panel listing the items (escaped), one plot div per stage.
  write_html_report(options());
  std::string html = read_file_text(out_path_);
  EXPECT_NE(html.find("<select id=\"hist-1-select\"><option value=\"0\">conv1.weight</option>"
                      "<option value=\"1\">fc.weight</option></select>"),
            std::string::npos);
  EXPECT_NE(html.find("<div class=\"plot-row\"><div class=\"plot\" id=\"hist-1-0\"></div>"
                      "<div class=\"plot\" id=\"hist-1-1\"></div></div>"),
            std::string::npos);
  EXPECT_NE(html.find("<option value=\"0\">fc&lt;/select&gt;&lt;script&gt;x()&lt;/script&gt;"),
            std::string::npos);
  EXPECT_EQ(count(html, "<script"), 3u);
  EXPECT_EQ(embedded_data(html)["histograms"], panels);
}

// A non-square grid: the page gets z as (Y, X) with z[i][j] = f(x[j], y[i]), as stored.
TEST_F(ReportTest, SurfaceIsDrawnAsStoredOnANonSquareGrid) {
  {
    auto db = Store::open(store_path_);
    int64_t id = add_run(*db, "norm=bn", 1, 0.8);
    EpochRecords r;
    r.surfaces.push_back({"landscape", 0, non_square_landscape()});  // older epoch: not drawn
    r.surfaces.back().surface.z[0][0] = 99;
    r.surfaces.push_back({"landscape", kEpochs - 1, non_square_landscape()});
    db->put_records(id, kEpochs - 1, r);
  }
  auto data = report_data(*Store::open(store_path_, {/*read_only=*/true}));
  ASSERT_EQ(data["surfaces"].size(), 1u);
  const auto& s = data["surfaces"][0];
  EXPECT_EQ(s["epoch"], kEpochs - 1);
  const auto x = s["x"].get<std::vector<double>>();
  const auto y = s["y"].get<std::vector<double>>();
  ASSERT_EQ(x.size(), 3u);
  ASSERT_EQ(y.size(), 2u);
  ASSERT_EQ(s["z"].size(), 2u);  // Y rows
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_EQ(s["z"][i].size(), 3u);  // X columns
    for (size_t j = 0; j < x.size(); ++j) {
      EXPECT_EQ(s["z"][i][j].get<double>(), 10 * y[i] + x[j]) << i << "," << j;
    }
  }
}

TEST_F(ReportTest, ConfusionFallsBackToAnyConfusionMatrix) {
  {
    auto db = Store::open(store_path_);
    int64_t id = add_run(*db, "norm=bn", 1, 0.8);
    EpochRecords r;
    store::Matrix m;
    m.row_labels = {"a", "b"};
    m.column_labels = {"a", "b"};
    m.values = {{1, 2}, {3, 4}};
    r.matrices.push_back({"confusion/test", kEpochs - 1, m});
    r.matrices.push_back({"other/matrix", kEpochs - 1, m});
    db->put_records(id, kEpochs - 1, r);
  }
  auto data = report_data(*Store::open(store_path_, {/*read_only=*/true}));
  EXPECT_EQ(data["confusion"]["name"], "confusion/test");
  EXPECT_EQ(data["confusion"]["matrix"], nlohmann::json({{1.0, 2.0}, {3.0, 4.0}}));
}

// A study written by the schema-1 normlab: the report reads it through the store's in-memory
// migration and leaves the file as it was.
TEST_F(ReportTest, ReportsASchemaOneStoreWithoutChangingIt) {
  const char* fixtures = std::getenv("NORMLAB_FIXTURES");
  fs::path fixture =
      (fixtures != nullptr ? fs::path(fixtures)
                           : fs::path(__FILE__).parent_path().parent_path() / "fixtures") /
      "store" / "v1_quickstart_smoke.db";
  ASSERT_TRUE(fs::exists(fixture)) << fixture;
  fs::copy_file(fixture, store_path_);
  auto before = read_file_bytes(store_path_);
  write_html_report(options());
  EXPECT_EQ(read_file_bytes(store_path_), before);
  auto data = embedded_data(read_file_text(out_path_));
  EXPECT_EQ(data["surfaces"].size(), 6u);  // one landscape per grid configuration
  for (const auto& s : data["surfaces"]) EXPECT_EQ(s["x_label"], "alpha");
  EXPECT_EQ(data["confusion"]["name"], "confusion/val");
  EXPECT_FALSE(data["curves"].empty());
  EXPECT_FALSE(data["grad_total"].empty());
}

// The page's JavaScript, run by node against stand-ins for the DOM and Plotly
// (tests/report/render_check.js): every plot div is drawn and every <select> option redraws.
// The slow quickstart test renders a real report in headless Chromium.
TEST_F(ReportTest, RenderScriptDrawsEveryPlot) {
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node not installed";
  build_store();
  {
    auto db = Store::open(store_path_);
    auto run = db->upsert_run("hist", "norm=bn", R"({"hist":1})", 3);
    for (int64_t e = 0; e < 2; ++e) {
      EpochRecords r;
      const std::vector<double> edges = {-8, -6, -4};
      r.histograms.push_back({"grad_hist/pre/fc", Axis::kEpoch, e, hist("log10", edges, {1, 2})});
      r.histograms.push_back({"grad_hist/post/fc", Axis::kEpoch, e, hist("log10", edges, {2, 1})});
      r.histograms.push_back({"grad_hist/pre/conv", Axis::kEpoch, e, hist("log10", edges, {0, 1})});
      r.histograms.push_back({"weight_hist/fc", Axis::kEpoch, e, hist("linear", {0, 1}, {3})});
      db->write_epoch(run.id, e, r);
    }
    // A second configuration's histograms: the difference panel between the two.
    auto other = db->upsert_run("hist ln", "norm=ln", R"({"hist":2})", 3);
    for (int64_t e = 0; e < 2; ++e) {
      EpochRecords r;
      r.histograms.push_back({"weight_hist/fc", Axis::kEpoch, e, hist("linear", {0, 1}, {5})});
      db->write_epoch(other.id, e, r);
    }
    // Surfaces at two epochs (an epoch <select>) and a 1-D curve, in a group of their own.
    auto land = db->upsert_run("land", "norm=frn", R"({"land":1})", 3);
    for (int64_t e = 0; e < 2; ++e) {
      EpochRecords r;
      r.surfaces.push_back({"landscape/epoch", e, non_square_landscape()});
      Surface curve;
      curve.x = {0.0, 0.5, 1.0};
      curve.y = {0.0};
      curve.z = {{1.0, 0.5, 0.2}};
      r.surfaces.push_back({"interpolation", e, curve});
      db->write_epoch(land.id, e, r);
    }
  }
  write_html_report(options());
  fs::path check = fs::path(__FILE__).parent_path() / "render_check.js";
  if (const char* src = std::getenv("NORMLAB_SOURCE_DIR")) {
    check = fs::path(src) / "tests" / "report" / "render_check.js";
  }
  std::string log = (dir_ / "render.log").string();
  int rc = std::system(
      ("node '" + check.string() + "' '" + out_path_ + "' > '" + log + "' 2>&1").c_str());
  EXPECT_EQ(rc, 0) << read_file_text(log);
  EXPECT_EQ(read_file_text(log), "ok\n");
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
  // (A named copy: range-for over a member of a temporary would read freed memory.)
  auto data = embedded_data(html);
  for (const auto& curve : data["curves"]) {
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
  // An installed normlab's own copy comes before the source tree it was built from.
  ASSERT_GE(candidates.size(), 3u);
  EXPECT_NE(candidates[1].find("share/normlab/plotly.min.js"), std::string::npos);
  EXPECT_NE(candidates[2].find("node_modules/plotly.js-dist-min/plotly.min.js"), std::string::npos);
}

TEST(ReportAssets, EscapesClosingScriptTags) {
  EXPECT_EQ(escape_script_text("a</script>b</SCRIPT >c</div>"), "a<\\/script>b<\\/SCRIPT >c</div>");
  EXPECT_EQ(escape_script_text("</scrip"), "</scrip");
}

}  // namespace
}  // namespace normlab::report
