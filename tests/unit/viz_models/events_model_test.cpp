// The flat list of events: each column of the hand-written trace's events,
// a time range, a search's matches, and a million rows served without
// making a string until a cell is asked for.
#include "vmlab/viz/models/events_model.hpp"

#include <gtest/gtest.h>

#include <QElapsedTimer>

#include "../viz_engine/sample_trace.hpp"
#include "../viz_engine/viz_test_support.hpp"
#include "qt_test_support.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {
namespace {

using testing::CheckedModel;

QString cell(const QAbstractItemModel& model, int row, int column) {
  return model.data(model.index(row, column)).toString();
}

TEST(EventsModel, EveryColumnOfTheSampleTrace) {
  EventsModel model;
  CheckedModel checked(&model);
  EXPECT_EQ(model.rowCount(), 0);
  model.set_trace(std::make_shared<const TraceModel>(testing::load_text(testing::kSampleTrace)));
  ASSERT_EQ(model.rowCount(), 10);
  ASSERT_EQ(model.columnCount(), EventsModel::kColumns);

  // Event 0: the stub's exit for the user's syscall.
  const QStringList first = {"0",      "1.000",      "800", "vm-exit",
                             "io-out", "guest-user", "vmm", "0xffffff8000003072",
                             "0xe8",   "1",          "0x3", ""};
  for (int column = 0; column < EventsModel::kColumns; ++column)
    EXPECT_EQ(cell(model, 0, column), first[column]) << "column " << column;
  // Event 1: the trap it carried, with its mnemonic.
  EXPECT_EQ(cell(model, 1, EventsModel::kKind), "monitor-trap");
  EXPECT_EQ(cell(model, 1, EventsModel::kReason), "system-call");
  EXPECT_EQ(cell(model, 1, EventsModel::kTo), "guest-kernel");
  EXPECT_EQ(cell(model, 1, EventsModel::kDetail), "syscall");
  EXPECT_EQ(model.data(model.index(1, EventsModel::kTime), kValueRole).toULongLong(), 1200u);
  EXPECT_EQ(model.data(model.index(1, EventsModel::kGuestRip), kValueRole).toULongLong(),
            0x4002a8u);
  // Event 9: the timer interrupt, vector 0x20.
  EXPECT_EQ(cell(model, 9, EventsModel::kKind), "interrupt-injection");
  EXPECT_EQ(cell(model, 9, EventsModel::kAddress), "0x20");
  EXPECT_EQ(model.headerData(EventsModel::kDetail, Qt::Horizontal).toString(), "Detail");
}

TEST(EventsModel, ARangeAndASearchsMatches) {
  EventsModel model;
  CheckedModel checked(&model);
  model.set_trace(std::make_shared<const TraceModel>(testing::load_text(testing::kSampleTrace)));
  model.show_range({3000, 4300});
  ASSERT_EQ(model.rowCount(), 4);
  for (int row = 0; row < 4; ++row)
    EXPECT_EQ(model.event_at(row), static_cast<EventIndex>(2 + row));
  EXPECT_EQ(cell(model, 1, EventsModel::kDetail), "out dx, al");
  EXPECT_EQ(model.row_of(5), 3);
  EXPECT_EQ(model.row_of(6), -1);
  EXPECT_EQ(model.event_at(4), kNoEvent);

  // Matches in the order given; an index past the trace is dropped.
  model.show_events({7, 1, 99});
  ASSERT_EQ(model.rowCount(), 2);
  EXPECT_EQ(cell(model, 0, EventsModel::kReason), "hlt");
  EXPECT_EQ(cell(model, 1, EventsModel::kReason), "system-call");
  EXPECT_EQ(model.row_of(1), 1);

  model.show_range({});
  EXPECT_EQ(model.rowCount(), 10);
  model.set_trace(nullptr);
  EXPECT_EQ(model.rowCount(), 0);
}

TEST(EventsModel, AMillionRowsLazily) {
  constexpr std::size_t kEvents = 1'000'000;
  Trace trace;
  trace.version = 2;
  trace.expected_events = kEvents;
  trace.events.reserve(kEvents);
  for (std::size_t index = 0; index < kEvents; ++index) {
    trace.events.push_back(Event{.time_ns = 1000 * index,
                                 .duration_ns = 300,
                                 .guest_rip = 0x100000 + index,
                                 .address = 0x3f8,
                                 .size = 1,
                                 .kind = EventKind::VmExit,
                                 .reason = EventReason::IoOut,
                                 .from = PrivilegeLevel::GuestKernel,
                                 .to = PrivilegeLevel::Vmm});
  }
  auto shared = std::make_shared<const TraceModel>(TraceModel::from_trace(trace));
  trace = Trace{};
  EventsModel model;
  QElapsedTimer timer;
  timer.start();
  model.set_trace(shared);
  EXPECT_EQ(model.rowCount(), static_cast<int>(kEvents));
  EXPECT_EQ(cell(model, 999'999, EventsModel::kGuestRip), hex_text(0x100000 + 999'999));
  EXPECT_EQ(cell(model, 999'999, EventsModel::kTime), "999999.000");
  model.show_range({500'000'000, 500'010'000});
  EXPECT_EQ(model.rowCount(), 10);
  EXPECT_EQ(model.event_at(0), 500'000u);
  model.show_range({});
  // Showing a million rows is a pair of indexes: no per-row work at all.
  EXPECT_LT(timer.elapsed(), 200) << "milliseconds to show and read a million rows";
  // Qt's own checks on the million-row table (it walks every index).
  CheckedModel checked(&model);
}

}  // namespace
}  // namespace vmlab::viz
