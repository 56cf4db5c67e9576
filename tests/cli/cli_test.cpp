// Runs the normlab binary the way a user does and checks what they would see.
#include <gtest/gtest.h>

#include <torch/version.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/run_normlab.h"
#include "core/files.h"
#include "core/version.h"
#include "io/state_dict.h"
#include "io/test_files.h"
#include "models/model.h"
#include "models/pretrained.h"
#include "study/weights.h"

namespace {

namespace fs = std::filesystem;

using Result = normlab::testing::RunResult;

Result run(const std::string& args) { return normlab::testing::run_normlab(args); }

std::string source(const std::string& rel) { return normlab::testing::source_path(rel); }

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("normlab_cli_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(Cli, QuickstartSmokeRunsAndWritesReport) {
  auto dir = temp_dir("smoke");
  Result r = run("study run " + source("studies/quickstart.toml") +
                 " --smoke --quiet --threads 1 --out " + dir.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("6 runs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("report written to"), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(dir / "report.html"));
  std::string html = normlab::read_file_text((dir / "report.html").string());
  for (const char* group :
       {"norm=bn clip_norm=0.0", "norm=ln clip_norm=0.1", "norm=frn clip_norm=0.1"}) {
    EXPECT_NE(html.find(group), std::string::npos) << group;
  }
  // Second invocation: nothing left to train.
  Result again = run("study run " + source("studies/quickstart.toml") +
                     " --smoke --quiet --threads 1 --out " + dir.string());
  EXPECT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("0 runs trained, 7 already complete"), std::string::npos)
      << again.output;
  fs::remove_all(dir);
}

TEST(Cli, S0SmokeFineTunesFromAWeightsFile) {
  auto dir = temp_dir("s0");
  // torchvision-layout MobileNetV2 weights (width 0.25, ImageNet-style 1000-class classifier).
  normlab::models::ModelOptions mo;
  mo.backbone = "mobilenet_v2";
  mo.width_mult = 0.25;
  mo.in_channels = 3;
  mo.num_classes = 1000;
  mo.head.kind = "torchvision";
  auto model = normlab::models::build_model(mo);
  std::string weights = (dir / "mnv2.safetensors").string();
  normlab::study::save_final_weights(*model, weights);

  std::string spec = source("studies/s0_norm_heads.toml");
  Result r =
      run("study run " + spec + " --smoke --quiet --threads 1 --set model.weights=" + weights +
          " --set model.head.norm=frn --set model.recalibrate_bn=true"
          " --set model.recalibrate_batches=2 --set train.eval_batch_size=16 --out " +
          dir.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("2 runs"), std::string::npos) << r.output;
  // BN statistics measured on exactly 2 evaluation batches of 16 images, once per run.
  EXPECT_NE(r.output.find("recalibrated 52 BatchNorm layers on 32 images"), std::string::npos)
      << r.output;

  // Another lockstep group of the same study (another batch size) reuses the recalibration,
  // and trains bit-identically to a study that recalibrates afresh.
  const std::string recal =
      " --set model.head.norm=frn --set model.recalibrate_bn=true"
      " --set model.recalibrate_batches=2 --set train.eval_batch_size=16"
      " --set train.batch_size=8 --out ";
  Result again =
      run("study run " + spec + " --smoke --quiet --threads 1 --set model.weights=" + weights +
          recal + dir.string());
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(again.output.find("recalibrated 52"), std::string::npos) << again.output;
  EXPECT_NE(again.output.find("recalibrated BatchNorm statistics reused"), std::string::npos)
      << again.output;
  Result fresh =
      run("study run " + spec + " --smoke --quiet --threads 1 --set model.weights=" + weights +
          recal + (dir / "fresh").string());
  ASSERT_EQ(fresh.code, 0) << fresh.output;
  EXPECT_NE(fresh.output.find("recalibrated 52"), std::string::npos) << fresh.output;
  size_t compared = 0;
  for (const auto& e : fs::directory_iterator(dir / "fresh" / "runs")) {
    const auto name = e.path().filename();
    const auto a = normlab::io::load_state_dict((e.path() / "model.safetensors").string());
    const auto b =
        normlab::io::load_state_dict((dir / "runs" / name / "model.safetensors").string());
    for (const auto& [key, t] : a.items) {
      ASSERT_NE(b.find(key), nullptr) << key;
      EXPECT_TRUE(torch::equal(t, *b.find(key))) << name << " " << key;
    }
    ++compared;
  }
  EXPECT_EQ(compared, 2u);

  // Without skipping torchvision's classifier the file does not fit the S0 model.
  Result bad =
      run("study run " + spec + " --smoke --quiet --threads 1 --set model.weights=" + weights +
          " --set model.weights_skip=[\\\"head\\\"] --out " + (dir / "bad").string());
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("unexpected: classifier.1.weight"), std::string::npos) << bad.output;
  fs::remove_all(dir);
}

// Issue 11: a log (not a terminal) shows periodic lines with images/s and ETA for every long
// phase, not one line and then silence while the feature cache is built.
TEST(Cli, LongPhasesPrintProgressToALog) {
  auto dir = temp_dir("progress");
  Result r;
  {
    normlab::testing::EnvGuard every_batch("NORMLAB_PROGRESS_SECONDS", "0");      // a tiny study
    normlab::testing::EnvGuard cache("NORMLAB_CACHE", (dir / "cache").string());  // not reused
    r = run("study run " + source("studies/s0_norm_heads.toml") +
            " --smoke --threads 1 --set model.head.norm=bn --set train.clip_norm=0.0"
            " --set data.augment.crop_padding=0 --set train.frozen_bn=freeze --out " +
            dir.string());
  }
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* line : {"feature cache (train, 76 images x 2 view(s)): batch 1/",
                           "feature cache (val, 20 images x 1 view(s)): batch 1/",
                           "evaluating 1 run(s) on val: batch 1/", "img/s  ETA", "took "}) {
    EXPECT_NE(r.output.find(line), std::string::npos) << line << "\n" << r.output;
  }
  fs::remove_all(dir);
}

