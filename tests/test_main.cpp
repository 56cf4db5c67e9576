#include <gtest/gtest.h>
#include <torch/torch.h>

// Tests run on one thread: results are bit-identical between runs, and ctest runs two test
// binaries at once on 2-core machines (OpenMP busy-waiting collapses when oversubscribed).
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  torch::set_num_threads(1);
  return RUN_ALL_TESTS();
}
