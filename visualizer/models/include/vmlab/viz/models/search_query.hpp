// What the timeline's search box understands, one line of text:
//   io-out, system-call     a reason, as the trace spells it
//   0x101020                a guest RIP (hexadecimal, 0x first)
//   0x100000-0x100fff       a range of guest RIPs, both ends included
//   iretq, out dx           anything else: the text of a decoded instruction
//                           (the event's detail) that holds it
#pragma once

#include <QString>
#include <vector>

#include "vmlab/result.hpp"
#include "vmlab/viz/search.hpp"

namespace vmlab::viz {

enum class SearchQueryError {
  kEmpty = 1,   // nothing to look for
  kBadAddress,  // 0x followed by something that is not a hexadecimal address
};
constexpr const char* error_domain(SearchQueryError) {
  return "search query";
}
using vmlab::make_error_code;

struct SearchQuery {
  enum class By { Reason, Rip, Detail };
  By by = By::Detail;
  EventReason reason = EventReason::Unknown;
  std::uint64_t first_rip = 0;
  std::uint64_t last_rip = 0;
  std::string text;
  // "reason io-out", "guest RIP 0x101020", "instruction holding 'iretq'".
  QString description() const;
};

Result<SearchQuery> parse_search_query(const QString& text);
// The matching events in time order (search.hpp).
Result<std::vector<EventIndex>> run_search(const TraceModel& trace, const SearchQuery& query);

}  // namespace vmlab::viz

VMLAB_ERROR_KINDS(vmlab::viz::SearchQueryError);
