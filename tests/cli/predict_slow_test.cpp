// Opt-in (label "slow"): real ImageNet weights from ../shared/data (MobileNetV2 converted
// from TFLite) classify real photos correctly — only with TF 'SAME' padding and (p-128)/128
// input scaling, which is what the options exist for.
#include <gtest/gtest.h>

#include "cli/run_normlab.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace {

namespace fs = std::filesystem;

std::string capture(const std::string& args, int* code) {
  auto r = normlab::testing::run_normlab(args);
  *code = r.code;
  return r.output;
}

TEST(PredictSlow, TfliteMobileNetV2ClassifiesRealPhotos) {
  fs::path data = fs::path(std::getenv("NORMLAB_SOURCE_DIR")) / ".." / "shared" / "data";
  fs::path weights = data / "weights" / "mobilenet_v2_imagenet_tflite_qat_dequant.safetensors";
  if (!fs::exists(weights)) GTEST_SKIP() << "no " << weights;
  const std::pair<const char*, const char*> photos[] = {
      {"bird.png", "chickadee"},      {"cat.png", "Egyptian cat"},
      {"dragonfly.png", "dragonfly"}, {"parrot.jpg", "macaw"},
      {"hot_dog.jpg", "hotdog"},      {"grace_hopper.png", "military uniform"}};
  std::string common = "predict --model mobilenet_v2 --weights " + weights.string() +
                       " --input-scale tf-128 --resize 224 --crop 224 --top 1 --json";
  std::string files;
  for (const auto& [file, label] : photos) files += " " + (data / "photos" / file).string();

  int code = 0;
  std::string out = capture(common + " --padding tf-same" + files, &code);
  ASSERT_EQ(code, 0) << out;
  auto json = nlohmann::json::parse(out.substr(out.find('[')));
  ASSERT_EQ(json.size(), 6u);
  double tf_confidence = 0;
  for (size_t i = 0; i < 6; ++i) {
    std::string label = json[i]["top"][0]["label"];
    EXPECT_EQ(label.rfind(photos[i].second, 0), 0u) << photos[i].first << " -> " << label;
    tf_confidence += json[i]["top"][0]["probability"].get<double>();
  }
  EXPECT_GT(tf_confidence / 6, 0.7);

  // torchvision's symmetric padding on the same weights: predictions degrade.
  std::string sym = capture(common + " --padding torch" + files, &code);
  ASSERT_EQ(code, 0) << sym;
  auto sym_json = nlohmann::json::parse(sym.substr(sym.find('[')));
  double sym_confidence = 0;
  for (size_t i = 0; i < 6; ++i)
    sym_confidence += sym_json[i]["top"][0]["probability"].get<double>();
  EXPECT_LT(sym_confidence, tf_confidence);
}

}  // namespace
