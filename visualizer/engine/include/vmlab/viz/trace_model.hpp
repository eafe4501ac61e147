// A trace loaded for analysis: its header, its events in columns, and its
// timeline (lanes, levels, level-of-detail sums), built once at load. What
// the visualizer's views and `vmlab trace summary` both read.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <string>
#include <string_view>

#include "vmlab/result.hpp"
#include "vmlab/trace.hpp"
#include "vmlab/viz/event_store.hpp"
#include "vmlab/viz/timeline.hpp"

namespace vmlab::viz {

struct LoadProgress {
  enum class Phase {
    Reading,   // parsing the file: `done` and `total` count bytes (total 0: unknown)
    Ordering,  // putting the events in time order
    Building,  // spans, lanes, levels: `done` and `total` count events
  };
  Phase phase = Phase::Reading;
  std::uint64_t done = 0;
  std::uint64_t total = 0;
  // The whole load's progress, 0 to 1, for one bar (reading is most of it).
  double fraction() const;
};
// Called now and then from the loading thread; returning false cancels the
// load (TraceError::kCancelled).
using LoadProgressCallback = std::function<bool(const LoadProgress&)>;

class TraceModel {
 public:
  // Errors are the trace reader's (TraceError), a malformed line named by
  // its number; the file's path is put in front of the message.
  static Result<TraceModel> load_file(const std::string& path,
                                      const LoadProgressCallback& progress = {});
  // `total_bytes`: the stream's length if known (for progress), else 0.
  static Result<TraceModel> load(std::istream& in, std::uint64_t total_bytes = 0,
                                 const LoadProgressCallback& progress = {});
  // From a trace already read (vmlab::read_trace).
  static TraceModel from_trace(const Trace& trace);

  const TraceInfo& info() const { return m_info; }
  const EventStore& events() const { return m_events; }
  const Timeline& timeline() const { return m_timeline; }
  const LaneTimeline& lane(TimelineLane which) const { return m_timeline.lane(which); }
  const LevelTimeline& levels() const { return m_timeline.levels; }
  std::string_view detail(EventIndex index) const { return m_info.detail(m_events.detail(index)); }

  // From the first event's start to the last end of any event.
  TimeRange extent() const { return m_extent; }
  bool truncated() const { return is_truncated(m_info, m_events.size()); }
  // Empty for a complete trace (vmlab::truncation_message).
  std::string truncation_message() const;

  // Bytes the model holds after loading: events, timeline, details.
  std::size_t memory_bytes() const;

 private:
  // Orders the events and builds what is read from them; false if cancelled.
  bool finish(const LoadProgressCallback& progress);

  TraceInfo m_info;
  EventStore m_events;
  Timeline m_timeline;
  TimeRange m_extent{0, 0};
};

}  // namespace vmlab::viz
