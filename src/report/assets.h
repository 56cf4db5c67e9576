// Web assets the report inlines (Plotly), found without network access.
#pragma once

#include <string>
#include <vector>

namespace normlab::report {

// Where plotly.min.js may be, in the order tried:
//   $NORMLAB_ASSETS/plotly.js-dist-min/plotly.min.js   (explicit override)
//   <dir of the executable>/../share/normlab/plotly.min.js (an installed normlab)
//   NORMLAB_ASSET_DIR/plotly.js-dist-min/plotly.min.js (the source tree's node_modules)
std::vector<std::string> plotly_candidates();

// Contents of the first existing file in `candidates`; throws Error naming every path tried
// and telling the user to run `npm ci` in the source tree.
std::string read_first_asset(const std::vector<std::string>& candidates, const std::string& what);

// Plotly's minified bundle, ready to inline in a <script> element.
std::string load_plotly();

// Makes text safe inside <script>...</script>: "</script" would end the element early, so
// it becomes "<\/script" (the same string to JavaScript).
std::string escape_script_text(std::string text);

}  // namespace normlab::report
