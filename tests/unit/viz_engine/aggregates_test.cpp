// Aggregates over the hand-written trace, whole and over a selection, and
// the summary `vmlab trace summary` prints from them.
#include "vmlab/viz/aggregates.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "sample_trace.hpp"
#include "viz_test_support.hpp"

namespace vmlab::viz {
namespace {

TEST(Aggregates, WholeSampleTrace) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  const Aggregates all = aggregate(model);
  EXPECT_EQ(all.events, 10u);
  EXPECT_EQ(all.span_ns, 8000u);

  struct ExpectedCount {
    EventKind kind;
    EventReason reason;
    std::uint64_t count, time;
  };
  // Most first; equal counts by kind name, then reason name.
  const std::vector<ExpectedCount> counts = {
      {EventKind::VmExit, EventReason::IoOut, 4, 2300},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, 2, 500},
      {EventKind::GuestHalt, EventReason::Halt, 1, 1500},
      {EventKind::InterruptInjection, EventReason::ExternalInterrupt, 1, 0},
      {EventKind::MonitorTrap, EventReason::SystemCall, 1, 300},
      {EventKind::VmExit, EventReason::Halt, 1, 2000},
  };
  ASSERT_EQ(all.counts.size(), counts.size());
  for (std::size_t index = 0; index < counts.size(); ++index) {
    EXPECT_EQ(all.counts[index].kind, counts[index].kind) << index;
    EXPECT_EQ(all.counts[index].reason, counts[index].reason) << index;
    EXPECT_EQ(all.counts[index].count, counts[index].count) << index;
    EXPECT_EQ(all.counts[index].total_duration_ns, counts[index].time) << index;
  }

  ASSERT_EQ(all.costly_rips.size(), 4u);
  EXPECT_EQ(all.costly_rips[0].guest_rip, 0x101020u);  // the hlt exit
  EXPECT_EQ(all.costly_rips[0].total_duration_ns, 2000u);
  EXPECT_EQ(all.costly_rips[1].guest_rip, 0xffffff800000306au);
  EXPECT_EQ(all.costly_rips[1].events, 2u);
  EXPECT_EQ(all.costly_rips[1].total_duration_ns, 1100u);
  EXPECT_EQ(all.costly_rips[2].guest_rip, 0xffffff8000003072u);
  EXPECT_EQ(all.costly_rips[3].guest_rip, 0x401000u);
  EXPECT_EQ(aggregate(model, {}, {.costly_rips = 1}).costly_rips.size(), 1u);

  ASSERT_EQ(all.traps_by_detail.size(), 3u);
  EXPECT_EQ(all.traps_by_detail[0].cause, "iretq");  // one each: by text
  EXPECT_EQ(all.traps_by_detail[1].cause, "out dx, al");
  EXPECT_EQ(all.traps_by_detail[2].cause, "syscall");

  using enum TimelineLane;
  const TransitionMatrix& matrix = all.transitions;
  EXPECT_EQ(matrix.total(), 11u);
  auto expect_cell = [&](TimelineLane from, TimelineLane to, std::uint64_t count,
                         std::uint64_t time) {
    EXPECT_EQ(matrix.at(from, to).count, count) << lane_name(from) << " -> " << lane_name(to);
    EXPECT_EQ(matrix.at(from, to).time_ns, time) << lane_name(from) << " -> " << lane_name(to);
  };
  expect_cell(GuestUser, Monitor, 1, 800);
  expect_cell(Monitor, GuestKernel, 2, 1700);
  expect_cell(GuestKernel, Monitor, 2, 1100);
  expect_cell(Monitor, GuestUser, 1, 1400);
  expect_cell(GuestUser, Vmm, 1, 400);
  expect_cell(Vmm, GuestKernel, 1, 600);
  expect_cell(GuestKernel, Vmm, 1, 100);
  expect_cell(Vmm, Halted, 1, 1500);
  expect_cell(Halted, Vmm, 1, 400);
  expect_cell(GuestKernel, GuestUser, 0, 0);
}

TEST(Aggregates, ASelectionCountsWhatStartsInsideIt) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  const Aggregates part = aggregate(model, {3000, 4300});
  EXPECT_EQ(part.events, 4u);
  EXPECT_EQ(part.span_ns, 1600u) << "3000 to the end of the exit at 4000";
  ASSERT_EQ(part.counts.size(), 2u);
  // Two each: monitor-trap before vm-exit.
  EXPECT_EQ(part.counts[0].reason, EventReason::PrivilegedInstruction);
  EXPECT_EQ(part.counts[0].count, 2u);
  EXPECT_EQ(part.counts[0].total_duration_ns, 500u);
  EXPECT_EQ(part.counts[1].reason, EventReason::IoOut);
  EXPECT_EQ(part.counts[1].count, 2u);
  EXPECT_EQ(part.counts[1].total_duration_ns, 1100u);
  ASSERT_EQ(part.costly_rips.size(), 1u);
  EXPECT_EQ(part.costly_rips[0].events, 2u);
  EXPECT_EQ(part.transitions.total(), 3u);
  EXPECT_EQ(part.transitions.at(TimelineLane::GuestKernel, TimelineLane::Monitor).count, 2u);
  EXPECT_EQ(part.transitions.at(TimelineLane::GuestKernel, TimelineLane::Monitor).time_ns, 800u)
      << "500, and 600 cut to 300 at the selection's end";
  const Aggregates nothing = aggregate(model, {9500, 20000});
  EXPECT_EQ(nothing.events, 0u);
  EXPECT_TRUE(nothing.counts.empty());
  EXPECT_EQ(nothing.transitions.total(), 0u);
}

TEST(Aggregates, SummaryText) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  std::ostringstream out;
  print_summary(model, aggregate(model), out);
  const std::string text = out.str();
  auto has = [&](const std::string& part) {
    EXPECT_NE(text.find(part), std::string::npos) << "no '" << part << "' in\n" << text;
  };
  has("run: cpu=full workload=syscalls n=1\n10 events over 8.000 us\n");
  has("  vm-exit              io-out                          4            2.3         0.57\n");
  has("  guest-kernel          0.002 ms   28.8%\n");
  has("  guest-user     monitor                 1              0.8\n");
  has("  monitor        guest-kernel            2              1.7\n");
  has("  iretq                                             1\n");
  has("  0xffffff800000306a          2 exits          1.1 us\n");
  has("platform: test backend on test CPU\n");
  EXPECT_EQ(text.find("warning"), std::string::npos);
}

TEST(Aggregates, SummaryOfATruncatedTraceWarns) {
  // The header counts 10 events; the file stops after 4.
  std::string cut = testing::kSampleTrace;
  std::size_t end = 0;
  for (int line = 0; line < 6 + 4; ++line)
    end = cut.find('\n', end) + 1;
  cut.resize(end);
  const TraceModel model = testing::load_text(cut);
  EXPECT_TRUE(model.truncated());
  std::ostringstream out;
  print_summary(model, aggregate(model), out);
  EXPECT_NE(out.str().find("warning: truncated trace: read 4 events of the 10 its header counts"),
            std::string::npos)
      << out.str();
}

}  // namespace
}  // namespace vmlab::viz
