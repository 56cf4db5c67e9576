#include "study/group_key.h"

namespace normlab::study {

std::string group_key(const Json& config) {
  // Everything that decides the batches and the frozen prefix's output. The head, optimizer,
  // clipping, schedules and probes may differ inside a group.
  Json model = config.at("model");
  model.erase("head");
  const Json& t = config.at("train");
  Json key = {{"role", config.value("role", "run")},
              {"seed", config.at("seed")},
              {"device", config.at("device")},
              {"data", config.at("data")},
              {"model", model},
              {"train",
               {{"trainable", t.at("trainable")},
                {"frozen_bn", t.at("frozen_bn")},
                {"batch_size", t.at("batch_size")},
                {"eval_batch_size", t.at("eval_batch_size")},
                {"tta", t.at("tta")},
                {"precision", t.at("precision")}}}};
  return key.dump();
}

}  // namespace normlab::study
