// A trace's events held as columns (struct of arrays), in start-time order:
// what the timeline, the aggregates and the searches read. A column per
// field keeps an event at 54 bytes (vmlab::Event pads to 56) and lets a
// search over one field read that field's memory only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "vmlab/events.hpp"

namespace vmlab::viz {

// An event's index in the store: its place in start-time order.
using EventIndex = std::uint32_t;
inline constexpr EventIndex kNoEvent = std::numeric_limits<EventIndex>::max();
// The most events a store holds (kNoEvent is not an index).
inline constexpr std::size_t kMaximumEvents = kNoEvent;

// A half-open time range [start_ns, end_ns), in nanoseconds since the run started.
struct TimeRange {
  std::uint64_t start_ns = 0;
  std::uint64_t end_ns = std::numeric_limits<std::uint64_t>::max();

  bool contains(std::uint64_t time_ns) const { return time_ns >= start_ns && time_ns < end_ns; }
  bool empty() const { return end_ns <= start_ns; }
  std::uint64_t length() const { return empty() ? 0 : end_ns - start_ns; }
};

class EventStore {
 public:
  std::size_t size() const { return m_time.size(); }
  bool empty() const { return m_time.empty(); }

  void append(const Event& event);
  // Puts the events in start-time order, keeping the file's order among
  // equal times. A trace lists a monitor trap before the VM exit that carried
  // it (the trap is recorded while the exit is handled), so a file is nearly
  // in order, and this costs little more than a pass.
  void sort_by_time();
  // Frees what appending reserved beyond the events (vectors grow by doubling).
  void shrink_to_fit();

  Event event(EventIndex index) const;
  std::uint64_t time_ns(EventIndex index) const { return m_time[index]; }
  std::uint64_t duration_ns(EventIndex index) const { return m_duration[index]; }
  std::uint64_t end_ns(EventIndex index) const { return m_time[index] + m_duration[index]; }
  std::uint64_t guest_rip(EventIndex index) const { return m_guest_rip[index]; }
  std::uint64_t address(EventIndex index) const { return m_address[index]; }
  std::uint64_t value(EventIndex index) const { return m_value[index]; }
  std::uint32_t vcpu(EventIndex index) const { return m_vcpu[index]; }
  std::uint32_t detail(EventIndex index) const { return m_detail[index]; }
  std::uint16_t size(EventIndex index) const { return m_size[index]; }
  EventKind kind(EventIndex index) const { return m_kind[index]; }
  EventReason reason(EventIndex index) const { return m_reason[index]; }
  PrivilegeLevel from(EventIndex index) const { return m_from[index]; }
  PrivilegeLevel to(EventIndex index) const { return m_to[index]; }

  // The first event starting at or after `time_ns` (size() if none).
  EventIndex first_at_or_after(std::uint64_t time_ns) const;
  // The events that start inside `range`: [first, last).
  struct IndexRange {
    EventIndex first = 0;
    EventIndex last = 0;
  };
  IndexRange starting_in(TimeRange range) const;

  // Bytes the columns hold (their capacity).
  std::size_t memory_bytes() const;

 private:
  // Calls `function` with each column of `store` (const or not).
  template <typename Store, typename Function>
  static void for_each_column(Store& store, Function&& function);

  std::vector<std::uint64_t> m_time;
  std::vector<std::uint64_t> m_duration;
  std::vector<std::uint64_t> m_guest_rip;
  std::vector<std::uint64_t> m_address;
  std::vector<std::uint64_t> m_value;
  std::vector<std::uint32_t> m_vcpu;
  std::vector<std::uint32_t> m_detail;
  std::vector<std::uint16_t> m_size;
  std::vector<EventKind> m_kind;
  std::vector<EventReason> m_reason;
  std::vector<PrivilegeLevel> m_from;
  std::vector<PrivilegeLevel> m_to;
};

}  // namespace vmlab::viz
