// load_state_dict on real torch.save archives and a hand-written safetensors file
// (tests/fixtures/io, made by scripts/gen_io_fixtures.py), compared exactly with reference
// tensors that LibTorch's own torch::pickle_load reads from small_state_dict_expected.pt.
#include "io/state_dict.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/files.h"
#include "io/safetensors.h"
#include "test_files.h"

namespace normlab::io {
namespace {

using testing::expect_error;
using testing::TempDir;

std::string fixture(const std::string& name) {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "io" / name)
      .string();
}

// name -> tensor, in the order the Python script inserted them.
std::vector<std::pair<std::string, torch::Tensor>> expected() {
  const auto bytes = read_file_bytes(fixture("small_state_dict_expected.pt"));
  const auto dict =
      torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& kv : dict) out.emplace_back(kv.key().toStringRef(), kv.value().toTensor());
  return out;
}

void expect_same(const StateDict& sd) {
  const auto ref = expected();
  ASSERT_EQ(sd.items.size(), ref.size());
  ASSERT_EQ(ref.size(), 22u);  // conv, BN (5), linear (2), 14 extras
  for (size_t i = 0; i < ref.size(); ++i) {
    const auto& [name, t] = sd.items[i];
    SCOPED_TRACE(name);
    EXPECT_EQ(name, ref[i].first);
    EXPECT_EQ(t.scalar_type(), ref[i].second.scalar_type());
    EXPECT_EQ(t.sizes(), ref[i].second.sizes());
    EXPECT_TRUE(t.is_contiguous());
    // Bitwise equality (torch::equal on the raw bytes: NaN-safe, exact).
    EXPECT_TRUE(torch::equal(t.contiguous().view(-1).view(torch::kUInt8),
                             ref[i].second.contiguous().view(-1).view(torch::kUInt8)) ||
                (t.numel() == 0 && ref[i].second.numel() == 0));
  }
}

TEST(StateDict, LoadsTorchSaveStateDictExactly) {
  StateDict sd = load_state_dict(fixture("small_state_dict.pth"));
  expect_same(sd);
  EXPECT_TRUE(sd.metadata.empty());
  // Spot checks that do not depend on the reference file.
  ASSERT_NE(sd.find("1.num_batches_tracked"), nullptr);
  EXPECT_EQ(sd.find("1.num_batches_tracked")->scalar_type(), torch::kInt64);
  EXPECT_EQ(sd.find("1.num_batches_tracked")->item<int64_t>(), 1);
  // base[1:, 1:4:2] of arange(24).reshape(4, 6): offset 7, strides (6, 2).
  EXPECT_TRUE(torch::equal(*sd.find("extra.view"),
                           torch::tensor({7.f, 9.f, 13.f, 15.f, 19.f, 21.f}).view({3, 2})));
  EXPECT_EQ(sd.find("extra.scalar")->dim(), 0);
  EXPECT_EQ(sd.find("extra.scalar")->item<float>(), 2.5f);
  EXPECT_EQ(sd.find("extra.int64")->data_ptr<int64_t>()[2], int64_t{1} << 62);
  EXPECT_EQ(sd.find("nope"), nullptr);
  // Tensors sharing a storage in the file come back as independent tensors.
  sd.find("extra.base")->fill_(-1);
  EXPECT_EQ(sd.find("extra.view")->min().item<float>(), 7.f);
}

TEST(StateDict, TopFolderNameDoesNotMatter) {
  expect_same(load_state_dict(fixture("small_state_dict_archive.pth")));  // "archive/..."
}

TEST(StateDict, LoadsHandWrittenSafetensorsExactly) {
  const StateDict sd = load_state_dict(fixture("small_state_dict.safetensors"));
  expect_same(sd);
  EXPECT_EQ(sd.metadata.at("format"), "pt");
  EXPECT_EQ(sd.metadata.at("source"), "scripts/gen_io_fixtures.py");
}

TEST(StateDict, ConvertsPthToTheSameBytesPythonWrites) {
  // The Python writer and ours agree on layout (metadata first, tensors in order, header
  // padded to 8 bytes), so a converted file is byte-identical to the hand-written one.
  TempDir dir;
  StateDict sd = load_state_dict(fixture("small_state_dict.pth"));
  sd.metadata = {{"format", "pt"}, {"source", "scripts/gen_io_fixtures.py"}};
  const std::string out = dir.file("converted.safetensors");
  save_safetensors(out, sd);
  EXPECT_EQ(read_file_bytes(out), read_file_bytes(fixture("small_state_dict.safetensors")));
  expect_same(load_state_dict(out));
}

TEST(StateDict, UnwrapsCheckpointDicts) {
  const StateDict sd = load_state_dict(fixture("nested_checkpoint.pth"));
  ASSERT_EQ(sd.items.size(), 2u);
  EXPECT_EQ(sd.items[0].first, "fc.weight");
  EXPECT_TRUE(torch::equal(sd.items[0].second, torch::arange(6.f).view({2, 3})));
  EXPECT_TRUE(torch::equal(sd.items[1].second, torch::tensor({0.5f, -1.f})));
  EXPECT_EQ(sd.metadata.at("normlab.unwrapped"), "model");
  EXPECT_EQ(sd.metadata.at("normlab.ignored"), "epoch");
}

TEST(StateDict, RefusesNonTensorValuesNamingTheKey) {
  const auto path = fixture("non_tensor_value.pth");
  expect_error([&] { load_state_dict(path); }, {path, "'epoch'", "int", "not a tensor"});
}

TEST(StateDict, RefusesPickledModulesNamingTheClass) {
  const auto path = fixture("whole_module.pth");
  expect_error([&] { load_state_dict(path); },
               {path, "torch.nn.modules.linear.Linear", "model.state_dict()"});
}

TEST(StateDict, RefusesLegacyAndUnknownFormats) {
  const auto legacy = fixture("legacy_format.pth");
  expect_error([&] { load_state_dict(legacy); }, {legacy, "legacy", "torch.save"});
  TempDir dir;
  const auto junk = dir.file("junk.bin");
  testing::write_bytes(junk, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  expect_error([&] { load_state_dict(junk); }, {junk, "neither a PyTorch .pth"});
  expect_error([&] { load_state_dict(dir.file("missing.pth")); }, {"missing.pth"});
}

}  // namespace
}  // namespace normlab::io
