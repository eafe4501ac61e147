// The comparison a window shows: a file read whole into the document with
// a signal, a bad one refused naming its field with the document kept, and
// a file told a trace or a comparison by what it holds, not its name.
#include "vmlab/viz/models/comparison_document.hpp"

#include <gtest/gtest.h>

#include <QSignalSpy>

#include "../../support/scratch_files.hpp"
#include "vmlab/viz/models/input_file.hpp"

namespace vmlab::viz {
namespace {

using vmlab::testing::ScratchDirectory;
using vmlab::testing::write_file;

const char* const kTwoRows = R"({
  "platform": "platform: kvm_intel on Test CPU",
  "rows": [
    {"workload": "pio", "n": 100, "cpu": "hvm", "irqchip": "vmm", "disk_model": "", "ok": true,
     "cycles": 1000, "cycles_per_op": 10, "vm_exits_per_op": 1.0, "kvm_exits_per_op": 1.0,
     "monitor_traps_per_op": 0, "hypercalls_per_op": 0,
     "share_percent": {"guest": 90, "guest_user_at_exit": 0, "guest_kernel_at_exit": 90,
                       "monitor": 0, "vmm": 10, "halted": 0},
     "relative_to_hvm": 1, "result": "pio ok"},
    {"workload": "pio", "n": 100, "cpu": "full", "irqchip": "vmm", "disk_model": "",
     "ok": false, "failure": "the guest timed out"}
  ]
})";

QString q(const std::filesystem::path& path) {
  return QString::fromStdString(path.string());
}

TEST(ComparisonDocument, OpensAFileAndKeepsItThroughABadOne) {
  ScratchDirectory directory("vmlab-viz-comparison-");
  write_file(directory / "good.json", kTwoRows);
  std::string bad = kTwoRows;
  bad.replace(bad.find("\"vmm\": 10"), 9, "\"vmm\": \"ten\"");
  write_file(directory / "bad.json", bad);

  ComparisonDocument document;
  EXPECT_FALSE(document.has_results());
  QSignalSpy changed(&document, &ComparisonDocument::results_changed);
  ASSERT_TRUE(document.load_file(q(directory / "good.json")).ok());
  EXPECT_EQ(changed.count(), 1);
  EXPECT_TRUE(document.has_results());
  EXPECT_EQ(document.path(), q(directory / "good.json"));
  EXPECT_EQ(document.results().platform_line, "platform: kvm_intel on Test CPU");
  ASSERT_EQ(document.results().rows.size(), 2u);
  EXPECT_FALSE(document.results().rows[1].ok);

  const Status refused = document.load_file(q(directory / "bad.json"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ComparisonError::kWrongType);
  // The file and the field: what the user must fix, and where.
  EXPECT_NE(refused.error().message.find("bad.json: rows[0].share_percent.vmm"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(changed.count(), 1) << "nothing changed";
  EXPECT_EQ(document.path(), q(directory / "good.json"));
  EXPECT_EQ(document.results().rows.size(), 2u);
}

TEST(InputFile, TellsATraceFromAComparisonByWhatItHolds) {
  ScratchDirectory directory("vmlab-viz-input-");
  write_file(directory / "run.trace", "# vmlab-trace 2\n# events: 0 recorded, 0 dropped\n");
  write_file(directory / "run.json", "# vmlab-trace 2\n# events: 0 recorded, 0 dropped\n");
  write_file(directory / "results.trace", kTwoRows);
  write_file(directory / "results", std::string("\xef\xbb\xbf\n  ") + kTwoRows);
  write_file(directory / "empty.json", "");
  write_file(directory / "notes.txt", "hello");
  write_file(directory / "NOTES.JSON", "hello");
  auto kind = [&](const char* name) { return input_kind_of_file(q(directory / name)); };
  EXPECT_EQ(kind("run.trace"), InputKind::Trace);
  EXPECT_EQ(kind("run.json"), InputKind::Trace) << "the header decides, not the name";
  EXPECT_EQ(kind("results.trace"), InputKind::Comparison);
  EXPECT_EQ(kind("results"), InputKind::Comparison) << "after a byte-order mark and blanks";
  // Neither kind's start: the name says what the user meant.
  EXPECT_EQ(kind("empty.json"), InputKind::Comparison);
  EXPECT_EQ(kind("NOTES.JSON"), InputKind::Comparison);
  EXPECT_EQ(kind("notes.txt"), InputKind::Trace);
  EXPECT_EQ(kind("absent.json"), InputKind::Comparison);
  EXPECT_EQ(kind("absent"), InputKind::Trace);
}

}  // namespace
}  // namespace vmlab::viz
