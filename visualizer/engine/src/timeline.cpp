#include "vmlab/viz/timeline.hpp"

#include <algorithm>
#include <limits>

namespace vmlab::viz {

std::string SpanLabel::name() const {
  if (is_guest_running()) return "guest running";
  return std::string(event_kind_name(kind())) + " " + std::string(event_reason_name(reason()));
}

std::string_view lane_name(TimelineLane lane) {
  return timeline_lane_name(lane);
}

LaneTimeline::Piece LaneTimeline::piece(std::size_t index) const {
  return {.start_ns = m_start[index],
          .end_ns = m_end[index],
          .label = label(index),
          .event = m_event[index],
          .first = first(index)};
}

std::size_t LaneTimeline::first_not_before(std::uint64_t time_ns, std::size_t from) const {
  // Pieces do not overlap, so their starts and their ends both rise: the
  // pieces wholly before `time_ns` come first. Galloping from `from` makes a
  // sweep across the lane cost the log of each step, not of the lane.
  auto before = [&](std::size_t index) {
    return m_end[index] <= time_ns && m_start[index] < time_ns;
  };
  std::size_t low = from;
  std::size_t step = 1;
  std::size_t high = from;
  while (high < size() && before(high)) {
    low = high + 1;
    high += step;
    step *= 2;
  }
  high = std::min(high, size());
  while (low < high) {
    const std::size_t middle = low + (high - low) / 2;
    if (before(middle)) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low;
}

std::size_t LaneTimeline::first_starting_at_or_after(std::uint64_t time_ns,
                                                     std::size_t from) const {
  std::size_t low = from;
  std::size_t step = 1;
  std::size_t high = from;
  while (high < size() && m_start[high] < time_ns) {
    low = high + 1;
    high += step;
    step *= 2;
  }
  high = std::min(high, size());
  return static_cast<std::size_t>(
      std::lower_bound(m_start.begin() + static_cast<std::ptrdiff_t>(low),
                       m_start.begin() + static_cast<std::ptrdiff_t>(high), time_ns) -
      m_start.begin());
}

LaneTimeline::IndexRange LaneTimeline::touching(TimeRange range) const {
  if (range.empty()) return {};
  const std::size_t first = first_not_before(range.start_ns);
  return {first, first_starting_at_or_after(range.end_ns, first)};
}

std::size_t LaneTimeline::memory_bytes() const {
  return m_start.capacity() * sizeof(std::uint64_t) + m_end.capacity() * sizeof(std::uint64_t) +
         m_event.capacity() * sizeof(EventIndex) + m_label.capacity() * sizeof(std::uint16_t) +
         m_labels.capacity() * sizeof(SpanLabel) +
         m_busy_before.capacity() * sizeof(std::uint64_t) +
         m_spans_before.capacity() * sizeof(std::uint32_t) +
         m_label_busy_before.capacity() * sizeof(std::uint64_t);
}

LevelTimeline::Segment LevelTimeline::segment(std::size_t index) const {
  const std::uint8_t level = m_level[index];
  return {.start_ns = m_start[index],
          .end_ns = index + 1 < m_start.size() ? m_start[index + 1] : m_end,
          .recorded = level != kGap,
          .level = level == kGap ? TimelineLane::Vmm : static_cast<TimelineLane>(level)};
}

std::vector<Transition> LevelTimeline::transitions(TimeRange range) const {
  std::vector<Transition> found;
  for_each_transition(range, [&](const Transition& transition) { found.push_back(transition); });
  return found;
}

std::size_t LevelTimeline::memory_bytes() const {
  return m_start.capacity() * sizeof(std::uint64_t) + m_level.capacity() +
         m_block_pairs.capacity() * sizeof(std::uint64_t);
}

std::uint64_t LevelTimeline::pair_of(std::size_t index, std::uint8_t& previous) const {
  const std::uint8_t level = m_level[index];
  if (level == kGap) return 0;
  const std::uint64_t pair =
      previous != kGap && previous != level ? 1ull << (previous * kLaneCount + level) : 0;
  previous = level;
  return pair;
}

std::uint8_t LevelTimeline::level_before(std::size_t index) const {
  for (std::size_t before = index; before > 0; --before) {
    if (m_level[before - 1] != kGap) return m_level[before - 1];
  }
  return kGap;
}

void LevelTimeline::summarise_pairs() {
  static_assert(kLaneCount * kLaneCount <= 64, "a pair is a bit of a 64-bit mask");
  m_block_pairs.assign((m_start.size() + kPairBlock - 1) / kPairBlock, 0);
  std::uint8_t previous = kGap;
  for (std::size_t index = 0; index < m_start.size(); ++index)
    m_block_pairs[index / kPairBlock] |= pair_of(index, previous);
}

std::size_t LevelTimeline::segments_in(TimeRange range) const {
  if (range.empty()) return 0;
  const auto first = std::lower_bound(m_start.begin(), m_start.end(), range.start_ns);
  return static_cast<std::size_t>(std::lower_bound(first, m_start.end(), range.end_ns) - first);
}

std::uint64_t LevelTimeline::transition_pairs(TimeRange range) const {
  if (range.empty() || m_start.empty()) return 0;
  auto index = static_cast<std::size_t>(
      std::lower_bound(m_start.begin(), m_start.end(), range.start_ns) - m_start.begin());
  const auto end = static_cast<std::size_t>(
      std::lower_bound(m_start.begin() + static_cast<std::ptrdiff_t>(index), m_start.end(),
                       range.end_ns) -
      m_start.begin());
  std::uint64_t pairs = 0;
  std::uint8_t previous = level_before(index);
  // The segments before the first whole block, the whole blocks, the rest.
  while (index < end && index % kPairBlock != 0)
    pairs |= pair_of(index++, previous);
  if (index + kPairBlock <= end) {
    for (; index + kPairBlock <= end; index += kPairBlock)
      pairs |= m_block_pairs[index / kPairBlock];
    previous = level_before(index);
  }
  while (index < end)
    pairs |= pair_of(index++, previous);
  return pairs;
}

std::size_t Timeline::memory_bytes() const {
  std::size_t bytes = levels.memory_bytes();
  for (const auto& lane : lanes)
    bytes += lane.memory_bytes();
  return bytes;
}

namespace {

// A span as the deriver gives it, before the lane is flattened.
struct RawSpan {
  std::uint64_t start_ns;
  std::uint64_t end_ns;
  EventIndex event;
  SpanLabel label;
};

// start + duration, kept inside 64 bits for a trace that claims a duration
// running past the end of time.
std::uint64_t end_of(std::uint64_t start, std::uint64_t duration) {
  return duration > std::numeric_limits<std::uint64_t>::max() - start
             ? std::numeric_limits<std::uint64_t>::max()
             : start + duration;
}

constexpr std::uint64_t kEventsPerProgress = 1 << 16;

}  // namespace

// Flattens a lane's spans (in start order) into pieces, then sums them.
class LaneBuilder {
 public:
  static void build(const std::vector<RawSpan>& spans, LaneTimeline& lane) {
    LaneBuilder builder(spans, lane);
    builder.flatten();
    builder.sum();
  }

 private:
  LaneBuilder(const std::vector<RawSpan>& spans, LaneTimeline& lane)
      : m_spans(spans), m_lane(lane) {}

  // A span that started and has not ended, waiting under the spans nested
  // in it to resume.
  struct Open {
    std::size_t span;
    std::uint64_t resume_ns;  // where its next piece starts
    bool counted;             // its first piece is out
  };

  void emit(Open& open, std::uint64_t end_ns) {
    const RawSpan& span = m_spans[open.span];
    m_lane.m_start.push_back(open.resume_ns);
    m_lane.m_end.push_back(end_ns);
    m_lane.m_event.push_back(span.event);
    m_lane.m_label.push_back(local_label(span.label));
    m_first.push_back(!open.counted);
    open.counted = true;
  }

  std::uint16_t local_label(SpanLabel label) {
    std::uint16_t& local = m_local[label.code()];
    if (local == kNoLabel) {
      local = static_cast<std::uint16_t>(m_lane.m_labels.size());
      m_lane.m_labels.push_back(label);
    }
    return local;
  }

  // Ends the spans that are over by `time_ns`, each with its last piece, and
  // resumes the one under them.
  void close_until(std::uint64_t time_ns) {
    while (!m_open.empty()) {
      Open& top = m_open.back();
      const std::uint64_t end = m_spans[top.span].end_ns;
      if (end > time_ns) return;
      if (end > top.resume_ns || !top.counted) emit(top, std::max(end, top.resume_ns));
      // What lay above this span may have outlasted it (spans that overlap
      // without nesting): the one under resumes after both.
      const std::uint64_t over = std::max(end, top.resume_ns);
      m_open.pop_back();
      if (!m_open.empty()) m_open.back().resume_ns = std::max(m_open.back().resume_ns, over);
    }
  }

  void flatten() {
    m_lane.m_start.reserve(m_spans.size());
    m_lane.m_end.reserve(m_spans.size());
    m_lane.m_event.reserve(m_spans.size());
    m_lane.m_label.reserve(m_spans.size());
    m_first.reserve(m_spans.size());
    for (std::size_t index = 0; index < m_spans.size(); ++index) {
      const std::uint64_t start = m_spans[index].start_ns;
      close_until(start);
      // The span under this one stops here (its first piece may be empty,
      // when both start at once, so that it is counted where it starts).
      if (!m_open.empty()) {
        Open& under = m_open.back();
        if (start > under.resume_ns || !under.counted) emit(under, start);
        under.resume_ns = start;
      }
      m_open.push_back({.span = index, .resume_ns = start, .counted = false});
    }
    close_until(std::numeric_limits<std::uint64_t>::max());
  }

  void sum() {
    const std::size_t count = m_lane.m_start.size();
    m_lane.m_busy_before.resize(count + 1);
    m_lane.m_spans_before.resize(count + 1);
    const std::size_t labels = m_lane.m_labels.size();
    std::vector<std::uint64_t> label_busy(labels, 0);
    m_lane.m_label_busy_before.reserve((count / LaneTimeline::kBlock + 1) * labels);
    std::uint64_t busy = 0;
    std::uint32_t spans = 0;
    for (std::size_t index = 0; index <= count; ++index) {
      m_lane.m_busy_before[index] = busy;
      m_lane.m_spans_before[index] = spans;
      if (index % LaneTimeline::kBlock == 0) {
        m_lane.m_label_busy_before.insert(m_lane.m_label_busy_before.end(), label_busy.begin(),
                                          label_busy.end());
      }
      if (index == count) break;
      const std::uint64_t length = m_lane.m_end[index] - m_lane.m_start[index];
      busy += length;
      label_busy[m_lane.m_label[index]] += length;
      spans += m_first[index] ? 1u : 0u;
    }
    m_lane.m_start.shrink_to_fit();
    m_lane.m_end.shrink_to_fit();
    m_lane.m_event.shrink_to_fit();
    m_lane.m_label.shrink_to_fit();
    m_lane.m_labels.shrink_to_fit();
  }

  static constexpr std::uint16_t kNoLabel = std::numeric_limits<std::uint16_t>::max();
  const std::vector<RawSpan>& m_spans;
  LaneTimeline& m_lane;
  std::vector<Open> m_open;
  std::vector<bool> m_first;
  std::array<std::uint16_t, SpanLabel::kCount> m_local = make_unlabelled();

  static std::array<std::uint16_t, SpanLabel::kCount> make_unlabelled() {
    std::array<std::uint16_t, SpanLabel::kCount> local{};
    local.fill(kNoLabel);
    return local;
  }
};

// Sweeps the lanes together into the vCPU's level at each instant.
class LevelBuilder {
 public:
  // `carries_monitor_work[event]`: the VM exit `event` holds monitor work.
  static void build(const std::array<LaneTimeline, kLaneCount>& lanes,
                    const std::vector<bool>& carries_monitor_work, LevelTimeline& levels) {
    // Who owns an instant when several lanes are busy (timeline.hpp).
    constexpr std::array kPriority = {TimelineLane::Halted,    TimelineLane::Monitor,
                                      TimelineLane::Vmm,       TimelineLane::GuestKernel,
                                      TimelineLane::GuestUser, TimelineLane::GuestUnknown};
    static_assert(kPriority.size() == kLaneCount);
    std::array<std::size_t, kLaneCount> next{};
    std::uint64_t time = std::numeric_limits<std::uint64_t>::max();
    for (const auto& lane : lanes) {
      if (!lane.empty()) time = std::min(time, lane.start_ns(0));
    }
    while (true) {
      bool remaining = false;
      for (std::size_t lane = 0; lane < kLaneCount; ++lane) {
        while (next[lane] < lanes[lane].size() && lanes[lane].end_ns(next[lane]) <= time)
          ++next[lane];
        remaining = remaining || next[lane] < lanes[lane].size();
      }
      if (!remaining) break;
      std::uint8_t level = LevelTimeline::kGap;
      for (const TimelineLane lane : kPriority) {
        const auto& pieces = lanes[static_cast<std::size_t>(lane)];
        const std::size_t index = next[static_cast<std::size_t>(lane)];
        if (index >= pieces.size() || pieces.start_ns(index) > time) continue;
        TimelineLane owner = lane;
        if (lane == TimelineLane::Vmm && !pieces.label(index).is_guest_running() &&
            carries_monitor_work[pieces.event(index)]) {
          owner = TimelineLane::Monitor;
        }
        level = static_cast<std::uint8_t>(owner);
        break;
      }
      std::uint64_t boundary = std::numeric_limits<std::uint64_t>::max();
      for (std::size_t lane = 0; lane < kLaneCount; ++lane) {
        if (next[lane] >= lanes[lane].size()) continue;
        const std::uint64_t start = lanes[lane].start_ns(next[lane]);
        boundary = std::min(boundary, start > time ? start : lanes[lane].end_ns(next[lane]));
      }
      const bool leading_gap = levels.m_start.empty() && level == LevelTimeline::kGap;
      if (!leading_gap && (levels.m_level.empty() || levels.m_level.back() != level)) {
        levels.m_start.push_back(time);
        levels.m_level.push_back(level);
      }
      time = boundary;
    }
    levels.m_end = levels.m_start.empty() ? 0 : time;
    levels.m_start.shrink_to_fit();
    levels.m_level.shrink_to_fit();
    levels.summarise_pairs();
  }
};

bool build_timeline(const EventStore& events, Timeline& timeline,
                    const std::function<bool(std::uint64_t done)>& progress) {
  std::array<std::vector<RawSpan>, kLaneCount> spans;
  TimelineDeriver deriver;
  for (EventIndex index = 0; index < events.size(); ++index) {
    if (progress && index % kEventsPerProgress == 0 && index != 0 && !progress(index)) return false;
    const Event event = events.event(index);
    const TimelineStep step = deriver.next(event);
    for (std::size_t slice = 0; slice < step.slice_count; ++slice) {
      const TimelineSlice& piece = step.slices[slice];
      spans[static_cast<std::size_t>(piece.lane)].push_back(
          {.start_ns = piece.start_ns,
           .end_ns = end_of(piece.start_ns, piece.duration_ns),
           .event = index,
           .label = piece.guest_running ? SpanLabel::guest_running()
                                        : SpanLabel::of(event.kind, event.reason)});
    }
  }
  for (auto& lane : spans) {
    // The deriver gives each lane's spans in start order when the events are
    // (a guest-running span starts where the previous exit ended, before
    // its own exit), but a trace need not be well formed.
    std::stable_sort(lane.begin(), lane.end(),
                     [](const RawSpan& a, const RawSpan& b) { return a.start_ns < b.start_ns; });
  }

  // Which VM exits carry monitor work: a monitor span starting inside them.
  std::vector<bool> carries_monitor_work(events.size(), false);
  const auto& monitor = spans[static_cast<std::size_t>(TimelineLane::Monitor)];
  std::size_t next_monitor = 0;
  for (const RawSpan& span : spans[static_cast<std::size_t>(TimelineLane::Vmm)]) {
    if (span.label.is_guest_running()) continue;
    while (next_monitor < monitor.size() && monitor[next_monitor].start_ns < span.start_ns)
      ++next_monitor;
    carries_monitor_work[span.event] =
        next_monitor < monitor.size() && monitor[next_monitor].start_ns < span.end_ns;
  }

  for (std::size_t lane = 0; lane < kLaneCount; ++lane) {
    timeline.lanes[lane] = LaneTimeline();
    LaneBuilder::build(spans[lane], timeline.lanes[lane]);
    std::vector<RawSpan>().swap(spans[lane]);  // the memory goes back as each lane is done
    if (progress && !progress(events.size())) return false;
  }
  timeline.levels = LevelTimeline();
  LevelBuilder::build(timeline.lanes, carries_monitor_work, timeline.levels);
  return true;
}

}  // namespace vmlab::viz
