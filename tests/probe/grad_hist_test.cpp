// grad_hist against histograms recomputed on the host from the captured gradients.
#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "probe/selection.h"
#include "probe_fixture.h"
#include "reference_histogram.h"

namespace normlab::probe {
namespace {
using namespace testing;
using normlab::testing::ReferenceHistogram;

const store::HistogramPoint* find_hist(const store::EpochRecords& rec, const std::string& name,
                                       store::Axis axis, int64_t step) {
  for (const auto& h : rec.histograms) {
    if (h.name == name && h.axis == axis && h.step == step) return &h;
  }
  return nullptr;
}

TEST(GradHist, EpochHistogramsAccumulateEveryStepPreAndPostClip) {
  ProbeRun run("grad_hist", {{"every", 2}}, train::ClipOptions{1e-3, 0});
  auto rec = run.epoch();
  const auto& names = run.capture.names;
  std::map<std::string, ReferenceHistogram> pre, post;
  auto ref = [](std::map<std::string, ReferenceHistogram> & m, const std::string& k) -> auto& {
    return m.try_emplace(k, -10.0, 1.0, 64, true).first->second;
  };
  for (size_t step = 0; step < 4; ++step) {
    std::map<std::string, std::vector<torch::Tensor>> layers_raw, layers_clipped;
    for (size_t i = 0; i < names.size(); ++i) {
      ref(pre, names[i]).add(run.capture.raw[step][i]);
      ref(post, names[i]).add(run.capture.clipped[step][i]);
      layers_raw[layer_of(names[i])].push_back(run.capture.raw[step][i].reshape({-1}));
      layers_clipped[layer_of(names[i])].push_back(run.capture.clipped[step][i].reshape({-1}));
    }
    for (auto& [layer, parts] : layers_raw) {
      ref(pre, layer).add(torch::cat(parts));
      ref(post, layer).add(torch::cat(layers_clipped[layer]));
    }
    // Step histograms every 2 steps: exactly this step's gradients.
    if (step % 2 == 0) {
      ReferenceHistogram one(-10.0, 1.0, 64, true);
      one.add(run.capture.raw[step][0]);
      const auto* h = find_hist(rec, "grad_hist/pre/" + names[0], store::Axis::kStep,
                                static_cast<int64_t>(step));
      ASSERT_NE(h, nullptr) << step;
      one.expect_equal(h->hist, "step " + std::to_string(step));
    } else {
      EXPECT_EQ(find_hist(rec, "grad_hist/pre/" + names[0], store::Axis::kStep,
                          static_cast<int64_t>(step)),
                nullptr);
    }
  }
  ASSERT_GT(pre.size(), names.size());  // parameters and layers
  for (const auto& [item, r] : pre) {
    const auto* h = find_hist(rec, "grad_hist/pre/" + item, store::Axis::kEpoch, 0);
    ASSERT_NE(h, nullptr) << item;
    r.expect_equal(h->hist, "pre " + item);
    EXPECT_EQ(h->hist.scale, "log10");
    ASSERT_EQ(h->hist.edges.size(), 65u);
    EXPECT_DOUBLE_EQ(h->hist.edges.front(), -10.0);
    EXPECT_DOUBLE_EQ(h->hist.edges.back(), 1.0);
  }
  for (const auto& [item, r] : post) {
    const auto* h = find_hist(rec, "grad_hist/post/" + item, store::Axis::kEpoch, 0);
    ASSERT_NE(h, nullptr) << item;
    r.expect_equal(h->hist, "post " + item);
  }
  // Clipping to 1e-3 moved the distribution: pre and post differ.
  const auto* a = find_hist(rec, "grad_hist/pre/" + names[0], store::Axis::kEpoch, 0);
  const auto* b = find_hist(rec, "grad_hist/post/" + names[0], store::Axis::kEpoch, 0);
  EXPECT_NE(a->hist.counts, b->hist.counts);
}

TEST(GradHist, LinearLayersOnlyAndNoPostWithoutClipping) {
  ProbeRun run("grad_hist",
               {{"items", "layer"}, {"scale", "linear"}, {"range", {-0.5, 0.5}}, {"bins", 10}});
  auto rec = run.epoch();
  std::map<std::string, ReferenceHistogram> pre;
  for (size_t step = 0; step < 4; ++step) {
    std::map<std::string, std::vector<torch::Tensor>> layers;
    for (size_t i = 0; i < run.capture.names.size(); ++i) {
      layers[layer_of(run.capture.names[i])].push_back(run.capture.raw[step][i].reshape({-1}));
    }
    for (auto& [layer, parts] : layers) {
      pre.try_emplace(layer, -0.5, 0.5, 10, false).first->second.add(torch::cat(parts));
    }
  }
  EXPECT_EQ(rec.histograms.size(), pre.size());  // one per layer, no post, no params
  for (const auto& [layer, r] : pre) {
    const auto* h = find_hist(rec, "grad_hist/pre/" + layer, store::Axis::kEpoch, 0);
    ASSERT_NE(h, nullptr) << layer;
    r.expect_equal(h->hist, layer);
  }
}

TEST(GradHist, EpochHistogramSamplesEvenlySpacedSteps) {
  // 4 steps per epoch, 2 sampled: steps 0 and 2.
  ProbeRun run("grad_hist", {{"epoch_steps", 2}, {"items", "param"}});
  auto rec = run.epoch();
  const auto& names = run.capture.names;
  for (size_t i = 0; i < names.size(); ++i) {
    ReferenceHistogram r(-10.0, 1.0, 64, true);
    r.add(run.capture.raw[0][i]);
    r.add(run.capture.raw[2][i]);
    const auto* h = find_hist(rec, "grad_hist/pre/" + names[i], store::Axis::kEpoch, 0);
    ASSERT_NE(h, nullptr) << names[i];
    r.expect_equal(h->hist, names[i]);
  }
}

TEST(GradHist, BadOptionsAreRefusedWithTheKey) {
  const ProbeInfo& info = find_probe("grad_hist");
  auto refused = [&](const nlohmann::json& change, const std::string& key) {
    nlohmann::json o = info.defaults;
    o.update(change);
    try {
      info.check(o, "spec.toml");
      ADD_FAILURE() << "accepted " << change.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  refused({{"bins", 0}}, "probe.grad_hist.bins");
  refused({{"scale", "log2"}}, "probe.grad_hist.scale");
  refused({{"range", {1.0, -1.0}}}, "probe.grad_hist.range");
  refused({{"items", "module"}}, "probe.grad_hist.items");
  refused({{"epoch_steps", -1}}, "probe.grad_hist.epoch_steps");
}

}  // namespace
}  // namespace normlab::probe
