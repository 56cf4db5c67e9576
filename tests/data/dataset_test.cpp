#include "data/dataset.h"

#include <gtest/gtest.h>

#include "../io/test_files.h"

namespace normlab::data {
namespace {

using testing::expect_error;

// n samples, label i % classes, image i filled with the value i (so rows can be traced).
Dataset make_dataset(int64_t n, int64_t classes) {
  Dataset ds;
  ds.name = "toy";
  ds.images = torch::arange(n, torch::kInt64)
                  .to(torch::kUInt8)
                  .view({n, 1, 1, 1})
                  .expand({n, 2, 3, 3})
                  .contiguous();
  ds.labels = torch::arange(n, torch::kInt64).remainder(classes);
  ds.num_classes = classes;
  for (int64_t c = 0; c < classes; ++c) ds.class_names.push_back("class" + std::to_string(c));
  return ds;
}

TEST(Dataset, ValidateAcceptsConsistentDataset) {
  auto ds = make_dataset(20, 4);
  EXPECT_NO_THROW(ds.validate());
  EXPECT_EQ(ds.size(), 20);
}

TEST(Dataset, ValidateRefusesInconsistencies) {
  auto ds = make_dataset(20, 4);
  auto bad = ds;
  bad.images = ds.images.to(torch::kFloat32);
  expect_error([&] { bad.validate(); }, {"dataset 'toy'", "uint8"});
  bad = ds;
  bad.images = ds.images.squeeze(1).select(1, 0);
  expect_error([&] { bad.validate(); }, {"(N, C, H, W)"});
  bad = ds;
  bad.labels = ds.labels.slice(0, 0, 19);
  expect_error([&] { bad.validate(); }, {"20 images but 19 labels"});
  bad = ds;
  bad.labels = ds.labels.clone();
  bad.labels[3] = 4;
  expect_error([&] { bad.validate(); }, {"outside [0, 4)"});
  bad = ds;
  bad.class_names.pop_back();
  expect_error([&] { bad.validate(); }, {"3 class names for 4 classes"});
  bad = ds;
  bad.labels = ds.labels.to(torch::kInt32);
  expect_error([&] { bad.validate(); }, {"int64"});
}

TEST(Dataset, SubsetTakesRowsInIndexOrder) {
  auto ds = make_dataset(10, 3);
  auto sub = subset(ds, torch::tensor({7, 2, 2}, torch::kInt64));
  ASSERT_EQ(sub.size(), 3);
  EXPECT_TRUE(torch::equal(sub.labels, torch::tensor({1, 2, 2}, torch::kInt64)));
  EXPECT_EQ(sub.images[0][1][2][2].item<int>(), 7);
  EXPECT_EQ(sub.images[1][0][0][0].item<int>(), 2);
  EXPECT_EQ(sub.num_classes, 3);
  EXPECT_EQ(sub.class_names, ds.class_names);
  expect_error([&] { subset(ds, torch::tensor({0, 10}, torch::kInt64)); }, {"outside [0, 10)"});
}

TEST(Dataset, SelectClassesRelabelsInListedOrder) {
  auto ds = make_dataset(30, 10);  // labels 0..9, three samples each
  auto sel = select_classes(ds, {7, 5, 6});
  sel.validate();
  EXPECT_EQ(sel.num_classes, 3);
  EXPECT_EQ(sel.class_names, (std::vector<std::string>{"class7", "class5", "class6"}));
  ASSERT_EQ(sel.size(), 9);
  // Samples keep their original order; image value i tells the original index.
  for (int64_t i = 0; i < sel.size(); ++i) {
    const int64_t original = sel.images[i][0][0][0].item<int64_t>();
    const int64_t old_label = original % 10;
    const int64_t expected = old_label == 7 ? 0 : (old_label == 5 ? 1 : 2);
    EXPECT_EQ(sel.labels[i].item<int64_t>(), expected) << "sample from index " << original;
    if (i > 0) {
      EXPECT_GT(original, sel.images[i - 1][0][0][0].item<int64_t>());
    }
  }
  auto counts = torch::bincount(sel.labels);
  EXPECT_TRUE(torch::equal(counts, torch::tensor({3, 3, 3}, torch::kInt64)));
}

TEST(Dataset, SelectClassesRefusesBadLists) {
  auto ds = make_dataset(30, 10);
  expect_error([&] { select_classes(ds, {1, 10}); }, {"dataset 'toy'", "class 10", "[0, 10)"});
  expect_error([&] { select_classes(ds, {-1}); }, {"class -1"});
  expect_error([&] { select_classes(ds, {3, 4, 3}); }, {"class 3 is listed twice"});
  expect_error([&] { select_classes(ds, {}); }, {"at least one class"});
}

// Class c has 10 + 3c samples, interleaved.
torch::Tensor uneven_labels() {
  std::vector<int64_t> labels;
  for (int64_t c = 0; c < 4; ++c) {
    for (int64_t i = 0; i < 10 + 3 * c; ++i) labels.push_back(c);
  }
  auto t = torch::tensor(labels, torch::kInt64);
  return t.index_select(0, torch::randperm(t.size(0), torch::kInt64));
}

TEST(Dataset, StratifiedSplitCountsAndDisjointness) {
  torch::manual_seed(1);
  auto labels = uneven_labels();
  const int64_t n = labels.size(0);
  auto split = stratified_split(labels, 4, 0.25, 7);
  // round(0.25 * n_c) per class: n_c = 10, 13, 16, 19 -> 3 (2.5 rounds up), 3, 4, 5.
  const std::vector<int64_t> expected_val = {3, 3, 4, 5};
  for (int64_t c = 0; c < 4; ++c) {
    const int64_t n_c = 10 + 3 * c;
    const int64_t val_c = (labels.index_select(0, split.val) == c).sum().item<int64_t>();
    const int64_t train_c = (labels.index_select(0, split.train) == c).sum().item<int64_t>();
    EXPECT_EQ(val_c, expected_val[static_cast<size_t>(c)]) << "class " << c;
    EXPECT_EQ(train_c, n_c - val_c) << "class " << c;
  }
  // Sorted, disjoint, and together every index once.
  EXPECT_TRUE(torch::equal(split.train, std::get<0>(split.train.sort())));
  EXPECT_TRUE(torch::equal(split.val, std::get<0>(split.val.sort())));
  auto all = std::get<0>(torch::cat({split.train, split.val}).sort());
  EXPECT_TRUE(torch::equal(all, torch::arange(n, torch::kInt64)));
}

TEST(Dataset, StratifiedSplitIsDeterministicAndSeedDependent) {
  torch::manual_seed(2);
  auto labels = uneven_labels();
  auto a = stratified_split(labels, 4, 0.3, 11);
  torch::manual_seed(99);  // the global generator must not matter
  auto b = stratified_split(labels, 4, 0.3, 11);
  EXPECT_TRUE(torch::equal(a.val, b.val));
  EXPECT_TRUE(torch::equal(a.train, b.train));
  auto c = stratified_split(labels, 4, 0.3, 12);
  EXPECT_EQ(c.val.size(0), a.val.size(0));
  EXPECT_FALSE(torch::equal(a.val, c.val));
}

TEST(Dataset, StratifiedSplitEdgesAndErrors) {
  auto labels = torch::arange(20, torch::kInt64).remainder(2);
  auto none = stratified_split(labels, 2, 0.0, 0);
  EXPECT_EQ(none.val.size(0), 0);
  EXPECT_EQ(none.train.size(0), 20);
  auto all = stratified_split(labels, 2, 1.0, 0);
  EXPECT_EQ(all.val.size(0), 20);
  expect_error([&] { stratified_split(labels, 2, 1.5, 0); }, {"val_fraction"});
  expect_error([&] { stratified_split(labels, 1, 0.5, 0); }, {"labels outside [0, 1)"});
}

}  // namespace
}  // namespace normlab::data
