#include "svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace vmlab::measure::svg {

namespace {

constexpr double kWidth = 1100;
constexpr double kLeft = 90, kRight = 20, kTop = 70;
// The first line of every chart: what an output that would replace one
// checks for (runner.cpp).
constexpr std::string_view kSignature = "<!-- vmlab report chart -->\n";
constexpr const char* kFont = "font-family=\"DejaVu Sans, Arial, sans-serif\"";

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

std::string text_at(double x, double y, const std::string& text, const char* anchor = "start",
                    int size = 12, const char* extra = "") {
  return "<text x=\"" + number(x) + "\" y=\"" + number(y) + "\" font-size=\"" +
         std::to_string(size) + "\" text-anchor=\"" + anchor + "\" " + kFont + " " + extra + ">" +
         escape(text) + "</text>\n";
}

std::string rect(double x, double y, double width, double height, const std::string& fill,
                 const std::string& extra = "") {
  return "<rect x=\"" + number(x) + "\" y=\"" + number(y) + "\" width=\"" +
         number(std::max(0.0, width)) + "\" height=\"" + number(std::max(0.0, height)) +
         "\" fill=\"" + fill + "\" " + extra + "/>\n";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& stroke,
                 const std::string& extra = "") {
  return "<line x1=\"" + number(x1) + "\" y1=\"" + number(y1) + "\" x2=\"" + number(x2) +
         "\" y2=\"" + number(y2) + "\" stroke=\"" + stroke + "\" " + extra + "/>\n";
}

// A value as a bar label: three significant digits, thousands separated.
std::string short_value(double value) {
  char text[32];
  if (value >= 1e6) {
    std::snprintf(text, sizeof text, "%.3gM", value / 1e6);
  } else if (value >= 1e4) {
    std::snprintf(text, sizeof text, "%.0fk", value / 1e3);
  } else if (value >= 100) {
    std::snprintf(text, sizeof text, "%.0f", value);
  } else {
    std::snprintf(text, sizeof text, "%.3g", value);
  }
  return text;
}

std::string header(double height) {
  return std::string(kSignature) + "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
         number(kWidth) + "\" height=\"" + number(height) + "\" viewBox=\"0 0 " + number(kWidth) +
         " " + number(height) + "\">\n" + rect(0, 0, kWidth, height, "white");
}

std::string legend(double y, const std::vector<std::pair<std::string, std::string>>& entries,
                   double& height_used) {
  std::string out;
  double x = kLeft;
  double row = y;
  for (const auto& [name, colour] : entries) {
    const double width = 22 + 7.2 * static_cast<double>(name.size()) + 18;
    if (x + width > kWidth - kRight) {
      x = kLeft;
      row += 18;
    }
    out += rect(x, row - 10, 12, 12, colour);
    out += text_at(x + 17, row, name, "start", 12);
    x += width;
  }
  height_used = row - y + 18;
  return out;
}

}  // namespace

std::string escape(const std::string& text) {
  std::string out;
  for (char character : text) {
    switch (character) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += character;
    }
  }
  return out;
}

