// What happened over a stretch of a trace (the whole run, or a selection in
// the timeline): counts and time by kind and reason, the guest RIPs whose
// exits cost the VMM most, the monitor's traps by cause, and the transitions
// between levels. `vmlab trace summary` prints the whole run's.
#pragma once

#include <array>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "vmlab/viz/trace_model.hpp"

namespace vmlab::viz {

struct KindReasonCount {
  EventKind kind = EventKind::VmExit;
  EventReason reason = EventReason::Unknown;
  std::uint64_t count = 0;
  std::uint64_t total_duration_ns = 0;  // the events' own durations (the VMM's time for exits)
};

struct CostlyRip {
  std::uint64_t guest_rip = 0;
  std::uint64_t events = 0;  // VM exits at this RIP
  std::uint64_t total_duration_ns = 0;
};

struct TrapCause {
  std::string cause;  // the decoded instruction or fault; the reason where the trap has none
  std::uint64_t count = 0;
};

struct TransitionCell {
  std::uint64_t count = 0;
  std::uint64_t time_ns = 0;  // time at the new level after these transitions
};

class TransitionMatrix {
 public:
  TransitionCell& at(TimelineLane from, TimelineLane to) {
    return m_cells[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)];
  }
  const TransitionCell& at(TimelineLane from, TimelineLane to) const {
    return m_cells[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)];
  }
  std::uint64_t total() const;

 private:
  std::array<std::array<TransitionCell, kLaneCount>, kLaneCount> m_cells{};
};

struct Aggregates {
  TimeRange range;
  std::uint64_t events = 0;                // events that start inside the range
  std::uint64_t span_ns = 0;               // from the first of them to the last end among them
  std::vector<KindReasonCount> counts;     // most frequent first; ties by kind, then reason name
  std::vector<CostlyRip> costly_rips;      // VM exits, most VMM time first; ties by RIP
  std::vector<TrapCause> traps_by_detail;  // monitor traps, most first; ties by cause
  // Transitions inside the range, their time cut at its end.
  TransitionMatrix transitions;
};

struct AggregateOptions {
  std::size_t costly_rips = 10;  // how many RIPs to keep
};

// Over the events that start inside `range` (and the transitions inside it).
// Reads each such event once.
Aggregates aggregate(const TraceModel& model, TimeRange range = {},
                     const AggregateOptions& options = {});

// The report `vmlab trace summary` prints: the run, a truncation warning,
// counts by kind and reason, time by level (the recorder's, for the whole
// run), transitions between levels, traps by cause, costly RIPs, platform.
void print_summary(const TraceModel& model, const Aggregates& aggregates, std::ostream& out);

}  // namespace vmlab::viz
