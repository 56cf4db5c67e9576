// `normlab study new` and `normlab study validate` as a new user runs them: a study from every
// shipped template, checked, planned and timed without training, then run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cli/run_normlab.h"
#include "core/files.h"

namespace {

namespace fs = std::filesystem;
using normlab::testing::RunResult;

RunResult run(const std::string& args) { return normlab::testing::run_normlab(args); }

class StudyTools : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("normlab_study_tools_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(StudyTools, EveryTemplateBecomesAStudyThatValidatesAndRuns) {
  RunResult list = run("study new --list");
  ASSERT_EQ(list.code, 0) << list.output;
  for (const char* id : {"quickstart", "s0", "s3", "s4"}) {
    EXPECT_NE(list.output.find(id), std::string::npos) << id << "\n" << list.output;
    const std::string spec = path(std::string("mine_") + id + ".toml");
    RunResult made = run("study new " + path(std::string("mine_") + id) + " --from " + id);
    ASSERT_EQ(made.code, 0) << made.output;
    ASSERT_TRUE(fs::exists(spec)) << made.output;
    const std::string text = normlab::read_file_text(spec);
    EXPECT_NE(text.find("name = \"mine_" + std::string(id) + "\""), std::string::npos) << text;
    EXPECT_NE(text.find("normlab study validate " + spec), std::string::npos);

    RunResult checked = run("study validate " + spec + " --smoke --threads 1");
    ASSERT_EQ(checked.code, 0) << id << "\n" << checked.output;
    EXPECT_NE(checked.output.find("is valid: study 'mine_" + std::string(id) + "'"),
              std::string::npos)
        << checked.output;
    EXPECT_NE(checked.output.find("group 1:"), std::string::npos) << checked.output;
    EXPECT_NE(checked.output.find("estimated wall time: about"), std::string::npos)
        << checked.output;
  }
  // The quickstart's smoke variant trains from its new file (the other templates' smoke
  // variants run in their own tests).
  RunResult ran = run("study run " + path("mine_quickstart.toml") +
                      " --smoke --quiet --no-report --threads 1 --out " + path("out"));
  EXPECT_EQ(ran.code, 0) << ran.output;
  EXPECT_NE(ran.output.find("study 'mine_quickstart'"), std::string::npos) << ran.output;
}

TEST_F(StudyTools, NewRefusesToOverwriteAndNamesUnknownTemplates) {
  const std::string spec = path("taken.toml");
  std::ofstream(spec) << "# mine\n";
  RunResult again = run("study new " + spec + " --from s0");
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.output.find("already exists"), std::string::npos) << again.output;
  EXPECT_EQ(normlab::read_file_text(spec), "# mine\n");

  RunResult unknown = run("study new " + path("x") + " --from s9");
  EXPECT_NE(unknown.code, 0);
  EXPECT_NE(unknown.output.find("template 's9'"), std::string::npos) << unknown.output;
  EXPECT_NE(unknown.output.find("available: quickstart, s0"), std::string::npos) << unknown.output;
  EXPECT_FALSE(fs::exists(path("x.toml")));
}

TEST_F(StudyTools, ValidateShowsTheFeatureCacheAndRefusesWhatARunWould) {
  const std::string s0 = normlab::testing::source_path("studies/s0_norm_heads.toml");
  RunResult cached = run("study validate " + s0 +
                         " --smoke --no-measure --set data.augment.crop_padding=0"
                         " --set train.frozen_bn=freeze");
  ASSERT_EQ(cached.code, 0) << cached.output;
  EXPECT_NE(cached.output.find("6 run(s) in 1 group(s)"), std::string::npos) << cached.output;
  EXPECT_NE(cached.output.find("read from the feature cache"), std::string::npos) << cached.output;
  EXPECT_EQ(cached.output.find("estimated wall time"), std::string::npos) << cached.output;

  RunResult faithful = run("study validate " + s0 + " --smoke --no-measure");
  ASSERT_EQ(faithful.code, 0) << faithful.output;
  EXPECT_NE(faithful.output.find("run every batch (augmentation other than horizontal flips"),
            std::string::npos)
      << faithful.output;

  // A pattern that matches nothing, a dataset that is not there, weights that do not exist.
  RunResult typo = run("study validate " + s0 + " --smoke --no-measure" +
                       " --set train.trainable=[\\\"features.81\\\",\\\"head\\\"]");
  EXPECT_NE(typo.code, 0);
  EXPECT_NE(typo.output.find("features.81"), std::string::npos) << typo.output;
  RunResult no_data =
      run("study validate " + s0 + " --no-measure --set data.path=" + path("nowhere") +
          " --set model.weights=\\\"\\\"");
  EXPECT_NE(no_data.code, 0);
  EXPECT_NE(no_data.output.find("nowhere"), std::string::npos) << no_data.output;
  RunResult no_weights = run("study validate " + s0 + " --smoke --no-measure" +
                             " --set model.weights=" + path("missing.safetensors"));
  EXPECT_NE(no_weights.code, 0);
  EXPECT_NE(no_weights.output.find("missing.safetensors"), std::string::npos) << no_weights.output;
  EXPECT_NE(no_weights.output.find("file not found"), std::string::npos) << no_weights.output;
}

}  // namespace
