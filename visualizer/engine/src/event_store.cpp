#include "vmlab/viz/event_store.hpp"

#include <algorithm>
#include <numeric>

namespace vmlab::viz {

template <typename Store, typename Function>
void EventStore::for_each_column(Store& store, Function&& function) {
  function(store.m_time);
  function(store.m_duration);
  function(store.m_guest_rip);
  function(store.m_address);
  function(store.m_value);
  function(store.m_vcpu);
  function(store.m_detail);
  function(store.m_size);
  function(store.m_kind);
  function(store.m_reason);
  function(store.m_from);
  function(store.m_to);
}

void EventStore::append(const Event& event) {
  m_time.push_back(event.time_ns);
  m_duration.push_back(event.duration_ns);
  m_guest_rip.push_back(event.guest_rip);
  m_address.push_back(event.address);
  m_value.push_back(event.value);
  m_vcpu.push_back(event.vcpu);
  m_detail.push_back(event.detail);
  m_size.push_back(event.size);
  m_kind.push_back(event.kind);
  m_reason.push_back(event.reason);
  m_from.push_back(event.from);
  m_to.push_back(event.to);
}

Event EventStore::event(EventIndex index) const {
  return {.time_ns = m_time[index],
          .duration_ns = m_duration[index],
          .guest_rip = m_guest_rip[index],
          .address = m_address[index],
          .value = m_value[index],
          .vcpu = m_vcpu[index],
          .detail = m_detail[index],
          .size = m_size[index],
          .kind = m_kind[index],
          .reason = m_reason[index],
          .from = m_from[index],
          .to = m_to[index]};
}

void EventStore::sort_by_time() {
  if (std::is_sorted(m_time.begin(), m_time.end())) return;
  std::vector<EventIndex> order(m_time.size());
  std::iota(order.begin(), order.end(), EventIndex{0});
  // Insertion sort while events are only a few places out of order (as a
  // trace's are); a file that is not gets a stable merge sort.
  constexpr std::size_t kFarthestMove = 64;
  bool nearly_sorted = true;
  for (std::size_t position = 1; position < order.size() && nearly_sorted; ++position) {
    const EventIndex moving = order[position];
    std::size_t hole = position;
    while (hole > 0 && m_time[order[hole - 1]] > m_time[moving]) {
      if (position - hole == kFarthestMove) {
        nearly_sorted = false;
        break;
      }
      order[hole] = order[hole - 1];
      --hole;
    }
    order[hole] = moving;
  }
  if (!nearly_sorted) {
    // By time, then by place in the file: the order a stable sort gives.
    std::sort(order.begin(), order.end(), [&](EventIndex a, EventIndex b) {
      return m_time[a] != m_time[b] ? m_time[a] < m_time[b] : a < b;
    });
  }
  for_each_column(*this, [&](auto& column) {
    std::remove_reference_t<decltype(column)> sorted;
    sorted.reserve(column.size());
    for (const EventIndex index : order)
      sorted.push_back(column[index]);
    column = std::move(sorted);
  });
}

void EventStore::shrink_to_fit() {
  for_each_column(*this, [](auto& column) { column.shrink_to_fit(); });
}

EventIndex EventStore::first_at_or_after(std::uint64_t time_ns) const {
  return static_cast<EventIndex>(std::lower_bound(m_time.begin(), m_time.end(), time_ns) -
                                 m_time.begin());
}

EventStore::IndexRange EventStore::starting_in(TimeRange range) const {
  if (range.empty()) return {};
  return {first_at_or_after(range.start_ns), first_at_or_after(range.end_ns)};
}

std::size_t EventStore::memory_bytes() const {
  std::size_t bytes = 0;
  for_each_column(*this,
                  [&](const auto& column) { bytes += column.capacity() * sizeof(column[0]); });
  return bytes;
}

}  // namespace vmlab::viz
