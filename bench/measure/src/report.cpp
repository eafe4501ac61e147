#include "vmlab/measure/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "svg_chart.hpp"
#include "vmlab/measure/reference_figures.hpp"

namespace vmlab::measure {

std::string with_separators(double value) {
  char digits[64];
  std::snprintf(digits, sizeof digits, "%.0f", std::round(value));
  std::string text = digits;
  const bool negative = !text.empty() && text[0] == '-';
  std::string out;
  const std::size_t start = negative ? 1 : 0;
  for (std::size_t index = start; index < text.size(); ++index) {
    if (index > start && (text.size() - index) % 3 == 0) out += ',';
    out += text[index];
  }
  return negative ? "-" + out : out;
}

namespace {

// vmlab-viz's colours for the techniques and the levels (palette.cpp), so a
// report and the visualizer read alike.
std::string technique_colour(std::string_view label) {
  if (label == "hvm") return "#56667a";
  if (label == "hvm+kirq") return "#2f3a47";
  if (label == "full") return "#e08a1e";
  if (label == "bt") return "#1f9a8a";
  if (label == "para") return "#b0428a";
  return "#8c8c8c";
}
// The operation whose measured loop waits: left out of the time by level.
constexpr std::string_view kWaitingOperation = "interrupt";
constexpr const char* kReferenceColours[] = {"#1b1b1b", "#6b6b6b", "#b5b5b5"};

struct Level {
  const char* name;
  const char* colour;
  Figure figure;
};
constexpr Level kLevels[] = {
    {"guest user", "#3fa34d", Figure::GuestUserNsPerOp},
    {"guest kernel (with KVM's work for it)", "#3d7fd1", Figure::GuestKernelNsPerOp},
    {"monitor", "#e8a33d", Figure::MonitorNsPerOp},
    {"VMM", "#d9443a", Figure::VmmNsPerOp},
    {"halted", "#7f8ea3", Figure::HaltedNsPerOp},
};

// Counts and rates: whole numbers from 100 on, three significant digits below.
std::string figure_text(double value) {
  if (std::fabs(value) >= 100) return with_separators(value);
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", value);
  return text;
}

std::string reference_text(const ReferenceFigure& figure) {
  if (!figure.cycles) return "(" + std::string(figure.note) + ")";
  std::string text = (figure.approximate ? "~" : "") + with_separators(*figure.cycles);
  return text;
}

const Samples* figure_of(const Measurements& measurements, std::string_view operation,
                         std::string_view technique, Figure figure) {
  const Cell* cell = measurements.cell(operation, technique);
  if (cell == nullptr || cell->status != CellStatus::Measured) return nullptr;
  return cell->figure(figure);
}

// What a cell shows where it has no figure.
std::string missing_text(const Measurements& measurements, std::string_view operation,
                         std::string_view technique) {
  const Cell* cell = measurements.cell(operation, technique);
  if (cell == nullptr) return "not run";
  switch (cell->status) {
    case CellStatus::NotApplicable:
      return "n/a";
    case CellStatus::Failed:
      return "failed";
    case CellStatus::NotRun:
    case CellStatus::Measured:
      break;
  }
  return cell->status == CellStatus::Measured ? "-" : "not run";
}

std::string cell_text(const Measurements& measurements, std::string_view operation,
                      std::string_view technique, Figure figure) {
  const Samples* samples = figure_of(measurements, operation, technique, figure);
  return samples != nullptr ? median_with_spread(*samples)
                            : missing_text(measurements, operation, technique);
}

std::string rate_text(const Measurements& measurements, std::string_view operation,
                      std::string_view technique, Figure figure) {
  const Samples* samples = figure_of(measurements, operation, technique, figure);
  return samples != nullptr ? figure_text(samples->median()) : "-";
}

bool is_reference_operation(std::string_view name) {
  for (auto operation : adams_agesen_operations()) {
    if (operation == name) return true;
  }
  return false;
}

std::string adams_agesen_table(const Measurements& measurements) {
  std::ostringstream out;
  out << "| |";
  for (auto operation : adams_agesen_operations())
    out << " " << operation << " |";
  out << "\n| --- |";
  for (std::size_t index = 0; index < adams_agesen_operations().size(); ++index)
    out << " ---: |";
  out << "\n";
  for (const auto& row : adams_agesen_rows()) {
    out << "| " << row.label << " [1] |";
    for (const auto& figure : row.figures)
      out << " " << reference_text(figure) << " |";
    out << "\n";
  }
  for (const auto& technique : measurements.technique_labels) {
    out << "| vmlab " << technique << " |";
    for (auto operation : adams_agesen_operations())
      out << " " << cell_text(measurements, operation, technique, Figure::CyclesPerOp) << " |";
    out << "\n";
  }
  return out.str();
}

std::string other_operations_table(const Measurements& measurements) {
  std::vector<std::string> others;
  for (const auto& name : measurements.operation_names) {
    if (!is_reference_operation(name)) others.push_back(name);
  }
  if (others.empty()) return {};
  std::ostringstream out;
  out << "| |";
  for (const auto& name : others)
    out << " " << name << " |";
  out << "\n| --- |";
  for (std::size_t index = 0; index < others.size(); ++index)
    out << " ---: |";
  out << "\n";
  for (const auto& technique : measurements.technique_labels) {
    out << "| vmlab " << technique << " |";
    for (const auto& name : others)
      out << " " << cell_text(measurements, name, technique, Figure::CyclesPerOp) << " |";
    out << "\n";
  }
  return out.str();
}

std::string detail_tables(const Measurements& measurements) {
  std::ostringstream out;
  for (const auto& name : measurements.operation_names) {
    const Operation* operation = find_operation(name);
    out << "\n### " << name;
    if (operation != nullptr) {
      out << ": " << operation->what << " (workload `" << operation->workload
          << "`, n = " << operation->small_count << " and " << operation->large_count << ")";
    }
    out << "\n\n| technique | cycles/op | ns/op | VMM entries/op | KVM exits/op | monitor "
           "traps/op | hypercalls/op | KVM-emulated instructions/op |\n"
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& technique : measurements.technique_labels) {
      const Cell* cell = measurements.cell(name, technique);
      out << "| " << technique << " | ";
      if (cell == nullptr || cell->status != CellStatus::Measured) {
        out << missing_text(measurements, name, technique);
        if (cell != nullptr && !cell->reason.empty()) out << ": " << cell->reason;
        out << " | | | | | | |\n";
        continue;
      }
      out << cell_text(measurements, name, technique, Figure::CyclesPerOp) << " | "
          << rate_text(measurements, name, technique, Figure::NsPerOp) << " | "
          << rate_text(measurements, name, technique, Figure::VmmEntriesPerOp) << " | "
          << rate_text(measurements, name, technique, Figure::KvmExitsPerOp) << " | "
          << rate_text(measurements, name, technique, Figure::MonitorTrapsPerOp) << " | "
          << rate_text(measurements, name, technique, Figure::HypercallsPerOp) << " | "
          << rate_text(measurements, name, technique, Figure::KvmEmulatedPerOp) << " |\n";
    }
  }
  return out.str();
}

std::string boot_table(const Measurements& measurements) {
  std::ostringstream out;
  out << "| technique | VMM start to the first guest instruction, ms | VMM start to the result "
         "line, ms |\n| --- | ---: | ---: |\n";
  for (const auto& technique : measurements.technique_labels) {
    const BootCell* boot = measurements.boot_of(technique);
    out << "| " << technique << " | ";
    if (boot == nullptr || boot->status != CellStatus::Measured) {
      out << (boot == nullptr ? std::string("not run")
                              : std::string(cell_status_name(boot->status)) + ": " + boot->reason)
          << " | |\n";
      continue;
    }
    out << (boot->to_first_entry_ms.empty() ? std::string("not seen (a separate process)")
                                            : median_with_spread(boot->to_first_entry_ms))
        << " | " << median_with_spread(boot->to_result_line_ms)
        << (technique == kQemuTcgLabel ? " (process start to exit)" : "") << " |\n";
  }
  return out.str();
}

std::string gaps(const Measurements& measurements) {
  std::ostringstream out;
  for (const auto& technique : techniques()) {
    if (std::find(measurements.technique_labels.begin(), measurements.technique_labels.end(),
                  technique.label) == measurements.technique_labels.end()) {
      out << "- " << technique.label << ": missing, not measured in this run\n";
    }
  }
  for (const auto& operation : operations()) {
    if (std::find(measurements.operation_names.begin(), measurements.operation_names.end(),
                  operation.name) == measurements.operation_names.end()) {
      out << "- " << operation.name << ": missing, not measured in this run\n";
    }
  }
  for (const auto& cell : measurements.cells) {
    if (cell.status == CellStatus::Measured) continue;
    out << "- " << cell.operation << " under " << cell.technique << ": "
        << cell_status_name(cell.status) << (cell.reason.empty() ? "" : ", " + cell.reason) << "\n";
  }
  for (const auto& technique : measurements.technique_labels) {
    for (const auto& name : measurements.operation_names) {
      if (measurements.cell(name, technique) == nullptr) {
        out << "- " << name << " under " << technique << ": missing from the results\n";
      }
    }
  }
  return out.str();
}

std::string adams_agesen_chart(const Measurements& measurements) {
  svg::GroupedBars chart;
  chart.title = "Adams and Agesen's operations: CPU cycles per operation";
  chart.subtitle = "published (outlined, 2006) beside vmlab's medians on this machine; log axis";
  chart.axis_label = "cycles per operation";
  chart.log_axis = true;
  chart.footnote = measurements.platform_line;
  for (auto operation : adams_agesen_operations())
    chart.groups.emplace_back(operation);
  std::size_t row_index = 0;
  for (const auto& row : adams_agesen_rows()) {
    svg::Series series{std::string(row.label), kReferenceColours[row_index++ % 3], {}, true};
    for (const auto& figure : row.figures)
      series.values.push_back(figure.cycles);
    chart.series.push_back(series);
  }
  for (const auto& technique : measurements.technique_labels) {
    svg::Series series{"vmlab " + technique, technique_colour(technique), {}, false};
    for (auto operation : adams_agesen_operations()) {
      const Samples* samples = figure_of(measurements, operation, technique, Figure::CyclesPerOp);
      series.values.push_back(samples != nullptr ? std::optional(samples->median()) : std::nullopt);
    }
    chart.series.push_back(series);
  }
  return svg::grouped_bars(chart);
}

std::string relative_chart(const Measurements& measurements) {
  svg::GroupedBars chart;
  chart.title = "Relative performance per operation (after Figure 3 of Barham et al., SOSP 2003)";
  chart.subtitle =
      "hvm's cycles per operation over each technique's: higher is faster, hvm = 1; "
      "log axis";
  chart.axis_label = "relative performance (hvm = 1)";
  chart.log_axis = true;
  chart.reference_line = 1.0;
  chart.footnote = measurements.platform_line;
  for (const auto& name : measurements.operation_names)
    chart.groups.push_back(name);
  for (const auto& technique : measurements.technique_labels) {
    svg::Series series{technique, technique_colour(technique), {}, false};
    for (const auto& name : measurements.operation_names)
      series.values.push_back(performance_relative_to_hvm(measurements, name, technique));
    chart.series.push_back(series);
  }
  return svg::grouped_bars(chart);
}

std::string time_text(double nanoseconds) {
  char text[32];
  if (nanoseconds >= 1e6) {
    std::snprintf(text, sizeof text, "%.3g ms", nanoseconds / 1e6);
  } else if (nanoseconds >= 1e3) {
    std::snprintf(text, sizeof text, "%.3g us", nanoseconds / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.3g ns", nanoseconds);
  }
  return text;
}

std::string breakdown_chart(const Measurements& measurements) {
  svg::StackedShares chart;
  chart.title = "Where each operation's time goes, by level";
  chart.subtitle =
      "wall time per operation inside the measured loop (the share of each level; the total after "
      "the bar)";
  for (const auto& level : kLevels)
    chart.legend.emplace_back(level.name, level.colour);
  chart.footnote = measurements.platform_line;
  for (const auto& name : measurements.operation_names) {
    // Its loop waits for each tick: its window is a tick period, not the
    // interrupt's cost (the tables have that).
    if (name == kWaitingOperation) continue;
    svg::StackedGroup group{name, {}};
    for (const auto& technique : measurements.technique_labels) {
      if (technique == kQemuTcgLabel) continue;  // no VM: no levels to tell apart
      svg::StackedRow row{technique, {}, {}, {}};
      double total = 0;
      for (const auto& level : kLevels) {
        const Samples* samples = figure_of(measurements, name, technique, level.figure);
        const double value = samples != nullptr ? std::max(0.0, samples->median()) : 0;
        row.segments.push_back({level.colour, value});
        total += value;
      }
      row.total = time_text(total);
      row.note = missing_text(measurements, name, technique);
      group.rows.push_back(row);
    }
    chart.groups.push_back(group);
  }
  return svg::stacked_shares(chart);
}

std::string breakdown_table(const Measurements& measurements) {
  std::ostringstream out;
  out << "| operation | technique |";
  for (const auto& level : kLevels)
    out << " " << level.name << " |";
  out << "\n| --- | --- |";
  for (std::size_t index = 0; index < std::size(kLevels); ++index)
    out << " ---: |";
  out << "\n";
  for (const auto& name : measurements.operation_names) {
    if (name == kWaitingOperation) continue;
    for (const auto& technique : measurements.technique_labels) {
      if (technique == kQemuTcgLabel) continue;
      const Cell* cell = measurements.cell(name, technique);
      if (cell == nullptr || cell->status != CellStatus::Measured) continue;
      out << "| " << name << " | " << technique << " |";
      for (const auto& level : kLevels) {
        const Samples* samples = cell->figure(level.figure);
        out << " " << (samples != nullptr ? time_text(std::max(0.0, samples->median())) : "-")
            << " |";
      }
      out << "\n";
    }
  }
  return out.str();
}

}  // namespace

std::string median_with_spread(const Samples& samples) {
  if (samples.empty()) return "-";
  std::string median = figure_text(samples.median());
  if (samples.values.size() < 2) return median;
  return median + " (" + figure_text(samples.minimum()) + "-" + figure_text(samples.maximum()) +
         ")";
}

std::optional<double> performance_relative_to_hvm(const Measurements& measurements,
                                                  std::string_view operation,
                                                  std::string_view technique) {
  const Samples* hvm = figure_of(measurements, operation, "hvm", Figure::CyclesPerOp);
  const Samples* other = figure_of(measurements, operation, technique, Figure::CyclesPerOp);
  if (hvm == nullptr || other == nullptr || other->median() <= 0 || hvm->median() <= 0) {
    return std::nullopt;
  }
  return hvm->median() / other->median();
}

std::vector<std::string> report_file_names() {
  return {"report.md", "adams-agesen.svg", "relative.svg", "breakdown.svg", "measurements.json"};
}

std::vector<ReportFile> make_report(const Measurements& measurements) {
  std::ostringstream out;
  out << "# vmlab: per-operation costs under every technique\n\n"
      << "Measured " << measurements.date << " on this machine:\n\n    "
      << measurements.platform_line << "\n\n"
      << "Each figure is the median of " << measurements.repetitions
      << " interleaved repetitions (the order of the runs rotating from one repetition to the "
         "next), with the lowest and highest in brackets. Cycles are the guest's own `rdtsc` "
         "around its loop of N operations";
  if (measurements.tsc_khz != 0) {
    out << " (TSC " << with_separators(measurements.tsc_khz / 1000.0) << " MHz)";
  }
  out << "; the counts per operation are the difference between a run of N and a shorter run, "
         "over the difference of their N, so that the boot cancels out.\n\n"
      << "## Adams and Agesen's operations, cycles per operation\n\n"
      << adams_agesen_table(measurements) << "\n[1] " << adams_agesen_citation()
      << ". Their figures as their text gives them; ~ marks one the text gives as a ratio "
         "(the ratio in brackets where there is no number). Their machine had VT-x; this one "
      << (measurements.platform_line.find("kvm_pvm") != std::string::npos
              ? "has a software KVM backend (kvm_pvm), which runs a guest's CPL0 code in KVM's "
                "instruction emulator: hvm's kernel-mode operations cost what emulation costs, "
                "not what VT-x costs."
              : "is named above.")
      << "\n\n![Adams and Agesen's operations](adams-agesen.svg)\n\n";
  if (const std::string others = other_operations_table(measurements); !others.empty()) {
    out << "## vmlab's other operations, cycles per operation\n\n" << others << "\n";
  }
  out << "## Relative performance\n\n"
      << "As the Xen paper's Figure 3 draws it (there native Linux = 1, here hvm = 1, the "
         "technique with the least software in the way on this host): higher is faster.\n\n"
      << "![Relative performance](relative.svg)\n\n"
      << "## Where the time goes\n\n"
      << "Wall time per operation by the level the recorder attributed it to. The VMM cannot "
         "tell the guest's own instructions from KVM's work for it (its in-kernel exits, its "
         "instruction emulator): both are inside `KVM_RUN`, shown as guest time; the KVM exits "
         "and KVM-emulated instructions per operation in the tables below are KVM's share. In "
         "hvm the VMM sees no kernel/user switch between exits, so its split there is by the "
         "level at each exit. The interrupt is left out: its loop waits for each tick, so its time "
         "is a "
         "tick period, not the interrupt's cost.\n\n"
      << "![Time by level](breakdown.svg)\n\n"
      << breakdown_table(measurements) << "\n"
      << "## Every operation, every technique\n"
      << detail_tables(measurements) << "\n"
      << "## Boot\n\nThe shortest workload (cli-sti, n = 1), from `run_guest`'s start (KVM opened, "
         "the VM, board and memory made, the ELF loaded) to the first `KVM_RUN` and to the "
         "guest's result line.\n\n"
      << boot_table(measurements) << "\n";
  const std::string missing = gaps(measurements);
  out << "## Not measured\n\n" << (missing.empty() ? "Every cell was measured.\n" : missing);
  out << "\n" << measurements.platform_line << "\n";

  std::ostringstream json;
  write_measurements_json(measurements, json);
  const std::vector<std::string> contents = {out.str(), adams_agesen_chart(measurements),
                                             relative_chart(measurements),
                                             breakdown_chart(measurements), json.str()};
  std::vector<ReportFile> files;
  const auto names = report_file_names();
  for (std::size_t index = 0; index < names.size(); ++index)
    files.push_back({names[index], contents[index]});
  return files;
}

}  // namespace vmlab::measure
