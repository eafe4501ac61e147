// A `vmlab compare --json` file as a table: a row per run, its figures, a
// failed run's empty figures, and a bad file refused with the table kept.
#include "vmlab/viz/models/comparison_model.hpp"

#include <gtest/gtest.h>

#include "../../support/scratch_files.hpp"
#include "qt_test_support.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {
namespace {

using testing::CheckedModel;

// Three rows as `vmlab compare --json` writes them: hvm, bt with its
// translation figures, and a para run that failed.
const char* const kComparison = R"({
  "platform": "platform: kvm_pvm on Test CPU",
  "rows": [
    {"workload": "syscalls", "n": 5000, "cpu": "hvm", "irqchip": "vmm", "disk_model": "",
     "ok": true, "cycles": 1170425000, "cycles_per_op": 234085.0, "vm_exits_per_op": 0.07,
     "kvm_exits_per_op": 3.08, "monitor_traps_per_op": 0.0, "hypercalls_per_op": 0.0,
     "share_percent": {"guest": 99.9, "guest_user_at_exit": 12.5, "guest_kernel_at_exit": 87.4,
                       "monitor": 0.0, "vmm": 0.1, "halted": 0.0},
     "relative_to_hvm": 1.0, "result": "syscalls ok n=5000"},
    {"workload": "syscalls", "n": 5000, "cpu": "bt", "irqchip": "kernel", "disk_model": "virtio",
     "ok": true, "cycles": 2168640000, "cycles_per_op": 433728.0, "vm_exits_per_op": 2.1,
     "kvm_exits_per_op": 5.5, "monitor_traps_per_op": 2.08, "hypercalls_per_op": 0.0,
     "share_percent": {"guest": 90.0, "guest_user_at_exit": 10.0, "guest_kernel_at_exit": 80.0,
                       "monitor": 1.9, "vmm": 8.1, "halted": 0.0},
     "relative_to_hvm": 1.85,
     "translation": {"blocks": 300, "guest_instructions": 2400, "tc_bytes": 65536,
                     "branch_exits": 40, "chained": 35, "lookup_misses": 7,
                     "blocks_invalidated": 2, "flushes": 0, "call_outs": {"out dx, al": 311}},
     "result": "syscalls ok n=5000"},
    {"workload": "timer", "n": 20, "cpu": "para", "irqchip": "vmm", "disk_model": "",
     "ok": false, "failure": "guest timed out after 60 s"}
  ]
})";

QString cell(const QAbstractItemModel& model, int row, int column) {
  return model.data(model.index(row, column)).toString();
}

TEST(ComparisonModel, ARowPerRun) {
  auto results = parse_comparison_json(kComparison);
  ASSERT_TRUE(results.ok()) << results.error().message;
  ComparisonModel model;
  CheckedModel checked(&model);
  model.set_results(std::move(*results));
  ASSERT_EQ(model.rowCount(), 3);
  EXPECT_EQ(model.columnCount(), ComparisonModel::kColumns);

  EXPECT_EQ(cell(model, 0, ComparisonModel::kWorkload), "syscalls");
  EXPECT_EQ(cell(model, 0, ComparisonModel::kN), "5000");
  EXPECT_EQ(cell(model, 0, ComparisonModel::kCpu), "hvm");
  EXPECT_EQ(cell(model, 0, ComparisonModel::kDisk), "none");
  EXPECT_EQ(cell(model, 0, ComparisonModel::kStatus), "ok");
  EXPECT_EQ(cell(model, 0, ComparisonModel::kCyclesPerOp), "234085");
  EXPECT_EQ(cell(model, 0, ComparisonModel::kKvmExitsPerOp), "3.08");
  EXPECT_EQ(cell(model, 0, ComparisonModel::kGuestShare), "99.9");

  EXPECT_EQ(cell(model, 1, ComparisonModel::kCpu), "bt");
  EXPECT_EQ(cell(model, 1, ComparisonModel::kIrqchip), "kernel");
  EXPECT_EQ(cell(model, 1, ComparisonModel::kDisk), "virtio");
  EXPECT_EQ(cell(model, 1, ComparisonModel::kRelativeToHvm), "1.85");
  EXPECT_DOUBLE_EQ(
      model.data(model.index(1, ComparisonModel::kRelativeToHvm), kValueRole).toDouble(), 1.85);
  EXPECT_EQ(cell(model, 1, ComparisonModel::kMonitorTrapsPerOp), "2.08");
  EXPECT_EQ(cell(model, 1, ComparisonModel::kMonitorShare), "1.9");

  // A failed run says why and has no figures.
  EXPECT_EQ(cell(model, 2, ComparisonModel::kStatus), "failed: guest timed out after 60 s");
  EXPECT_EQ(cell(model, 2, ComparisonModel::kCyclesPerOp), "");
  EXPECT_FALSE(model.data(model.index(2, ComparisonModel::kCyclesPerOp), kValueRole).isValid());
  EXPECT_EQ(model.headerData(ComparisonModel::kRelativeToHvm, Qt::Horizontal).toString(),
            "Relative to hvm");
}

TEST(ComparisonModel, ABadFileLeavesTheTableAsItWas) {
  vmlab::testing::ScratchDirectory directory("vmlab-viz-models-");
  const auto good = directory / "good.json";
  const auto bad = directory / "bad.json";
  vmlab::testing::write_file(good, kComparison);
  vmlab::testing::write_file(bad, R"({"platform": "x", "rows": [{"workload": 7}]})");
  ComparisonModel model;
  CheckedModel checked(&model);
  ASSERT_TRUE(model.load_file(good.string()).ok());
  EXPECT_EQ(model.rowCount(), 3);
  const Status refused = model.load_file(bad.string());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ComparisonError::kWrongType);
  EXPECT_EQ(model.rowCount(), 3);
  const Status missing = model.load_file((directory / "absent.json").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ComparisonError::kUnreadable);
}

}  // namespace
}  // namespace vmlab::viz
