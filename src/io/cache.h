// normlab's per-user cache directory, where downloads (weights, datasets) are kept.
#pragma once

#include <string>

namespace normlab::io {

// The cache root, in order of precedence: $NORMLAB_CACHE; $XDG_CACHE_HOME/normlab (XDG Base
// Directory Specification: a relative XDG_CACHE_HOME is ignored); ~/.cache/normlab. Throws
// Error when none of them can be determined (no HOME). The directory is not created.
std::string cache_dir();

}  // namespace normlab::io
