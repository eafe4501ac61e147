// The four tables over the aggregates, against the hand-written trace whose
// figures are known (tests/unit/viz_engine/sample_trace.hpp), for the whole
// run and for a selection; each under QAbstractItemModelTester, which checks
// the model again after every reset the document causes.
#include "vmlab/viz/models/aggregate_models.hpp"

#include <gtest/gtest.h>

#include "../viz_engine/sample_trace.hpp"
#include "../viz_engine/viz_test_support.hpp"
#include "qt_test_support.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {
namespace {

using testing::CheckedModel;

std::shared_ptr<const TraceModel> sample_model() {
  return std::make_shared<const TraceModel>(testing::load_text(testing::kSampleTrace));
}

QString cell(const QAbstractItemModel& model, int row, int column, int role = Qt::DisplayRole) {
  return model.data(model.index(row, column), role).toString();
}

qulonglong number(const QAbstractItemModel& model, int row, int column) {
  return model.data(model.index(row, column), kValueRole).toULongLong();
}

TEST(ReasonCountsModel, WholeRunThenASelectionThenNone) {
  TraceDocument document;
  ReasonCountsModel model(&document);
  CheckedModel checked(&model);
  EXPECT_EQ(model.rowCount(), 0) << "no trace, no rows";
  EXPECT_EQ(model.columnCount(), ReasonCountsModel::kColumns);

  document.set_trace(sample_model(), "sample.trace");
  struct Expected {
    const char* kind;
    const char* reason;
    qulonglong count;
    qulonglong time;
    const char* time_text;
    const char* each_text;
  };
  const std::vector<Expected> whole = {
      {"vm-exit", "io-out", 4, 2300, "2.300", "0.575"},
      {"monitor-trap", "privileged-instruction", 2, 500, "0.500", "0.250"},
      {"guest-halt", "hlt", 1, 1500, "1.500", "1.500"},
      {"interrupt-injection", "external-interrupt", 1, 0, "0.000", "0.000"},
      {"monitor-trap", "system-call", 1, 300, "0.300", "0.300"},
      {"vm-exit", "hlt", 1, 2000, "2.000", "2.000"},
  };
  ASSERT_EQ(model.rowCount(), static_cast<int>(whole.size()));
  for (int row = 0; row < model.rowCount(); ++row) {
    const Expected& expected = whole[static_cast<std::size_t>(row)];
    EXPECT_EQ(cell(model, row, ReasonCountsModel::kKind), expected.kind) << row;
    EXPECT_EQ(cell(model, row, ReasonCountsModel::kReason), expected.reason) << row;
    EXPECT_EQ(cell(model, row, ReasonCountsModel::kCount), QString::number(expected.count));
    EXPECT_EQ(number(model, row, ReasonCountsModel::kCount), expected.count) << row;
    EXPECT_EQ(number(model, row, ReasonCountsModel::kTotalTime), expected.time) << row;
    EXPECT_EQ(cell(model, row, ReasonCountsModel::kTotalTime), expected.time_text) << row;
    EXPECT_EQ(cell(model, row, ReasonCountsModel::kTimeEach), expected.each_text) << row;
  }
  EXPECT_EQ(model.headerData(ReasonCountsModel::kTotalTime, Qt::Horizontal).toString(),
            QString::fromUtf8("Total time (µs)"));
  EXPECT_EQ(model.data(model.index(0, ReasonCountsModel::kCount), Qt::TextAlignmentRole).toInt(),
            static_cast<int>(Qt::AlignRight | Qt::AlignVCenter));

  // The console write and the iretq: two traps and the two exits carrying them.
  document.set_range({3000, 4300});
  ASSERT_EQ(model.rowCount(), 2);
  EXPECT_EQ(cell(model, 0, ReasonCountsModel::kReason), "privileged-instruction");
  EXPECT_EQ(number(model, 0, ReasonCountsModel::kTotalTime), 500u);
  EXPECT_EQ(cell(model, 1, ReasonCountsModel::kReason), "io-out");
  EXPECT_EQ(number(model, 1, ReasonCountsModel::kCount), 2u);
  EXPECT_EQ(number(model, 1, ReasonCountsModel::kTotalTime), 1100u);

  document.set_range({9500, 20000});
  EXPECT_EQ(model.rowCount(), 0) << "nothing starts after the last event";
  document.clear_range();
  EXPECT_EQ(model.rowCount(), static_cast<int>(whole.size()));
  document.set_trace(nullptr);
  EXPECT_EQ(model.rowCount(), 0);
}

TEST(CostlyRipsModel, MostVmmTimeFirst) {
  TraceDocument document;
  CostlyRipsModel model(&document);
  CheckedModel checked(&model);
  document.set_trace(sample_model());
  ASSERT_EQ(model.rowCount(), 4);
  EXPECT_EQ(cell(model, 0, CostlyRipsModel::kGuestRip), "0x101020");  // the hlt exit
  EXPECT_EQ(number(model, 0, CostlyRipsModel::kTotalTime), 2000u);
  EXPECT_EQ(cell(model, 1, CostlyRipsModel::kGuestRip), "0xffffff800000306a");
  EXPECT_EQ(number(model, 1, CostlyRipsModel::kExits), 2u);
  EXPECT_EQ(cell(model, 1, CostlyRipsModel::kTotalTime), "1.100");
  EXPECT_EQ(cell(model, 1, CostlyRipsModel::kTimeEach), "0.550");
  EXPECT_EQ(number(model, 1, CostlyRipsModel::kGuestRip), 0xffffff800000306aull);
  EXPECT_EQ(cell(model, 2, CostlyRipsModel::kGuestRip), "0xffffff8000003072");
  EXPECT_EQ(cell(model, 3, CostlyRipsModel::kGuestRip), "0x401000");

  document.set_range({6000, 6500});
  ASSERT_EQ(model.rowCount(), 1);
  EXPECT_EQ(cell(model, 0, CostlyRipsModel::kGuestRip), "0x401000");
  EXPECT_EQ(cell(model, 0, CostlyRipsModel::kExits), "1");
}

TEST(TrapCausesModel, ByDecodedInstruction) {
  TraceDocument document;
  TrapCausesModel model(&document);
  CheckedModel checked(&model);
  document.set_trace(sample_model());
  ASSERT_EQ(model.rowCount(), 3);
  EXPECT_EQ(cell(model, 0, TrapCausesModel::kCause), "iretq");  // one each: by text
  EXPECT_EQ(cell(model, 1, TrapCausesModel::kCause), "out dx, al");
  EXPECT_EQ(cell(model, 2, TrapCausesModel::kCause), "syscall");
  for (int row = 0; row < 3; ++row)
    EXPECT_EQ(number(model, row, TrapCausesModel::kCount), 1u);
  document.set_range({1000, 2000});
  ASSERT_EQ(model.rowCount(), 1);
  EXPECT_EQ(cell(model, 0, TrapCausesModel::kCause), "syscall");
}

TEST(TransitionsModel, EveryPairOfLevelsThatSawOne) {
  TraceDocument document;
  TransitionsModel model(&document);
  CheckedModel checked(&model);
  document.set_trace(sample_model());
  using enum TimelineLane;
  struct Expected {
    TimelineLane from, to;
    qulonglong count, time;
  };
  // In lane order (VMM, monitor, kernel, user, unknown, halted), from then to.
  const std::vector<Expected> expected = {
      {Vmm, GuestKernel, 1, 600},    {Vmm, Halted, 1, 1500},       {Monitor, GuestKernel, 2, 1700},
      {Monitor, GuestUser, 1, 1400}, {GuestKernel, Vmm, 1, 100},   {GuestKernel, Monitor, 2, 1100},
      {GuestUser, Vmm, 1, 400},      {GuestUser, Monitor, 1, 800}, {Halted, Vmm, 1, 400},
  };
  ASSERT_EQ(model.rowCount(), static_cast<int>(expected.size()));
  for (int row = 0; row < model.rowCount(); ++row) {
    const Expected& want = expected[static_cast<std::size_t>(row)];
    EXPECT_EQ(cell(model, row, TransitionsModel::kFrom), lane_title(want.from)) << row;
    EXPECT_EQ(cell(model, row, TransitionsModel::kTo), lane_title(want.to)) << row;
    EXPECT_EQ(number(model, row, TransitionsModel::kCount), want.count) << row;
    EXPECT_EQ(number(model, row, TransitionsModel::kTimeThere), want.time) << row;
  }
  EXPECT_EQ(cell(model, 2, TransitionsModel::kTimeThere), "1.700");

  document.set_range({3000, 4300});
  ASSERT_EQ(model.rowCount(), 2);
  EXPECT_EQ(cell(model, 0, TransitionsModel::kFrom), lane_title(Monitor));
  EXPECT_EQ(cell(model, 1, TransitionsModel::kFrom), lane_title(GuestKernel));
  EXPECT_EQ(number(model, 1, TransitionsModel::kCount), 2u);
  EXPECT_EQ(number(model, 1, TransitionsModel::kTimeThere), 800u)
      << "500, and 600 cut to 300 at the selection's end";
}

TEST(TraceDocument, RangeIsTheWholeRunUntilSelected) {
  TraceDocument document;
  int changes = 0;
  QObject::connect(&document, &TraceDocument::range_changed, [&] { ++changes; });
  document.set_trace(sample_model());
  EXPECT_FALSE(document.has_selection());
  EXPECT_EQ(document.range().start_ns, 0u) << "the guest ran from the start";
  EXPECT_EQ(document.range().end_ns, 9000u);
  EXPECT_EQ(document.aggregates().events, 10u);
  const int after_load = changes;
  document.set_range({1000, 2000});
  document.set_range({1000, 2000});
  EXPECT_EQ(changes, after_load + 1) << "the same range again changes nothing";
  EXPECT_TRUE(document.has_selection());
  EXPECT_EQ(document.aggregates().events, 2u);
  document.set_range({5000, 5000});
  EXPECT_FALSE(document.has_selection()) << "an empty range clears the selection";
  EXPECT_EQ(document.aggregates().events, 10u);
}

}  // namespace
}  // namespace vmlab::viz
