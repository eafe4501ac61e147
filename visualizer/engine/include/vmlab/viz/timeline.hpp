// A trace's timeline: what each lane (the VMM, the monitor, the guest kernel,
// guest user code, the guest at an unreported level, the vCPU halted) was
// doing at every instant, and the level the vCPU was at, with every
// transition between levels.
//
// The spans come from vmlab::TimelineDeriver, which the Perfetto export draws
// too: guest running between VM exits on the level the guest exited from,
// each exit's handling on the VMM lane, monitor traps, hypercalls and
// translations on the monitor lane, hlt waits on the halted lane.
//
// Spans nest: a translation made while the monitor handles a trap lies
// inside the trap's span. A lane keeps them flattened into pieces that do not
// overlap, the innermost span owning each instant (the one that started
// last), so the lane's time adds up; a span cut by a nested one is several
// pieces of one event, the first of which counts it.
//
// The level timeline puts the lanes together. At each instant the vCPU is
// halted if a hlt wait covers it, else in the monitor if monitor work does,
// else in the VMM if a VM exit does, else in the guest at the level it ran
// at. A VM exit that carries monitor work (a trap, hypercall or translation
// that starts inside it) counts wholly as the monitor's: the monitor's stubs
// reach its logic through that exit (README, "full": each stub is an `out`
// to port 0xe8), so the exit's handling around the trap is the monitor's
// entry and exit. A user `syscall` under `full` therefore reads
// guest-user -> monitor -> guest-kernel, and the kernel's `iretq`
// guest-kernel -> monitor -> guest-user. (The run's "# levels:" header, from
// the recorder, counts that handling as the VMM's; the monitor's share there
// is the traps' own time.)
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/trace.hpp"
#include "vmlab/viz/event_store.hpp"

namespace vmlab::viz {

// What a span was: the kind and reason of its event, or the guest running.
class SpanLabel {
 public:
  static constexpr std::size_t kReasons = static_cast<std::size_t>(EventReason::Count);
  static constexpr std::size_t kKinds = static_cast<std::size_t>(EventKind::Count);
  // Every label's code is below this: kinds x reasons, then guest running.
  static constexpr std::size_t kCount = kKinds * kReasons + 1;

  constexpr SpanLabel() = default;
  static constexpr SpanLabel guest_running() {
    return SpanLabel(static_cast<std::uint16_t>(kKinds * kReasons));
  }
  static constexpr SpanLabel of(EventKind kind, EventReason reason) {
    return SpanLabel(static_cast<std::uint16_t>(static_cast<std::size_t>(kind) * kReasons +
                                                static_cast<std::size_t>(reason)));
  }
  static constexpr SpanLabel from_code(std::uint16_t code) { return SpanLabel(code); }

  constexpr bool is_guest_running() const { return m_code == guest_running().m_code; }
  // Meaningful for a label that is not guest running.
  constexpr EventKind kind() const { return static_cast<EventKind>(m_code / kReasons); }
  constexpr EventReason reason() const { return static_cast<EventReason>(m_code % kReasons); }
  constexpr std::uint16_t code() const { return m_code; }
  // "guest running", "vm-exit io-out", "monitor-trap system-call".
  std::string name() const;

  friend constexpr bool operator==(SpanLabel, SpanLabel) = default;

 private:
  constexpr explicit SpanLabel(std::uint16_t code) : m_code(code) {}
  std::uint16_t m_code = 0;
};

// One lane's pieces, in time order, none overlapping, and the running sums
// the level-of-detail queries answer from (lod.hpp).
class LaneTimeline {
 public:
  struct Piece {
    std::uint64_t start_ns = 0;
    std::uint64_t end_ns = 0;
    SpanLabel label;
    // The event the span belongs to; for guest running, the VM exit it ended with.
    EventIndex event = kNoEvent;
    bool first = false;  // the span's first piece (which counts the span)
  };

  std::size_t size() const { return m_start.size(); }
  bool empty() const { return m_start.empty(); }
  Piece piece(std::size_t index) const;
  std::uint64_t start_ns(std::size_t index) const { return m_start[index]; }
  std::uint64_t end_ns(std::size_t index) const { return m_end[index]; }
  EventIndex event(std::size_t index) const { return m_event[index]; }
  SpanLabel label(std::size_t index) const { return m_labels[m_label[index]]; }

  // The lane's distinct labels; a piece's local label indexes them.
  const std::vector<SpanLabel>& labels() const { return m_labels; }
  std::uint16_t local_label(std::size_t index) const { return m_label[index]; }
  // Sums over the pieces before `index` (0 to size()): their time, the spans
  // they start.
  std::uint64_t busy_before(std::size_t index) const { return m_busy_before[index]; }
  std::uint32_t spans_before(std::size_t index) const { return m_spans_before[index]; }
  bool first(std::size_t index) const { return m_spans_before[index + 1] != m_spans_before[index]; }
  // The time of each label over the pieces before block * kBlock, for a
  // label's share of a long range without reading every piece in it.
  static constexpr std::size_t kBlock = 64;
  std::uint64_t label_busy_before_block(std::size_t block, std::uint16_t local_label) const {
    return m_label_busy_before[block * m_labels.size() + local_label];
  }

