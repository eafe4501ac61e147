// `vmlab report`: the suite's measurements as a Markdown report with SVG
// charts. Made from Measurements alone (a run or its JSON), so a report of a
// recorded file is the report of that run.
#pragma once

#include <string>
#include <vector>

#include "vmlab/measure/operations.hpp"

namespace vmlab::measure {

struct ReportFile {
  std::string name;  // within the report's folder: "report.md", "relative.svg", ...
  std::string content;
};

// The files make_report makes, in its order: report.md, adams-agesen.svg,
// relative.svg, breakdown.svg and the measurements themselves
// (measurements.json), so that a caller can check where they go first.
std::vector<std::string> report_file_names();
std::vector<ReportFile> make_report(const Measurements& measurements);

// "12,345": a count rounded to a whole number, its thousands separated.
std::string with_separators(double value);

// "12,345 (12,001-12,900)": a median and its spread, as the report prints them.
std::string median_with_spread(const Samples& samples);

// The relative performance of a cell against hvm's for the same operation,
// as the Xen paper's Figure 3 draws it: hvm's cycles over the technique's
// (higher is faster; hvm = 1). None where either is not measured.
std::optional<double> performance_relative_to_hvm(const Measurements& measurements,
                                                  std::string_view operation,
                                                  std::string_view technique);

}  // namespace vmlab::measure