TEST(Cli, VersionNamesNormlabCommitAndLibTorch) {
  Result r = run("--version");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("normlab " + normlab::normlab_version() + " (commit "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("LibTorch " TORCH_VERSION ")"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("commit unknown"), std::string::npos) << "built from git: " << r.output;
}

// Doctor's verdicts follow what is on disk: an empty cache has no weights and no datasets of
// its own, a cache holding a registered file reports it cached, and the measured rates are
// real numbers.
TEST(Cli, DoctorReportsWhatItFindsAndHowToFixTheRest) {
  auto dir = temp_dir("doctor");
  normlab::testing::EnvGuard cache("NORMLAB_CACHE", (dir / "cache").string());
  Result r = run("doctor --json");
  ASSERT_EQ(r.code, 0) << r.output;
  auto json = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  std::map<std::string, nlohmann::json> items;
  for (const auto& it : json.at("items")) items[it.at("name").get<std::string>()] = it;
  for (const char* name : {"normlab", "libtorch", "cuda", "threads", "blas", "onednn", "cache",
                           "report", "data:cifar10", "data:fashion-mnist"}) {
    ASSERT_TRUE(items.count(name)) << name << "\n" << r.output;
    const std::string verdict = items[name].at("verdict");
    EXPECT_TRUE(verdict == "ok" || verdict == "slow" || verdict == "missing") << verdict;
    EXPECT_EQ(verdict == "ok", items[name].at("fix").get<std::string>().empty()) << name;
  }
  EXPECT_GT(items["blas"]["values"]["gflops"].get<double>(), 0.1);
  EXPECT_EQ(items["cache"]["values"]["path"], (dir / "cache").string());
  // CIFAR-10 is not in Debian's dataset packages nor in this empty cache.
  EXPECT_EQ(items["data:cifar10"]["verdict"], "missing");
  EXPECT_NE(items["data:cifar10"]["fix"].get<std::string>().find("normlab data fetch cifar10"),
            std::string::npos);
  const std::string id = "torchvision:mobilenet_v2:IMAGENET1K_V1";
  ASSERT_TRUE(items.count("weights:" + id)) << r.output;
  EXPECT_EQ(items["weights:" + id]["verdict"], "missing");

  // A file at the registered weights' cache path counts as cached, with its size.
  const auto path = normlab::models::pretrained_cache_path(normlab::models::find_pretrained(id));
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << std::string(1500, 'w');
  Result text = run("doctor");
  ASSERT_EQ(text.code, 0) << text.output;
  EXPECT_NE(text.output.find("cached: " + path + " (1.5 KB)"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("fix: normlab data fetch cifar10"), std::string::npos) << text.output;
  fs::remove_all(dir);
}

TEST(Cli, BadSpecIsRefusedAndStoreUntouched) {
  auto dir = temp_dir("bad");
  // An existing store from an earlier study.
  std::string db = (dir / "study.db").string();
  { std::ofstream(db, std::ios::binary) << "placeholder bytes"; }
  auto before = normlab::read_file_bytes(db);
  std::string spec = (dir / "bad.toml").string();
  std::ofstream(spec) << "[run]\ntrain.optimizer.lrr = 0.1\n";
  Result r = run("study run " + spec + " --out " + dir.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find(spec), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train.optimizer.lrr"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("did you mean 'lr'"), std::string::npos) << r.output;
  EXPECT_EQ(normlab::read_file_bytes(db), before);

  // A valid spec pointed at a corrupt store: refused, store bytes unchanged.
  Result c = run("study run " + source("studies/quickstart.toml") +
                 " --smoke --quiet --threads 1 --out " + dir.string());
  EXPECT_EQ(c.code, 2) << c.output;
  EXPECT_NE(c.output.find(db), std::string::npos) << c.output;
  EXPECT_EQ(normlab::read_file_bytes(db), before);

  Result s = run("study run " + source("studies/quickstart.toml") +
                 " --set train.epochs=zero --out " + dir.string());
  EXPECT_EQ(s.code, 2);
  EXPECT_NE(s.output.find("--set train.epochs=zero"), std::string::npos) << s.output;
  fs::remove_all(dir);
}

TEST(Cli, ConfigShowPrintsDefaultsAndResolvedRuns) {
  Result d = run("config show");
  ASSERT_EQ(d.code, 0) << d.output;
  EXPECT_NE(d.output.find("train.frozen_bn = \"update\""), std::string::npos) << d.output;
  Result q = run("config show " + source("studies/quickstart.toml") +
                 " --set train.epochs=2 --set pretrain.train.epochs=1");
  ASSERT_EQ(q.code, 0) << q.output;
  EXPECT_NE(q.output.find("[norm=frn clip_norm=0.1 seed=1]"), std::string::npos);
  // Each value says where it came from.
  auto has = [&](const std::string& line) {
    EXPECT_NE(q.output.find(line), std::string::npos) << line << "\n" << q.output;
  };
  has("model.head.norm = \"frn\"");
  has("# [grid]");
  has("data.train_limit = 6000");
  has("# [run]");
  has("train.epochs = 2");
  has("# --set");
  has("train.label_smoothing = 0.0");
  has("# default");
  has("# [study] seeds");
  has("probe.grad_hist.enabled = true");
  std::string frn = q.output.substr(q.output.find("[norm=frn clip_norm=0.1 seed=1]"));
  frn = frn.substr(0, frn.find("\n[", 1));
  auto source_of = [&](const std::string& key) {
    auto at = frn.find("\n" + key + " = ");
    EXPECT_NE(at, std::string::npos) << key;
    auto end = frn.find('\n', at + 1);
    return frn.substr(frn.rfind("# ", end) + 2, end - frn.rfind("# ", end) - 2);
  };
  EXPECT_EQ(source_of("model.head.norm"), "[grid]");
  EXPECT_EQ(source_of("train.clip_norm"), "[grid]");
  EXPECT_EQ(source_of("train.epochs"), "--set");
  EXPECT_EQ(source_of("model.width"), "[run]");
  EXPECT_EQ(source_of("train.label_smoothing"), "default");
  EXPECT_EQ(source_of("seed"), "[study] seeds");
  std::string pre = q.output.substr(q.output.find("[pretrain]"));
  EXPECT_NE(pre.find("train.epochs = 1"), std::string::npos);
  Result j = run("config show --json " + source("studies/quickstart.toml") + " --smoke");
  ASSERT_EQ(j.code, 0) << j.output;
  EXPECT_NE(j.output.find("\"[smoke.run]\""), std::string::npos);
}

TEST(Cli, ReportOnMissingStudyNamesPath) {
  Result r = run("report /nonexistent/normlab-study");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("/nonexistent/normlab-study"), std::string::npos) << r.output;
}

}  // namespace
