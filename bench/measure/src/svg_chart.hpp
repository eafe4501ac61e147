// The report's charts as SVG text: grouped bars (linear or log axis) and rows
// of stacked shares. Only what the report draws; every size is in pixels.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace vmlab::measure::svg {

struct Series {
  std::string name;
  std::string colour;                         // "#56667a"
  std::vector<std::optional<double>> values;  // one per group; none: no bar
  bool published = false;  // a published figure, not a measured one: drawn outlined and paler
};

struct GroupedBars {
  std::string title;
  std::string subtitle;
  std::string axis_label;
  std::vector<std::string> groups;
  std::vector<Series> series;
  bool log_axis = false;
  std::optional<double> reference_line;  // e.g. 1.0: hvm
  std::string footnote;                  // the platform line
};
std::string grouped_bars(const GroupedBars& chart);

struct Segment {
  std::string colour;
  double value = 0;  // in the row's unit; the row is drawn as 100%
};
struct StackedRow {
  std::string label;
  std::vector<Segment> segments;
  std::string total;  // printed after the bar, e.g. "182 us"
  std::string note;   // instead of a bar, when there is none
};
struct StackedGroup {
  std::string title;
  std::vector<StackedRow> rows;
};
struct StackedShares {
  std::string title;
  std::string subtitle;
  std::vector<std::pair<std::string, std::string>> legend;  // name, colour
  std::vector<StackedGroup> groups;
  std::string footnote;
};
std::string stacked_shares(const StackedShares& chart);

std::string escape(const std::string& text);

}  // namespace vmlab::measure::svg
