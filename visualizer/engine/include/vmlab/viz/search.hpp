// Finding events: by reason, by the guest RIP they happened at, by the text
// of their detail (the instruction a monitor trap decoded). Each returns
// event indexes in time order, within an optional time range. A search reads
// one column of the store, so a million events take a millisecond or two.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "vmlab/result.hpp"
#include "vmlab/viz/trace_model.hpp"

namespace vmlab::viz {

enum class SearchError {
  kUnknownReason = 1,  // a reason name no event kind has (the message lists them)
  kEmptyRipRange,      // a RIP range whose first address is above its last
};
constexpr const char* error_domain(SearchError) {
  return "search";
}
using vmlab::make_error_code;

std::vector<EventIndex> find_by_reason(const TraceModel& model, EventReason reason,
                                       TimeRange range = {});
// `name` as the trace spells it ("io-out", "system-call").
Result<std::vector<EventIndex>> find_by_reason(const TraceModel& model, std::string_view name,
                                               TimeRange range = {});

// Events whose guest RIP is `first` to `last`, both included (first == last:
// one address). Events without a RIP (0) match only a range holding 0.
Result<std::vector<EventIndex>> find_by_rip(const TraceModel& model, std::uint64_t first,
                                            std::uint64_t last, TimeRange range = {});

enum class TextMatch { Exact, Contains };
// Events whose detail is `text` (Exact) or holds it (Contains; an empty text
// matches every event with a detail). Case matters: "mov cr3" is not "MOV CR3".
std::vector<EventIndex> find_by_detail(const TraceModel& model, std::string_view text,
                                       TextMatch match, TimeRange range = {});

}  // namespace vmlab::viz

VMLAB_ERROR_KINDS(vmlab::viz::SearchError);
