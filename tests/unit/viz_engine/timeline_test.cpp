// Spans per lane and transitions between levels: the hand-written trace
// exactly, then random traces against the nanosecond-by-nanosecond reference.
#include "vmlab/viz/timeline.hpp"

#include <gtest/gtest.h>

#include "sample_trace.hpp"
#include "viz_test_support.hpp"

namespace vmlab::viz {
namespace {

using testing::kSampleTrace;
using testing::load_text;

struct ExpectedPiece {
  std::uint64_t start;
  std::uint64_t end;
  SpanLabel label;
  EventIndex event;
};

void expect_pieces(const TraceModel& model, TimelineLane lane,
                   const std::vector<ExpectedPiece>& expected) {
  const LaneTimeline& pieces = model.lane(lane);
  ASSERT_EQ(pieces.size(), expected.size()) << lane_name(lane);
  for (std::size_t index = 0; index < expected.size(); ++index) {
    const auto piece = pieces.piece(index);
    EXPECT_EQ(piece.start_ns, expected[index].start) << lane_name(lane) << " piece " << index;
    EXPECT_EQ(piece.end_ns, expected[index].end) << lane_name(lane) << " piece " << index;
    EXPECT_EQ(piece.label, expected[index].label)
        << lane_name(lane) << " piece " << index << ": " << piece.label.name();
    EXPECT_EQ(piece.event, expected[index].event) << lane_name(lane) << " piece " << index;
    EXPECT_TRUE(piece.first) << "no span here is cut by another";
  }
}

TEST(Timeline, SampleTraceSpansPerLane) {
  const TraceModel model = load_text(kSampleTrace);
  ASSERT_EQ(model.events().size(), 10u);
  const SpanLabel running = SpanLabel::guest_running();
  const SpanLabel io_out = SpanLabel::of(EventKind::VmExit, EventReason::IoOut);
  const SpanLabel privileged =
      SpanLabel::of(EventKind::MonitorTrap, EventReason::PrivilegedInstruction);
  expect_pieces(model, TimelineLane::Vmm,
                {{1000, 1800, io_out, 0},
                 {3000, 3500, io_out, 2},
                 {4000, 4600, io_out, 4},
                 {6000, 6400, io_out, 6},
                 {7000, 9000, SpanLabel::of(EventKind::VmExit, EventReason::Halt), 7}});
  expect_pieces(model, TimelineLane::Monitor,
                {{1200, 1500, SpanLabel::of(EventKind::MonitorTrap, EventReason::SystemCall), 1},
                 {3100, 3300, privileged, 3},
                 {4100, 4400, privileged, 5}});
  // Guest running belongs to the exit it ended with.
  expect_pieces(model, TimelineLane::GuestKernel,
                {{1800, 3000, running, 2}, {3500, 4000, running, 4}, {6400, 7000, running, 7}});
  expect_pieces(model, TimelineLane::GuestUser, {{0, 1000, running, 0}, {4600, 6000, running, 6}});
  expect_pieces(model, TimelineLane::GuestUnknown, {});
  expect_pieces(model, TimelineLane::Halted,
                {{7100, 8600, SpanLabel::of(EventKind::GuestHalt, EventReason::Halt), 8}});
  EXPECT_EQ(model.extent().start_ns, 1000u);
  EXPECT_EQ(model.extent().end_ns, 9000u);
}

TEST(Timeline, ASyscallUnderFullReadsUserMonitorKernelMonitorUser) {
  const TraceModel model = load_text(kSampleTrace);
  struct Expected {
    std::uint64_t time;
    TimelineLane from, to;
    std::uint64_t stay;
  };
  using enum TimelineLane;
  const std::vector<Expected> expected = {
      {1000, GuestUser, Monitor, 800},     // syscall: the stub's exit carries the trap
      {1800, Monitor, GuestKernel, 1200},  //
      {3000, GuestKernel, Monitor, 500},   // the console write, emulated
      {3500, Monitor, GuestKernel, 500},   //
      {4000, GuestKernel, Monitor, 600},   // iretq back to user mode
      {4600, Monitor, GuestUser, 1400},    //
      {6000, GuestUser, Vmm, 400},         // a port exit no monitor work rides on
      {6400, Vmm, GuestKernel, 600},       //
      {7000, GuestKernel, Vmm, 100},       // hlt: the VMM, then asleep, then the VMM
      {7100, Vmm, Halted, 1500},           //
      {8600, Halted, Vmm, 400},
  };
  const auto transitions = model.levels().transitions();
  ASSERT_EQ(transitions.size(), expected.size());
  for (std::size_t index = 0; index < expected.size(); ++index) {
    EXPECT_EQ(transitions[index].time_ns, expected[index].time) << index;
    EXPECT_EQ(transitions[index].from, expected[index].from) << index;
    EXPECT_EQ(transitions[index].to, expected[index].to) << index;
    EXPECT_EQ(transitions[index].stay_ns, expected[index].stay) << index;
  }
  // The level timeline's segments: the first is the user code before it all.
  const LevelTimeline& levels = model.levels();
  ASSERT_EQ(levels.size(), expected.size() + 1);
  EXPECT_EQ(levels.segment(0).start_ns, 0u);
  EXPECT_EQ(levels.segment(0).level, GuestUser);
  EXPECT_EQ(levels.segment(levels.size() - 1).end_ns, 9000u);

  // A range cuts the transitions and the last stay.
  const auto inside = levels.transitions({3000, 4300});
  ASSERT_EQ(inside.size(), 3u);
  EXPECT_EQ(inside[0].time_ns, 3000u);
  EXPECT_EQ(inside[2].time_ns, 4000u);
  EXPECT_EQ(inside[2].stay_ns, 300u);
}

TEST(Timeline, NestedSpansAreCutIntoPiecesTheInnermostOwning) {
  // bt: a translation made while the monitor handles a call-out lies inside
  // the trap's span; so do two at one instant of no length.
  std::string text = testing::trace_header(5);
  auto line = [&](std::uint64_t time, std::uint64_t duration, EventKind kind, EventReason reason) {
    text += testing::event_line({.time_ns = time,
                                 .duration_ns = duration,
                                 .kind = kind,
                                 .reason = reason,
                                 .from = PrivilegeLevel::GuestKernel,
                                 .to = PrivilegeLevel::GuestKernel});
  };
  line(100, 50, EventKind::MonitorTrap, EventReason::CallOut);
  line(120, 10, EventKind::Translation, EventReason::BlockTranslated);
  line(140, 0, EventKind::Translation, EventReason::BranchChained);
  line(140, 0, EventKind::Translation, EventReason::IndirectMiss);
  line(90, 100, EventKind::VmExit, EventReason::IoOut);
  const TraceModel model = load_text(text);
  const LaneTimeline& monitor = model.lane(TimelineLane::Monitor);
  const SpanLabel call_out = SpanLabel::of(EventKind::MonitorTrap, EventReason::CallOut);
  struct Expected {
    std::uint64_t start, end;
    SpanLabel label;
    bool first;
  };
  const std::vector<Expected> expected = {
      {100, 120, call_out, true},
      {120, 130, SpanLabel::of(EventKind::Translation, EventReason::BlockTranslated), true},
      {130, 140, call_out, false},
      {140, 140, SpanLabel::of(EventKind::Translation, EventReason::BranchChained), true},
      {140, 140, SpanLabel::of(EventKind::Translation, EventReason::IndirectMiss), true},
      {140, 150, call_out, false},
  };
  ASSERT_EQ(monitor.size(), expected.size());
  for (std::size_t index = 0; index < expected.size(); ++index) {
    const auto piece = monitor.piece(index);
    EXPECT_EQ(piece.start_ns, expected[index].start) << index;
    EXPECT_EQ(piece.end_ns, expected[index].end) << index;
    EXPECT_EQ(piece.label, expected[index].label) << index << ": " << piece.label.name();
    EXPECT_EQ(piece.first, expected[index].first) << index;
  }
  EXPECT_EQ(monitor.busy_before(monitor.size()), 50u) << "the trap's time, counted once";
  EXPECT_EQ(monitor.spans_before(monitor.size()), 4u);
}

// Every lane's pieces against the reference's owner of each nanosecond, and
// the level timeline against the reference's level of each nanosecond.
TEST(Timeline, TransitionPairsOfARangeAreThePairsOfItsTransitions) {
  const TraceModel model =
      testing::load_text(testing::trace_text(testing::random_events(11, 20'000)));
  const LevelTimeline& levels = model.levels();
  const TimeRange whole = model.extent();
  ASSERT_GT(levels.size(), 1000u);
  std::uint64_t seed = 5;
  auto next = [&seed] { return seed = seed * 6364136223846793005ull + 1442695040888963407ull; };
  for (int round = 0; round < 400; ++round) {
    // Ranges of every length, from a few nanoseconds to the whole run.
    const std::uint64_t length = std::max<std::uint64_t>(1, whole.length() >> (next() % 24));
    const std::uint64_t start =
        whole.start_ns + next() % std::max<std::uint64_t>(1, whole.length());
    const TimeRange range{start, start + length};
    std::uint64_t expected = 0;
    std::size_t count = 0;
    levels.for_each_transition(range, [&](const Transition& transition) {
      expected |= 1ull << (static_cast<std::size_t>(transition.from) * kLaneCount +
                           static_cast<std::size_t>(transition.to));
      ++count;
    });
    ASSERT_EQ(levels.transition_pairs(range), expected)
        << "range " << range.start_ns << "-" << range.end_ns;
    EXPECT_GE(levels.segments_in(range), count);
  }
  EXPECT_EQ(levels.transition_pairs(TimeRange{0, 0}), 0u);
}

TEST(Timeline, RandomTracesMatchTheReference) {
  for (std::uint64_t seed : {1u, 2u, 3u, 4u, 5u, 6u}) {
    const auto generated = testing::random_events(seed, 400);
    const TraceModel model = load_text(testing::trace_text(generated));
    const auto events = testing::time_ordered(generated);
    ASSERT_EQ(model.events().size(), events.size());
    for (EventIndex index = 0; index < events.size(); ++index) {
      ASSERT_EQ(model.events().time_ns(index), events[index].time_ns) << "seed " << seed;
      ASSERT_EQ(model.events().kind(index), events[index].kind) << "seed " << seed;
    }
    const testing::Reference reference = testing::reference_of(events);
    for (std::size_t lane = 0; lane < kLaneCount; ++lane) {
      const LaneTimeline& pieces = model.timeline().lanes[lane];
      const auto& spans = reference.spans[lane];
      std::vector<int> owner(reference.horizon + 1, -1);
      std::size_t first_pieces = 0;
      for (std::size_t index = 0; index < pieces.size(); ++index) {
        const auto piece = pieces.piece(index);
        if (index > 0) {
          ASSERT_LE(pieces.end_ns(index - 1), piece.start_ns) << "pieces overlap";
        }
        first_pieces += piece.first ? 1 : 0;
        for (std::uint64_t time = piece.start_ns; time < piece.end_ns; ++time) {
          const int span = reference.owner[lane][time];
          ASSERT_GE(span, 0) << "seed " << seed << " lane " << lane << " t=" << time;
          EXPECT_EQ(spans[static_cast<std::size_t>(span)].event, piece.event)
              << "seed " << seed << " lane " << lane << " t=" << time;
          EXPECT_EQ(spans[static_cast<std::size_t>(span)].label, piece.label);
          owner[time] = span;
        }
      }
      EXPECT_EQ(first_pieces, spans.size()) << "each span counted once, lane " << lane;
      for (std::uint64_t time = 0; time <= reference.horizon; ++time) {
        ASSERT_EQ(owner[time] >= 0, reference.owner[lane][time] >= 0)
            << "seed " << seed << " lane " << lane << " t=" << time;
      }
    }
    // Levels, nanosecond by nanosecond, then the transitions they make.
    const LevelTimeline& levels = model.levels();
    std::vector<TimelineLane> level(reference.horizon + 1, TimelineLane::Count);
    for (std::size_t index = 0; index < levels.size(); ++index) {
      const auto segment = levels.segment(index);
      if (index > 0) {
        ASSERT_EQ(levels.segment(index - 1).end_ns, segment.start_ns);
      }
      for (std::uint64_t time = segment.start_ns; time < segment.end_ns; ++time)
        level[time] = segment.recorded ? segment.level : TimelineLane::Count;
    }
    // A transition wherever the level differs from the last one recorded;
    // its stay lasts while the level does (a gap ends it).
    std::vector<Transition> expected;
    TimelineLane previous = TimelineLane::Count;
    bool staying = false;
    for (std::uint64_t time = 0; time <= reference.horizon; ++time) {
      const TimelineLane at = testing::reference_level(reference, time);
      ASSERT_EQ(level[time], at) << "seed " << seed << " t=" << time;
      if (at != TimelineLane::Count && previous != TimelineLane::Count && at != previous) {
        expected.push_back({.time_ns = time, .from = previous, .to = at, .stay_ns = 0});
        staying = true;
      } else if (staying && at != expected.back().to) {
        staying = false;
      }
      if (staying) ++expected.back().stay_ns;
      if (at != TimelineLane::Count) previous = at;
    }
    const auto transitions = levels.transitions();
    ASSERT_EQ(transitions.size(), expected.size()) << "seed " << seed;
    for (std::size_t index = 0; index < expected.size(); ++index) {
      EXPECT_EQ(transitions[index].time_ns, expected[index].time_ns) << index;
      EXPECT_EQ(transitions[index].from, expected[index].from) << index;
      EXPECT_EQ(transitions[index].to, expected[index].to) << index;
      EXPECT_EQ(transitions[index].stay_ns, expected[index].stay_ns) << index;
    }
  }
}

}  // namespace
}  // namespace vmlab::viz
