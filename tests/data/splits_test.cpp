// load_splits: where training and validation come from. The full-batch regime of seed 004
// (train_from = "test", val_from = "same": the official test split is the training, the
// validation and the test set) and validation on the training set itself.
#include "data/splits.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "core/error.h"

namespace normlab::data {
namespace {

// Synthetic official splits of different sizes, so the test tells them apart.
SplitOptions synthetic_splits() {
  SplitOptions o;
  o.train_source.name = "synthetic";
  o.train_source.synthetic_size = 60;
  o.train_source.synthetic_classes = 3;
  o.train_source.synthetic_hw = 6;
  o.test_source = o.train_source;
  o.test_source.train = false;
  o.test_source.synthetic_size = 45;
  o.val_fraction = 0.2;
  return o;
}

void expect_same(const Dataset& got, const Dataset& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  EXPECT_TRUE(torch::equal(got.images, want.images)) << what;
  EXPECT_TRUE(torch::equal(got.labels, want.labels)) << what;
}

TEST(Splits, FullBatchTrainsValidatesAndTestsOnTheOfficialTestSplit) {
  SplitOptions o = synthetic_splits();
  o.train_from = "test";
  o.val_from = "same";
  const Dataset official_test = load_dataset(o.test_source);
  const Dataset official_train = load_dataset(o.train_source);
  ASSERT_FALSE(
      torch::equal(official_test.images.slice(0, 0, 10), official_train.images.slice(0, 0, 10)));
  Splits s = load_splits(o);
  expect_same(s.train, official_test, "train");
  expect_same(s.val, official_test, "val");
  expect_same(s.test, official_test, "test");

  o.test = false;  // no separate test evaluation: the training set stays the test split
  s = load_splits(o);
  expect_same(s.train, official_test, "train without test");
  EXPECT_EQ(s.test.size(), 0);

  o.test = true;
  o.train_limit = 15;  // a stratified subset, shared by all three
  s = load_splits(o);
  EXPECT_EQ(s.train.size(), 15);
  expect_same(s.val, s.train, "val of the limited set");
  expect_same(s.test, s.train, "test of the limited set");
}

TEST(Splits, ValidationFromTheSameSetIsTheTrainingSet) {
  SplitOptions o = synthetic_splits();
  o.val_from = "same";
  Splits s = load_splits(o);
  expect_same(s.train, load_dataset(o.train_source), "train");  // val_fraction carves nothing
  expect_same(s.val, s.train, "val");
  expect_same(s.test, load_dataset(o.test_source), "test");
}

TEST(Splits, TrainingOnTheTestSplitNeedsValidationFromTheSameSet) {
  for (const std::string val_from : {"train", "test"}) {
    SplitOptions o = synthetic_splits();
    o.train_from = "test";
    o.val_from = val_from;
    try {
      load_splits(o);
      ADD_FAILURE() << "accepted val_from = " << val_from;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("data.val_from"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace normlab::data
