// The report from a recorded run (tests/data: `vmlab report` on an AMD EPYC
// kvm_pvm host, 3 repetitions): every row and column present, Adams and
// Agesen's figures exactly as published, the medians and ratios as the
// samples give them, and what is missing said to be missing. No KVM, no
// timing.
#include "vmlab/measure/report.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "vmlab/measure/reference_figures.hpp"

namespace vmlab::measure {
namespace {

Measurements recorded() {
  auto read = read_measurements_file(VMLAB_RECORDED_OPERATIONS);
  EXPECT_TRUE(read.ok()) << read.error().message;
  return read.ok() ? std::move(*read) : Measurements{};
}

const ReportFile& file(const std::vector<ReportFile>& files, const std::string& name) {
  static const ReportFile none;
  auto found = std::find_if(files.begin(), files.end(),
                            [&](const ReportFile& report) { return report.name == name; });
  return found == files.end() ? none : *found;
}

// The Markdown table row that starts with `label`.
std::string row_of(const std::string& markdown, const std::string& label) {
  const auto start = markdown.find("\n| " + label + " |");
  if (start == std::string::npos) return {};
  return markdown.substr(start + 1, markdown.find('\n', start + 1) - start - 1);
}

TEST(Report, WritesTheReportItsChartsAndItsData) {
  const auto files = make_report(recorded());
  std::vector<std::string> names;
  for (const auto& report : files)
    names.push_back(report.name);
  EXPECT_EQ(names, (std::vector<std::string>{"report.md", "adams-agesen.svg", "relative.svg",
                                             "breakdown.svg", "measurements.json"}));
  for (const auto& chart : {"adams-agesen.svg", "relative.svg", "breakdown.svg"}) {
    const std::string& svg = file(files, chart).content;
    EXPECT_EQ(svg.rfind("<!-- vmlab report chart -->\n<svg ", 0), 0u) << chart;
    EXPECT_NE(svg.find("</svg>"), std::string::npos) << chart;
    EXPECT_NE(svg.find("kvm_pvm"), std::string::npos) << chart << " names the platform";
  }
  // The data file is the measurements again, sample for sample.
  auto again = parse_measurements_json(file(files, "measurements.json").content);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->cells.size(), recorded().cells.size());
}

TEST(Report, HasEveryReferenceAndEveryTechniqueRow) {
  const Measurements measurements = recorded();
  const std::string report = file(make_report(measurements), "report.md").content;
  EXPECT_NE(report.find("AMD EPYC"), std::string::npos) << "names the CPU";
  EXPECT_NE(report.find("kvm_pvm"), std::string::npos) << "names the backend";
  EXPECT_NE(report.find("| | syscall | in | cr8wr | call/ret | pgfault | divzero | ptemod |"),
            std::string::npos);
  for (const char* label :
       {"Native (2006) [1]", "Software VMM (2006) [1]", "Hardware VMM (2006) [1]", "vmlab hvm",
        "vmlab hvm+kirq", "vmlab full", "vmlab bt", "vmlab para", "vmlab qemu-tcg"}) {
    EXPECT_FALSE(row_of(report, label).empty()) << label;
  }
  EXPECT_NE(report.find("ASPLOS XII"), std::string::npos) << "the reference is cited";
  for (const auto& operation : operations())
    EXPECT_NE(report.find("### " + std::string(operation.name)), std::string::npos);
}

// As their paper's text gives them (syscall has no figure there; the ~ ones
// are ratios of figures it does give).
TEST(Report, PublishedFiguresAreAsPublished) {
  const std::string report = file(make_report(recorded()), "report.md").content;
  EXPECT_EQ(
      row_of(report, "Native (2006) [1]"),
      "| Native (2006) [1] | (no figure in the text) | 3,209 | ~140 | 11 | 1,093 | 889 | ~1 |");
  EXPECT_EQ(row_of(report, "Software VMM (2006) [1]"),
            "| Software VMM (2006) [1] | (native + about 2,000) | ~214 | 35 | 51 | 3,927 | 3,223 | "
            "391 |");
  EXPECT_EQ(
      row_of(report, "Hardware VMM (2006) [1]"),
      "| Hardware VMM (2006) [1] | (as native) | 15,826 | (as native) | 11 | 11,242 | 1,014 | "
      "12,733 |");
  const auto rows = adams_agesen_rows();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].figures[1].cycles, 3209);
  EXPECT_FALSE(rows[0].figures[1].approximate);
  EXPECT_EQ(rows[1].figures[1].cycles, 214);
  EXPECT_TRUE(rows[1].figures[1].approximate) << "the text says fifteen times native";
  EXPECT_EQ(rows[2].figures[6].cycles, 12733);
}

