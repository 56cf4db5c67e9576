#include "nn/norm.h"

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "nn/dmbn.h"
#include "nn/frn.h"

namespace normlab::nn {
namespace {

// GroupNorm for (N, C) vectors: treats each sample as (N, C, 1) and back. It owns "weight"
// and "bias" itself (rather than wrapping a GroupNorm child) so that state_dict paths are
// the same as for every other norm ("head.1.weight", not "head.1.norm.weight").
class VectorGroupNormImpl : public torch::nn::Cloneable<VectorGroupNormImpl> {
 public:
  explicit VectorGroupNormImpl(const torch::nn::GroupNormOptions& opts) : options(opts) { reset(); }

  void reset() override {
    weight = register_parameter("weight", torch::ones({options.num_channels()}));
    bias = register_parameter("bias", torch::zeros({options.num_channels()}));
  }

  torch::Tensor forward(const torch::Tensor& x) {
    // x: (N, C)
    TORCH_CHECK(x.dim() == 2, "vector GroupNorm expects (N, C), got ", x.sizes());
    torch::Tensor y = torch::group_norm(x.unsqueeze(-1), options.num_groups(), weight, bias,
                                        options.eps());  // (N, C, 1)
    return y.squeeze(-1);                                // (N, C)
  }

  void pretty_print(std::ostream& stream) const override {
    stream << "normlab::nn::VectorGroupNorm(" << options.num_groups() << ", "
           << options.num_channels() << ", eps=" << options.eps() << ")";
  }

