#include "models/head.h"

#include <string>

#include "core/error.h"

namespace normlab::models {
namespace {

void check_mlp_sizes(const HeadOptions& head) {
  require(head.hidden > 0, "head.hidden", "must be positive, got " + std::to_string(head.hidden));
  require(head.dropout >= 0.0 && head.dropout < 1.0, "head.dropout",
          "must be in [0, 1), got " + std::to_string(head.dropout));
}

}  // namespace

std::vector<std::string> head_kinds() { return {"linear", "mlp", "torchvision", "norm_mlp"}; }

torch::nn::Sequential build_head(const HeadOptions& head, int64_t in_features, int64_t num_classes,
                                 NormFactory& norms) {
  torch::nn::Sequential seq;
  if (head.kind == "linear") {
    seq->push_back(torch::nn::Linear(in_features, num_classes));  // (N, in) -> (N, classes)
    return seq;
  }
  if (head.kind == "mlp") {
    check_mlp_sizes(head);
    seq->push_back(torch::nn::Linear(in_features, head.hidden));  // 0: (N, in) -> (N, hidden)
    seq->push_back(norms.make("head.1", head.norm, head.hidden, nn::NormInput::kVector));  // 1
    seq->push_back(torch::nn::ReLU());                                                     // 2
    seq->push_back(torch::nn::Dropout(head.dropout));                                      // 3
    seq->push_back(torch::nn::Linear(head.hidden, num_classes));  // 4: -> (N, classes)
    return seq;
  }
  if (head.kind == "norm_mlp") {
    // STUDIES.md S3 (Keras): GAP -> BatchNormalization -> Dense(hidden, relu) -> Dropout ->
    // Dense(classes). The norm sees the backbone's embedding, before any Linear.
    check_mlp_sizes(head);
    seq->push_back(norms.make("head.0", head.norm, in_features, nn::NormInput::kVector));  // 0
    seq->push_back(torch::nn::Linear(in_features, head.hidden));  // 1: (N, in) -> (N, hidden)
    seq->push_back(torch::nn::ReLU());                            // 2
    seq->push_back(torch::nn::Dropout(head.dropout));             // 3
    seq->push_back(torch::nn::Linear(head.hidden, num_classes));  // 4: -> (N, classes)
    return seq;
  }
  std::string kinds;
  for (const auto& k : head_kinds()) kinds += (kinds.empty() ? "" : ", ") + k;
  throw Error("head.kind '" + head.kind + "'", "unknown head", "valid kinds: " + kinds);
}

}  // namespace normlab::models
