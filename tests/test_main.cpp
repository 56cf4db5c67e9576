#include <gtest/gtest.h>
#include <torch/torch.h>

// Tests run on a fixed thread count so that results are bit-identical between runs.
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  torch::set_num_threads(2);
  return RUN_ALL_TESTS();
}
