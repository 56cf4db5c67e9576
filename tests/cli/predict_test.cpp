// `normlab predict` against an in-process forward pass of the same weights and image.
#include <gtest/gtest.h>

#include <stb/stb_image_write.h>
#include "cli/run_normlab.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "data/batcher.h"
#include "data/preprocess.h"
#include "io/image.h"
#include "models/model.h"
#include "study/weights.h"

namespace {

namespace fs = std::filesystem;

std::string capture(const std::string& args, int* code) {
  auto r = normlab::testing::run_normlab(args);
  *code = r.code;
  return r.output;
}

class PredictTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("normlab_predict_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // A 48x40 RGB image with structure, so resizing and cropping matter.
    int w = 48, h = 40;
    std::vector<unsigned char> px(static_cast<size_t>(w * h * 3));
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        unsigned char* p = &px[static_cast<size_t>((y * w + x) * 3)];
        p[0] = static_cast<unsigned char>(x * 5);
        p[1] = static_cast<unsigned char>(y * 6);
        p[2] = static_cast<unsigned char>((x * y) % 251);
      }
    }
    image_ = (dir_ / "img.png").string();
    ASSERT_NE(stbi_write_png(image_.c_str(), w, h, 3, px.data(), w * 3), 0);

    normlab::models::ModelOptions mo;
    mo.backbone = "mobilenet_v2";
    mo.width_mult = 0.25;
    mo.in_channels = 3;
    mo.num_classes = 7;
    mo.head.kind = "torchvision";
    torch::manual_seed(3);
    model_ = normlab::models::build_model(mo);
    {
      // torchvision initialises the classifier with std 0.01: logits would be nearly tied.
      torch::NoGradGuard ng;
      for (auto& p : model_->head->parameters()) p.normal_(0.0, 1.0);
    }
    weights_ = (dir_ / "w.safetensors").string();
    normlab::study::save_final_weights(*model_, weights_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string image_, weights_;
  normlab::models::Classifier model_{nullptr};
};

TEST_F(PredictTest, LogitsMatchAnInProcessForwardPass) {
  int code = 0;
  std::string out = capture("predict --model mobilenet_v2 --width-mult 0.25 --weights " + weights_ +
                                " --resize 36 --crop 32 --top 3 --json --threads 1 " + image_,
                            &code);
  ASSERT_EQ(code, 0) << out;
  auto json = nlohmann::json::parse(out.substr(out.find('[')));
  ASSERT_EQ(json.size(), 1u);
  ASSERT_EQ(json[0]["logits"].size(), 7u);
  EXPECT_EQ(json[0]["top"].size(), 3u);
  // 7 classes but 1000 ImageNet labels: class ids are printed instead.
  EXPECT_NE(out.find("printing class ids"), std::string::npos);

  normlab::data::PreprocessOptions pre;
  pre.resize = 36;
  pre.crop = 32;
  auto preset = normlab::data::normalize_preset("imagenet", 3);
  pre.mean = preset.mean;
  pre.stddev = preset.stddev;
  model_->eval();
  torch::NoGradGuard ng;
  auto x = normlab::data::preprocess_image(normlab::io::read_image(image_), pre).unsqueeze(0);
  auto logits = model_->forward(x).squeeze(0);
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_NEAR(json[0]["logits"][i].get<double>(), logits[i].item<double>(), 1e-4) << i;
  }
  int64_t best = logits.argmax().item<int64_t>();
  EXPECT_EQ(json[0]["top"][0]["class"].get<int64_t>(), best);
}

TEST_F(PredictTest, BadInputsAreRefusedWithTheirNames) {
  int code = 0;
  // Wrong architecture for the weights: every mismatch is reported, nothing is loaded.
  std::string out =
      capture("predict --model mobilenet_v2 --weights " + weights_ + " " + image_, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find(weights_), std::string::npos) << out;
  EXPECT_NE(out.find("with other shapes"), std::string::npos) << out;

  std::string broken = (dir_ / "broken.png").string();
  std::ofstream(broken) << "\x89PNG not really";
  out = capture(
      "predict --model mobilenet_v2 --width-mult 0.25 --weights " + weights_ + " " + broken, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find(broken), std::string::npos) << out;

  std::string truncated = (dir_ / "truncated.safetensors").string();
  {
    std::ifstream in(weights_, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  out = capture(
      "predict --model mobilenet_v2 --width-mult 0.25 --weights " + truncated + " " + image_,
      &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find(truncated), std::string::npos) << out;

  out = capture("predict --weights torchvision:mobilenet_v2:IMAGENET1K_V9 " + image_, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("IMAGENET1K_V9"), std::string::npos) << out;
  EXPECT_NE(out.find("torchvision:mobilenet_v2:IMAGENET1K_V1"), std::string::npos) << out;
}

}  // namespace
