// Self-contained HTML report of a study store: Plotly is inlined so the file opens offline.
#pragma once

#include <string>

namespace normlab::report {

struct ReportOptions {
  std::string store_path;   // study.db
  std::string output_path;  // report.html
  std::string title;        // default: the study name from the store
};

// Writes the report atomically. Throws Error naming the store or the missing asset.
void write_html_report(const ReportOptions& options);

}  // namespace normlab::report