std::string grouped_bars(const GroupedBars& chart) {
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& series : chart.series)
    entries.emplace_back(series.name, series.colour);
  double legend_height = 0;
  const std::string legend_text = legend(kTop - 8, entries, legend_height);
  const double plot_top = kTop + legend_height + 10;
  const double plot_height = 360;
  const double plot_bottom = plot_top + plot_height;
  const double height = plot_bottom + 80;
  const double plot_width = kWidth - kLeft - kRight;

  double low = 0, high = 0;
  bool any = false;
  for (const auto& series : chart.series) {
    for (const auto& value : series.values) {
      if (!value || (chart.log_axis && *value <= 0)) continue;
      low = any ? std::min(low, *value) : *value;
      high = any ? std::max(high, *value) : *value;
      any = true;
    }
  }
  if (chart.reference_line) {
    low = any ? std::min(low, *chart.reference_line) : *chart.reference_line;
    high = any ? std::max(high, *chart.reference_line) : *chart.reference_line;
    any = true;
  }
  if (!any) low = high = 1;
  double axis_low = 0, axis_high = 1;
  if (chart.log_axis) {
    axis_low = std::floor(std::log10(low));
    axis_high = std::ceil(std::log10(high));
    if (axis_high <= axis_low) axis_high = axis_low + 1;
  } else {
    axis_high = high <= 0 ? 1 : high * 1.1;
  }
  auto y_of = [&](double value) {
    const double position = chart.log_axis ? (std::log10(value) - axis_low) / (axis_high - axis_low)
                                           : value / axis_high;
    return plot_bottom - std::clamp(position, 0.0, 1.0) * plot_height;
  };

  std::string out = header(height);
  out += text_at(kWidth / 2, 24, chart.title, "middle", 16, "font-weight=\"bold\"");
  out += text_at(kWidth / 2, 44, chart.subtitle, "middle", 12, "fill=\"#444\"");
  out += legend_text;
  // The grid and the axis.
  if (chart.log_axis) {
    for (double exponent = axis_low; exponent <= axis_high; ++exponent) {
      const double y = y_of(std::pow(10.0, exponent));
      out += line(kLeft, y, kLeft + plot_width, y, "#ddd");
      out += text_at(kLeft - 6, y + 4, short_value(std::pow(10.0, exponent)), "end", 11);
    }
  } else {
    for (int step = 0; step <= 5; ++step) {
      const double value = axis_high * step / 5;
      const double y = y_of(value);
      out += line(kLeft, y, kLeft + plot_width, y, "#ddd");
      out += text_at(kLeft - 6, y + 4, short_value(value), "end", 11);
    }
  }
  out += line(kLeft, plot_top, kLeft, plot_bottom, "#333");
  out += line(kLeft, plot_bottom, kLeft + plot_width, plot_bottom, "#333");
  out += "<text transform=\"translate(20," + number((plot_top + plot_bottom) / 2) +
         ") rotate(-90)\" font-size=\"12\" text-anchor=\"middle\" " + kFont + ">" +
         escape(chart.axis_label) + "</text>\n";

  const double groups = static_cast<double>(std::max<std::size_t>(1, chart.groups.size()));
  const double group_width = plot_width / groups;
  const double bar_width =
      std::min(28.0, group_width * 0.86 /
                         static_cast<double>(std::max<std::size_t>(1, chart.series.size())));
  for (std::size_t group = 0; group < chart.groups.size(); ++group) {
    const double start = kLeft + group_width * static_cast<double>(group) +
                         (group_width - bar_width * static_cast<double>(chart.series.size())) / 2;
    for (std::size_t index = 0; index < chart.series.size(); ++index) {
      const Series& series = chart.series[index];
      const double x = start + bar_width * static_cast<double>(index);
      const auto& value = group < series.values.size() ? series.values[group] : std::nullopt;
      if (!value || (chart.log_axis && *value <= 0)) {
        out += text_at(x + bar_width / 2, plot_bottom - 4, "-", "middle", 10, "fill=\"#999\"");
        continue;
      }
      // Ratios grow from their reference (1: up is faster, down slower).
      const double base = chart.reference_line && chart.log_axis ? y_of(*chart.reference_line)
                          : chart.log_axis                       ? plot_bottom
                                                                 : y_of(0);
      const double end = y_of(*value);
      const double top = std::min(base, end);
      // A published figure: outlined and paler, so it reads as a reference.
      out +=
          rect(x + 1, top, bar_width - 2, std::fabs(base - end), series.colour,
               series.published ? "fill-opacity=\"0.45\" stroke=\"#000\" stroke-width=\"1\"" : "");
      out += "<text transform=\"translate(" + number(x + bar_width / 2 + 3) + "," +
             number(end < base ? end - 4
                               : end + 4 + 6 * static_cast<double>(short_value(*value).size())) +
             ") rotate(-90)\" font-size=\"9\" " + kFont + ">" + escape(short_value(*value)) +
             "</text>\n";
    }
    out += text_at(kLeft + group_width * (static_cast<double>(group) + 0.5), plot_bottom + 18,
                   chart.groups[group], "middle", 12);
  }
  if (chart.reference_line) {
    const double y = y_of(*chart.reference_line);
    out += line(kLeft, y, kLeft + plot_width, y, "#222", "stroke-dasharray=\"5,4\"");
  }
  out += text_at(kLeft, height - 20, chart.footnote, "start", 11, "fill=\"#444\"");
  out += "</svg>\n";
  return out;
}

std::string stacked_shares(const StackedShares& chart) {
  constexpr double kRowHeight = 16, kGroupGap = 26, kLabelWidth = 150, kTotalWidth = 110;
  double legend_height = 0;
  const std::string legend_text = legend(kTop - 8, chart.legend, legend_height);
  double rows = 0;
  for (const auto& group : chart.groups)
    rows += static_cast<double>(group.rows.size());
  const double plot_top = kTop + legend_height + 10;
  const double height =
      plot_top + rows * kRowHeight + static_cast<double>(chart.groups.size()) * kGroupGap + 50;
  const double bar_left = kLeft + kLabelWidth - 80;
  const double bar_width = kWidth - bar_left - kRight - kTotalWidth;

  std::string out = header(height);
  out += text_at(kWidth / 2, 24, chart.title, "middle", 16, "font-weight=\"bold\"");
  out += text_at(kWidth / 2, 44, chart.subtitle, "middle", 12, "fill=\"#444\"");
  out += legend_text;
  double y = plot_top;
  for (const auto& group : chart.groups) {
    out += text_at(10, y + 12, group.title, "start", 12, "font-weight=\"bold\"");
    y += kGroupGap - 8;
    for (const auto& row : group.rows) {
      out += text_at(bar_left - 6, y + kRowHeight - 4, row.label, "end", 11);
      double total = 0;
      for (const auto& segment : row.segments)
        total += std::max(0.0, segment.value);
      if (total <= 0) {
        out += text_at(bar_left + 4, y + kRowHeight - 4, row.note.empty() ? "-" : row.note, "start",
                       11, "fill=\"#888\"");
      } else {
        double x = bar_left;
        for (const auto& segment : row.segments) {
          const double width = bar_width * std::max(0.0, segment.value) / total;
          out += rect(x, y + 1, width, kRowHeight - 2, segment.colour);
          x += width;
        }
        out += text_at(bar_left + bar_width + 6, y + kRowHeight - 4, row.total, "start", 11);
      }
      y += kRowHeight;
    }
    y += 8;
  }
  out += text_at(10, height - 20, chart.footnote, "start", 11, "fill=\"#444\"");
  out += "</svg>\n";
  return out;
}

}  // namespace vmlab::measure::svg
