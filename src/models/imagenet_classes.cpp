#include "models/imagenet_classes.h"

namespace normlab::models {

const std::vector<std::string>& imagenet_classes() {
  static const std::vector<std::string> names = {
#include "models/imagenet_classes.inc"
  };
  return names;
}

}  // namespace normlab::models