// A measured cell: its median and spread from its samples; the relative
// performance as hvm's median over the technique's.
TEST(Report, FiguresAreTheSamplesMedians) {
  const Measurements measurements = recorded();
  const Cell* full = measurements.cell("pgfault", "full");
  const Cell* hvm = measurements.cell("pgfault", "hvm");
  ASSERT_NE(full, nullptr);
  ASSERT_NE(hvm, nullptr);
  const Samples& cycles = *full->figure(Figure::CyclesPerOp);
  ASSERT_EQ(cycles.values.size(), 3u);
  std::vector<double> sorted = cycles.values;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_DOUBLE_EQ(cycles.median(), sorted[1]);
  const std::string text = median_with_spread(cycles);
  const std::string report = file(make_report(measurements), "report.md").content;
  EXPECT_NE(row_of(report, "vmlab full").find(text), std::string::npos)
      << text << " in " << row_of(report, "vmlab full");
  auto relative = performance_relative_to_hvm(measurements, "pgfault", "full");
  ASSERT_TRUE(relative.has_value());
  EXPECT_DOUBLE_EQ(*relative, hvm->figure(Figure::CyclesPerOp)->median() / cycles.median());
  EXPECT_DOUBLE_EQ(*performance_relative_to_hvm(measurements, "pgfault", "hvm"), 1.0);
  EXPECT_FALSE(performance_relative_to_hvm(measurements, "hypercall", "para").has_value())
      << "hvm makes no hypercall: there is nothing to compare with";
  EXPECT_EQ(median_with_spread(Samples{{1234.4, 1000, 2000}}), "1,234 (1,000-2,000)");
  EXPECT_EQ(median_with_spread(Samples{{2.5}}), "2.5");
}

TEST(Report, SaysWhatIsMissing) {
  Measurements measurements = recorded();
  // bt taken out of the run, as if it had not been asked for.
  std::erase(measurements.technique_labels, "bt");
  std::erase_if(measurements.cells, [](const Cell& cell) { return cell.technique == "bt"; });
  std::erase_if(measurements.boot, [](const BootCell& cell) { return cell.technique == "bt"; });
  const std::string report = file(make_report(measurements), "report.md").content;
  EXPECT_TRUE(row_of(report, "vmlab bt").empty());
  EXPECT_NE(report.find("- bt: missing, not measured in this run"), std::string::npos);
  // Not applicable and failed cells say so, with why.
  EXPECT_NE(report.find("cr8wr under para: not-applicable, the paravirtual kernel has no TPR"),
            std::string::npos);
  EXPECT_NE(row_of(report, "vmlab para").find("n/a"), std::string::npos);
  // A cell the file lacks although its technique is there.
  std::erase_if(measurements.cells, [](const Cell& cell) {
    return cell.technique == "full" && cell.operation == "syscall";
  });
  const std::string without = file(make_report(measurements), "report.md").content;
  EXPECT_NE(without.find("- syscall under full: missing from the results"), std::string::npos);
  EXPECT_EQ(row_of(without, "vmlab full").rfind("| vmlab full | not run |", 0), 0u)
      << row_of(without, "vmlab full");
}

}  // namespace
}  // namespace vmlab::measure
