#include "vmlab/viz/search.hpp"

#include "vmlab/format.hpp"

namespace vmlab::viz {

namespace {

// The indexes in `range` for which `matches` holds, in order.
template <typename Matches>
std::vector<EventIndex> collect(const TraceModel& model, TimeRange range, Matches&& matches) {
  std::vector<EventIndex> found;
  const auto [first, last] = model.events().starting_in(range);
  for (EventIndex index = first; index < last; ++index) {
    if (matches(index)) found.push_back(index);
  }
  return found;
}

}  // namespace

std::vector<EventIndex> find_by_reason(const TraceModel& model, EventReason reason,
                                       TimeRange range) {
  const EventStore& events = model.events();
  return collect(model, range, [&](EventIndex index) { return events.reason(index) == reason; });
}

Result<std::vector<EventIndex>> find_by_reason(const TraceModel& model, std::string_view name,
                                               TimeRange range) {
  const auto reason = parse_event_reason(name);
  if (!reason) {
    std::string known;
    for (std::size_t index = 0; index < static_cast<std::size_t>(EventReason::Count); ++index) {
      known += (index == 0 ? "" : ", ");
      known += event_reason_name(static_cast<EventReason>(index));
    }
    return Error{SearchError::kUnknownReason,
                 single_quoted(name, 40) + " is not an event reason; the reasons are " + known};
  }
  return find_by_reason(model, *reason, range);
}

Result<std::vector<EventIndex>> find_by_rip(const TraceModel& model, std::uint64_t first,
                                            std::uint64_t last, TimeRange range) {
  if (first > last) {
    return Error{SearchError::kEmptyRipRange, "the RIP range " + hex(first) + " to " + hex(last) +
                                                  " is empty: its first address is above its last"};
  }
  const EventStore& events = model.events();
  return collect(model, range, [&](EventIndex index) {
    const std::uint64_t rip = events.guest_rip(index);
    return rip >= first && rip <= last;
  });
}

std::vector<EventIndex> find_by_detail(const TraceModel& model, std::string_view text,
                                       TextMatch match, TimeRange range) {
  // Match the few distinct details once, then read the events' detail column.
  const auto& details = model.info().details;
  std::vector<bool> matching(details.size(), false);
  bool any = false;
  for (std::size_t index = 1; index < details.size(); ++index) {
    const std::string_view detail = details[index];
    matching[index] =
        match == TextMatch::Exact ? detail == text : detail.find(text) != std::string_view::npos;
    any = any || matching[index];
  }
  if (!any) return {};
  const EventStore& events = model.events();
  return collect(model, range, [&](EventIndex index) {
    const std::uint32_t detail = events.detail(index);
    return detail < matching.size() && matching[detail];
  });
}

}  // namespace vmlab::viz