  torch::nn::GroupNormOptions options;
  torch::Tensor weight;  // (C)
  torch::Tensor bias;    // (C)
};
TORCH_MODULE(VectorGroupNorm);

const char* input_name(NormInput input) {
  return input == NormInput::kVector ? "vectors (N, C)" : "maps (N, C, H, W)";
}

std::string valid_names() {
  std::string out;
  for (const auto& name : norm_names()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

Error unknown_norm(const std::string& text, const std::string& problem) {
  return Error("norm '" + text + "'", problem,
               "valid names: " + valid_names() + " (bn also as 'bn:momentum=B')");
}

// Parses the G of "gn:G": digits only, positive.
int64_t parse_groups(const std::string& text, const std::string& digits) {
  bool ok = !digits.empty() && digits.size() <= 9 &&
            digits.find_first_not_of("0123456789") == std::string::npos;
  const int64_t groups = ok ? std::stoll(digits) : 0;
  if (groups <= 0) {
    throw unknown_norm(text, "GroupNorm needs a positive number of groups after 'gn:'");
  }
  return groups;
}

}  // namespace

void describe(NormOptions& o, OptionFields& f) {
  f.field("bn_momentum", o.momentum, Range{0, 1, "in [0, 1]"});
  f.field("bn_eps", o.eps, Range{0, 1, "in [0, 1]"});
}

void check_norm_spec(const std::string& text) {
  try {
    parse_norm(text);
  } catch (const Error& e) {
    throw Error(e.subject(), e.problem() + " '" + text + "'", e.hint());
  }
}

std::vector<std::string> norm_names() {
  return {"bn", "ln", "gn:G", "in", "frn", "frn:mean", "dmbn", "none"};
}

NormSpec parse_norm(const std::string& text) {
  NormSpec spec;
  spec.text = text;
  const auto colon = text.find(':');
  const std::string head = text.substr(0, colon);
  const std::string tail = colon == std::string::npos ? "" : text.substr(colon + 1);
  const bool has_tail = colon != std::string::npos;

  if (head == "gn") {
    if (!has_tail) throw unknown_norm(text, "GroupNorm needs its group count, e.g. 'gn:16'");
    spec.kind = "gn";
    spec.groups = parse_groups(text, tail);
    return spec;
  }
  if (head == "bn" && has_tail) {
    // bn:momentum=B; B in [0, 1] as PyTorch's BatchNorm accepts.
    const std::string key = "momentum=";
    if (tail.rfind(key, 0) != 0) {
      throw unknown_norm(text, "BatchNorm takes one option, 'momentum=B' (e.g. 'bn:momentum=0.8')");
    }
    const std::string number = tail.substr(key.size());
    size_t used = 0;
    double b = -1;
    try {
      b = std::stod(number, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != number.size() || !(b >= 0 && b <= 1)) {
      throw unknown_norm(text, "momentum must be a number in [0, 1], got '" + number + "'");
    }
    spec.kind = "bn";
    spec.momentum = b;
    return spec;
  }
  if (head == "frn" && has_tail) {
    if (tail != "mean") throw unknown_norm(text, "unknown FRN variant '" + tail + "'");
    spec.kind = "frn";
    spec.frn_mean = true;
    return spec;
  }
  for (const auto& kind : norm_table()) {
    if (text == kind.name && kind.name != "gn") {
      spec.kind = kind.name;
      return spec;
    }
  }
  throw unknown_norm(text, "unknown normalization");
}

namespace {

using Refuse = std::function<Error(const std::string& why, const std::string& hint)>;

torch::nn::AnyModule make_bn(const NormSpec& spec, int64_t channels, NormInput input,
                             const NormOptions& o, const Refuse&) {
  const double momentum = spec.momentum.value_or(o.momentum);
  if (input == NormInput::kVector) {
    return torch::nn::AnyModule(torch::nn::BatchNorm1d(
        torch::nn::BatchNorm1dOptions(channels).eps(o.eps).momentum(momentum)));
  }
  return torch::nn::AnyModule(torch::nn::BatchNorm2d(
      torch::nn::BatchNorm2dOptions(channels).eps(o.eps).momentum(momentum)));
}

torch::nn::AnyModule make_dmbn(const NormSpec&, int64_t channels, NormInput input,
                               const NormOptions& o, const Refuse&) {
  DmbnLayerOptions d;
  d.channels = channels;
  d.map = input == NormInput::kMap;
  d.eps = o.eps;
  d.candidates = o.dmbn_candidates;
  return torch::nn::AnyModule(Dmbn(d));
}

torch::nn::AnyModule make_ln(const NormSpec&, int64_t channels, NormInput input,
                             const NormOptions& o, const Refuse&) {
  if (input == NormInput::kVector) {
    return torch::nn::AnyModule(
        torch::nn::LayerNorm(torch::nn::LayerNormOptions({channels}).eps(o.eps)));
  }
  // LayerNorm over (C, H, W) with a per-channel affine is GroupNorm with one group.
  return torch::nn::AnyModule(
      torch::nn::GroupNorm(torch::nn::GroupNormOptions(1, channels).eps(o.eps)));
}

torch::nn::AnyModule make_gn(const NormSpec& spec, int64_t channels, NormInput input,
                             const NormOptions& o, const Refuse&) {
  if (channels % spec.groups != 0) {
    throw Error("norm '" + spec.text + "'",
                std::to_string(spec.groups) + " groups do not divide " + std::to_string(channels) +
                    " channels",
                "choose G dividing every channel count of the model (for a model.bn_bfn "
                "preset, set model.bfn_norm, e.g. \"gn:8\")");
  }
  auto gn_options = torch::nn::GroupNormOptions(spec.groups, channels).eps(o.eps);
  if (input == NormInput::kVector) return torch::nn::AnyModule(VectorGroupNorm(gn_options));
  return torch::nn::AnyModule(torch::nn::GroupNorm(gn_options));
}

torch::nn::AnyModule make_in(const NormSpec&, int64_t channels, NormInput input,
                             const NormOptions& o, const Refuse& refuse) {
  if (input == NormInput::kVector) {
    throw refuse("a vector has no spatial axes to normalise over",
                 "use 'ln' or 'frn' for heads and MLPs");
  }
  return torch::nn::AnyModule(torch::nn::InstanceNorm2d(
      torch::nn::InstanceNorm2dOptions(channels).eps(o.eps).affine(true).track_running_stats(
          false)));
}

torch::nn::AnyModule make_frn(const NormSpec& spec, int64_t channels, NormInput input,
                              const NormOptions&, const Refuse& refuse) {
  const bool vector = input == NormInput::kVector;
  if (spec.frn_mean) {
    if (!vector)
      throw refuse("the feature-axis variant is for vectors", "use 'frn' for feature maps");
    return torch::nn::AnyModule(Frn(FrnOptions(channels).mean_over_features(true)));
  }
  // Vectors are 1x1 maps, where plain FRN degenerates to sign(x): use the learned epsilon
  // of section 3.2 there.
  return torch::nn::AnyModule(Frn(FrnOptions(channels).learned_eps(vector)));
}

torch::nn::AnyModule make_none(const NormSpec&, int64_t, NormInput, const NormOptions&,
                               const Refuse&) {
  return torch::nn::AnyModule(torch::nn::Identity());
}

template <typename... Impl>
bool is_one_of(const torch::nn::Module& m) {
  return ((dynamic_cast<const Impl*>(&m) != nullptr) || ...);
}

}  // namespace

const std::vector<NormKind>& norm_table() {
  // name, traits {batch statistics, running statistics, batch-free}, factory, recogniser.
  static const std::vector<NormKind> table = {
      {"bn",
       {true, true, false},
       make_bn,
       is_one_of<torch::nn::BatchNorm1dImpl, torch::nn::BatchNorm2dImpl,
                 torch::nn::BatchNorm3dImpl>},
      {"dmbn", {true, true, false}, make_dmbn, is_one_of<DmbnImpl>},
      {"ln", {false, false, true}, make_ln, is_one_of<torch::nn::LayerNormImpl>},
      {"gn",
       {false, false, true},
       make_gn,
       is_one_of<torch::nn::GroupNormImpl, VectorGroupNormImpl>},
      {"in", {false, false, true}, make_in, is_one_of<torch::nn::InstanceNorm2dImpl>},
      {"frn", {false, false, true}, make_frn, is_one_of<FrnImpl>},
      {"none", {false, false, true}, make_none, [](const torch::nn::Module&) { return false; }},
  };
  return table;
}

torch::nn::AnyModule make_norm(const std::string& text, int64_t channels, NormInput input,
                               const NormOptions& options) {
  const NormSpec spec = parse_norm(text);
  require(channels > 0, "norm '" + text + "'",
          "needs a positive channel count, got " + std::to_string(channels));
  Refuse refuse = [&](const std::string& why, const std::string& hint) {
    return Error("norm '" + text + "'",
                 std::string("not available for ") + input_name(input) + ": " + why, hint);
  };
  for (const auto& kind : norm_table()) {
    if (kind.name == spec.kind) return kind.make(spec, channels, input, options, refuse);
  }
  throw unknown_norm(text, "unknown normalization");
}

std::optional<NormTraits> norm_traits(const torch::nn::Module& module) {
  for (const auto& kind : norm_table()) {
    if (kind.recognises(module)) return kind.traits;
  }
  return std::nullopt;
}

bool is_batch_norm(const torch::nn::Module& module) {
  auto t = norm_traits(module);
  return t.has_value() && t->batch_statistics;
}

}  // namespace normlab::nn
