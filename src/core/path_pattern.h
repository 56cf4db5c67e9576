// The one matcher for module-path patterns in study files (train.trainable, param_groups,
// model.weights_skip, model.norm_overrides, probe parameter selections).
#pragma once

#include <string>

namespace normlab {

// True when `pattern` matches `path` or a prefix of it ending at a '.'. Components are split
// on '.'; within a component '*' matches any run of characters, so "*" is any one component
// and "layer*" is "layer1", "layer2", ... ("layer*.*.bn2" matches "layer3.5.bn2").
bool path_matches(const std::string& pattern, const std::string& path);

}  // namespace normlab
