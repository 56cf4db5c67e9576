#include "models/pretrained.h"

#include <gtest/gtest.h>

#include <set>

#include "../io/test_files.h"
#include "core/error.h"

namespace normlab::models {
namespace {

using testing::EnvGuard;
using testing::expect_error;

TEST(Pretrained, ListsTheTorchvisionWeights) {
  const std::vector<std::string> want = {
      "torchvision:mobilenet_v2:IMAGENET1K_V1", "torchvision:mobilenet_v2:IMAGENET1K_V2",
      "torchvision:resnet18:IMAGENET1K_V1", "torchvision:resnet50:IMAGENET1K_V1",
      "torchvision:resnet50:IMAGENET1K_V2"};
  EXPECT_EQ(pretrained_ids(), want);
}

TEST(Pretrained, EveryEntryIsConsistent) {
  std::set<std::string> files;
  for (const auto& id : pretrained_ids()) {
    const auto& w = find_pretrained(id);
    EXPECT_EQ(w.id, id);
    // The id names the architecture: "torchvision:<architecture>:<weights>".
    EXPECT_EQ(id.substr(12, w.architecture.size() + 1), w.architecture + ":") << id;
    EXPECT_EQ(w.url.rfind("https://download.pytorch.org/models/", 0), 0u) << id;
    // torchvision file names carry the first 8 hex digits of the SHA-256: <arch>-<hex>.pth.
    EXPECT_EQ(w.file_name(), w.architecture + "-" + w.sha256.substr(0, 8) + ".pth") << id;
    EXPECT_GE(w.sha256.size(), 8u);
    EXPECT_EQ(w.num_classes, 1000);
    EXPECT_EQ(w.layout, "torchvision-state-dict");
    EXPECT_EQ(w.preprocessing.crop, 224);
    EXPECT_EQ(w.preprocessing.interpolation, "bilinear");
    EXPECT_DOUBLE_EQ(w.preprocessing.mean[0], 0.485);
    EXPECT_DOUBLE_EQ(w.preprocessing.std[2], 0.225);
    EXPECT_TRUE(files.insert(w.file_name()).second) << "duplicate file " << w.file_name();
  }
}

TEST(Pretrained, KnowsEachRecipesResize) {
  EXPECT_EQ(find_pretrained("torchvision:mobilenet_v2:IMAGENET1K_V1").file_name(),
            "mobilenet_v2-b0353104.pth");
  EXPECT_EQ(find_pretrained("torchvision:mobilenet_v2:IMAGENET1K_V1").preprocessing.resize, 256);
  EXPECT_EQ(find_pretrained("torchvision:mobilenet_v2:IMAGENET1K_V2").file_name(),
            "mobilenet_v2-7ebf99e0.pth");
  EXPECT_EQ(find_pretrained("torchvision:mobilenet_v2:IMAGENET1K_V2").preprocessing.resize, 232);
  EXPECT_EQ(find_pretrained("torchvision:resnet18:IMAGENET1K_V1").file_name(),
            "resnet18-f37072fd.pth");
  EXPECT_EQ(find_pretrained("torchvision:resnet18:IMAGENET1K_V1").preprocessing.resize, 256);
  EXPECT_EQ(find_pretrained("torchvision:resnet50:IMAGENET1K_V1").file_name(),
            "resnet50-0676ba61.pth");
  EXPECT_EQ(find_pretrained("torchvision:resnet50:IMAGENET1K_V1").preprocessing.resize, 256);
  EXPECT_EQ(find_pretrained("torchvision:resnet50:IMAGENET1K_V2").file_name(),
            "resnet50-11ad3fa6.pth");
  EXPECT_EQ(find_pretrained("torchvision:resnet50:IMAGENET1K_V2").preprocessing.resize, 232);
}

TEST(Pretrained, UnknownIdListsTheKnownOnes) {
  expect_error([] { find_pretrained("torchvision:resnet18:IMAGENET1K_V2"); },
               {"torchvision:resnet18:IMAGENET1K_V2", "unknown",
                "torchvision:resnet18:IMAGENET1K_V1", "torchvision:resnet50:IMAGENET1K_V2"});
}

TEST(Pretrained, CachePathIsUnderTheCacheWeightsDirectory) {
  EnvGuard cache("NORMLAB_CACHE", "/data/normlab-cache");
  EXPECT_EQ(pretrained_cache_path(find_pretrained("torchvision:resnet18:IMAGENET1K_V1")),
            "/data/normlab-cache/weights/resnet18-f37072fd.pth");
}

}  // namespace
}  // namespace normlab::models