  // The pieces touching [range.start_ns, range.end_ns): those overlapping it
  // and those of no length inside it. Returned as [first, last).
  struct IndexRange {
    std::size_t first = 0;
    std::size_t last = 0;
  };
  IndexRange touching(TimeRange range) const;
  // The first piece not wholly before `time_ns`: one that ends after it, or
  // starts at or after it (searching from `from`, which must not be past it).
  std::size_t first_not_before(std::uint64_t time_ns, std::size_t from = 0) const;
  // The first piece starting at or after `time_ns` (searching from `from`).
  std::size_t first_starting_at_or_after(std::uint64_t time_ns, std::size_t from = 0) const;

  std::size_t memory_bytes() const;

 private:
  friend class LaneBuilder;
  std::vector<std::uint64_t> m_start;
  std::vector<std::uint64_t> m_end;
  std::vector<EventIndex> m_event;
  std::vector<std::uint16_t> m_label;  // index into m_labels
  std::vector<SpanLabel> m_labels;
  std::vector<std::uint64_t> m_busy_before;        // size() + 1 sums
  std::vector<std::uint32_t> m_spans_before;       // size() + 1 sums
  std::vector<std::uint64_t> m_label_busy_before;  // (size() / kBlock + 1) x labels
};

// The lanes of a timeline, and the level of the vCPU.
inline constexpr std::size_t kLaneCount = static_cast<std::size_t>(TimelineLane::Count);
std::string_view lane_name(TimelineLane lane);

struct Transition {
  std::uint64_t time_ns = 0;
  TimelineLane from = TimelineLane::Vmm;
  TimelineLane to = TimelineLane::Vmm;
  // How long the vCPU stayed at `to`, until the next change of level (or the
  // end of the range asked for).
  std::uint64_t stay_ns = 0;
};

// The vCPU's level over time, as segments that change level at each boundary
// (a gap where nothing was recorded is a segment of its own).
class LevelTimeline {
 public:
  struct Segment {
    std::uint64_t start_ns = 0;
    std::uint64_t end_ns = 0;
    bool recorded = true;  // false for a gap
    TimelineLane level = TimelineLane::Vmm;
  };

  std::size_t size() const { return m_start.size(); }
  Segment segment(std::size_t index) const;
  // The transitions that happen inside `range`, in time order, each with its
  // stay cut at the range's end.
  std::vector<Transition> transitions(TimeRange range = {}) const;
  // Calls `visit` for each transition inside `range`, without a vector.
  template <typename Visit>
  void for_each_transition(TimeRange range, Visit&& visit) const;

  // Which (from, to) pairs change level inside `range`: bit
  // from * kLaneCount + to. From per-block summaries, so a pixel column of a
  // long view costs a few dozen segments, not every change in it.
  std::uint64_t transition_pairs(TimeRange range) const;
  // How many segments start inside `range`: at least its transitions.
  std::size_t segments_in(TimeRange range) const;

  std::size_t memory_bytes() const;

 private:
  friend class LevelBuilder;
  static constexpr std::uint8_t kGap = static_cast<std::uint8_t>(TimelineLane::Count);
  static constexpr std::size_t kPairBlock = 32;  // segments summarised by one m_block_pairs
  // The pair segment `index` changes level by (0: none), `previous` being
  // the last level before it that was not a gap; updates `previous`.
  std::uint64_t pair_of(std::size_t index, std::uint8_t& previous) const;
  std::uint8_t level_before(std::size_t index) const;
  void summarise_pairs();

  std::vector<std::uint64_t> m_start;
  std::vector<std::uint8_t> m_level;  // a TimelineLane, or kGap
  std::vector<std::uint64_t> m_block_pairs;
  std::uint64_t m_end = 0;
};

struct Timeline {
  std::array<LaneTimeline, kLaneCount> lanes;
  LevelTimeline levels;

  const LaneTimeline& lane(TimelineLane which) const {
    return lanes[static_cast<std::size_t>(which)];
  }
  std::size_t memory_bytes() const;
};

// Builds the timeline of `events` (in start-time order). `progress`, when
// set, is called now and then with the events done; false cancels (the
// function then returns false and `timeline` is incomplete).
bool build_timeline(const EventStore& events, Timeline& timeline,
                    const std::function<bool(std::uint64_t done)>& progress = {});

template <typename Visit>
void LevelTimeline::for_each_transition(TimeRange range, Visit&& visit) const {
  if (range.empty() || m_start.empty()) return;
  // The first segment starting inside the range, and the last level before it.
  std::size_t index = static_cast<std::size_t>(
      std::lower_bound(m_start.begin(), m_start.end(), range.start_ns) - m_start.begin());
  std::uint8_t previous = kGap;
  for (std::size_t before = index; before > 0; --before) {
    if (m_level[before - 1] != kGap) {
      previous = m_level[before - 1];
      break;
    }
  }
  for (; index < m_start.size() && m_start[index] < range.end_ns; ++index) {
    const std::uint8_t level = m_level[index];
    if (level == kGap) continue;
    if (previous != kGap && previous != level) {
      const std::uint64_t end = index + 1 < m_start.size() ? m_start[index + 1] : m_end;
      visit(Transition{.time_ns = m_start[index],
                       .from = static_cast<TimelineLane>(previous),
                       .to = static_cast<TimelineLane>(level),
                       .stay_ns = std::min(end, range.end_ns) - m_start[index]});
    }
    previous = level;
  }
}

}  // namespace vmlab::viz
