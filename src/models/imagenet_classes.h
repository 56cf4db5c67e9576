// ImageNet-1k class names in torchvision's order (index = class id of torchvision weights).
#pragma once

#include <string>
#include <vector>

namespace normlab::models {

const std::vector<std::string>& imagenet_classes();

}  // namespace normlab::models
