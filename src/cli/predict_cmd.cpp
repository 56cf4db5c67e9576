// `normlab predict`: classify images with a pretrained model — the quickest check that
// weights loaded right (and that padding and input scaling match where they came from).
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/runtime.h"
#include "data/batcher.h"
#include "data/preprocess.h"
#include "io/image.h"
#include "io/state_dict.h"
#include "models/imagenet_classes.h"
#include "models/model.h"
#include "models/pretrained.h"
#include "study/weights.h"

namespace normlab::cli {
namespace {

struct PredictArgs {
  std::string model;    // architecture; default from the registry entry
  std::string weights;  // registered id or path
  std::vector<std::string> images;
  int top = 5;
  bool json = false;
  std::string labels;             // file with one label per line
  int label_offset = 0;           // lines to skip (e.g. 1 for a leading "background")
  std::string padding = "torch";  // torch | tf-same
  std::string input_scale;        // normalisation preset; default from the registry or imagenet
  int64_t resize = -1;            // -1 = from the registry entry (or 256)
  int64_t crop = -1;              // -1 = from the registry entry (or 224)
  double width_mult = 1.0;
  int threads = 0;
};

std::vector<std::string> read_labels(const std::string& path, int offset) {
  std::ifstream in(path);
  require(static_cast<bool>(in), path, "cannot open label file");
  std::vector<std::string> labels;
  std::string line;
  int skipped = 0;
  while (std::getline(in, line)) {
    if (skipped++ < offset) continue;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(line);
  }
  return labels;
}

// The number of classes a torchvision-layout checkpoint was trained for.
int64_t classes_in(const io::StateDict& dict, const std::string& source) {
  for (const char* key : {"classifier.1.weight", "fc.weight"}) {
    if (const torch::Tensor* w = dict.find(key)) return w->size(0);
  }
  throw Error(source, "has no classifier.1.weight or fc.weight: not a torchvision classifier");
}

int predict(const PredictArgs& a) {
  apply_threads(a.threads);
  const models::PretrainedWeights* registered = nullptr;
  if (a.weights.rfind("torchvision:", 0) == 0) registered = &models::find_pretrained(a.weights);

  models::ModelOptions mo;
  mo.backbone = !a.model.empty() ? a.model : registered ? registered->architecture : "";
  require(!mo.backbone.empty(), "--model", "is required for a weights file",
          "e.g. --model mobilenet_v2");
  mo.in_channels = 3;
  mo.head.kind = "torchvision";
  mo.width_mult = a.width_mult;
  require(a.padding == "torch" || a.padding == "tf-same", "--padding '" + a.padding + "'",
          "unknown padding", "use torch or tf-same");
  mo.tf_same_padding = a.padding == "tf-same";

  std::string path = study::resolve_weights(a.weights, ".");
  io::StateDict dict = io::load_state_dict(path);
  mo.num_classes = classes_in(dict, path);
  models::Classifier model = models::build_model(mo);
  study::apply_state_dict(*model, dict, {}, /*strict=*/true, path);
  model->eval();

  data::PreprocessOptions pre;
  std::string scale = a.input_scale;
  if (registered != nullptr) {
    pre.resize = registered->preprocessing.resize;
    pre.crop = registered->preprocessing.crop;
    if (scale.empty()) {
      pre.mean.assign(registered->preprocessing.mean.begin(), registered->preprocessing.mean.end());
      pre.stddev.assign(registered->preprocessing.std.begin(), registered->preprocessing.std.end());
    }
  }
  if (scale.empty() && pre.mean.empty()) scale = "imagenet";
  if (!scale.empty()) {
    auto preset = data::normalize_preset(scale, 3);
    pre.mean = preset.mean;
    pre.stddev = preset.stddev;
  }
  if (a.resize >= 0) pre.resize = a.resize;
  if (a.crop >= 0) pre.crop = a.crop;

  std::vector<std::string> labels =
      a.labels.empty() ? models::imagenet_classes() : read_labels(a.labels, a.label_offset);
  if (static_cast<int64_t>(labels.size()) != mo.num_classes) {
    std::fprintf(stderr, "normlab: warning: %zu labels for %lld classes; printing class ids\n",
                 labels.size(), static_cast<long long>(mo.num_classes));
    labels.clear();
  }

  nlohmann::json out = nlohmann::json::array();
  c10::InferenceMode guard;
  for (const auto& image_path : a.images) {
    torch::Tensor x = data::preprocess_image(io::read_image(image_path), pre).unsqueeze(0);
    torch::Tensor logits = model->forward(x).squeeze(0);  // (K)
    torch::Tensor probs = torch::softmax(logits, 0);
    int64_t k = std::min<int64_t>(a.top, probs.size(0));
    auto top = probs.topk(k);
    auto values = std::get<0>(top), indices = std::get<1>(top);
    nlohmann::json entry = {{"image", image_path}, {"top", nlohmann::json::array()}};
    if (!a.json) std::printf("%s\n", image_path.c_str());
    for (int64_t i = 0; i < k; ++i) {
      int64_t cls = indices[i].item<int64_t>();
      double p = values[i].item<double>();
      std::string name = labels.empty() ? std::to_string(cls) : labels[static_cast<size_t>(cls)];
      entry["top"].push_back({{"class", cls}, {"label", name}, {"probability", p}});
      if (!a.json)
        std::printf("  %6.2f%%  %4lld  %s\n", 100.0 * p, static_cast<long long>(cls), name.c_str());
    }
    if (a.json) {
      std::vector<float> l(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
      entry["logits"] = l;
    }
    out.push_back(entry);
  }
  if (a.json) std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

void add_predict_command(CLI::App& app, std::vector<Command>& out) {
  auto a = std::make_shared<PredictArgs>();
  auto* cmd = app.add_subcommand("predict", "Classify images with a pretrained model");
  cmd->add_option("images", a->images, "PNG or JPEG files")->required()->check(CLI::ExistingFile);
  cmd->add_option("--weights", a->weights,
                  "Registered id (torchvision:mobilenet_v2:IMAGENET1K_V1) or .pth/.safetensors")
      ->required();
  cmd->add_option("--model", a->model, "Architecture (default: from the registered id)");
  cmd->add_option("--top", a->top, "How many classes to print")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", a->json, "Print top classes and logits as JSON");
  cmd->add_option("--labels", a->labels, "Label file, one per line (default: ImageNet-1k)");
  cmd->add_option("--label-offset", a->label_offset,
                  "Label lines to skip (e.g. 1 for 'background')");
  cmd->add_option("--padding", a->padding, "torch (symmetric) or tf-same (TF/Keras weights)");
  cmd->add_option("--input-scale", a->input_scale,
                  "Normalisation preset: imagenet, minus-one-one, tf-128 (TFLite)");
  cmd->add_option("--resize", a->resize, "Shorter side after resizing (0 = keep)");
  cmd->add_option("--crop", a->crop, "Centre crop size (0 = none)");
  cmd->add_option("--width-mult", a->width_mult, "mobilenet_v2 width multiplier");
  cmd->add_option("--threads", a->threads, "Intra-op threads (0 = all cores)");
  out.push_back({cmd, [a] { return predict(*a); }});
}

}  // namespace normlab::cli
