// The shipped study files as templates for `normlab study new NAME --from ID`: found in the
// source tree's studies/ or, for an installed normlab, in <prefix>/share/normlab/studies.
#pragma once

#include <string>
#include <vector>

namespace normlab::study {

// Directories searched for templates, in order: $NORMLAB_STUDIES,
// <dir of the executable>/../share/normlab/studies (installed), the source tree's studies/
// (compiled in).
std::vector<std::string> template_dirs();

// Template ids with their file: the short ids of STUDIES.md (q/quickstart, s0..s4) first,
// then every other study file by its stem. Only templates whose file exists are listed.
std::vector<std::pair<std::string, std::string>> list_templates();

// The file of template `id` (a short id such as "s0" or a file stem such as
// "s4_resnet50_cifar"); throws Error listing the available ids when there is none.
std::string find_template(const std::string& id);

// The template's text made into study `name`: its [study] name replaced and a header saying
// where it came from and what to run next. `path` is where it will be written.
std::string new_study_text(const std::string& template_text, const std::string& template_file,
                           const std::string& name, const std::string& path);

// Writes `path` (NAME.toml) from template `id`; refuses to overwrite an existing file.
// Returns the path written.
std::string write_new_study(const std::string& name, const std::string& id);

}  // namespace normlab::study
