// Reading a vmlab trace back, and what is done with it: Perfetto/Chrome JSON
// and CSV exports, and the summary `vmlab trace summary` prints. Qt-free, so
// the CLI and the visualizer share it (STYLE.md 8).
#pragma once

#include <array>
#include <cstdint>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/events.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

// Why a trace file could not be read. A file cut short at a line boundary is
// not an error: it reads, with Trace::truncated() set.
enum class TraceError {
  kUnreadable = 1,      // the file could not be opened (system_errno)
  kNotATrace,           // no '# vmlab-trace' header line
  kTruncated,           // cut short inside its header: not even the version line is whole
  kUnsupportedVersion,  // a format version this vmlab does not read (0, or newer than 2)
  kMalformedLine,       // a header or event line that does not parse; the message names it
  kTooManyEvents,       // more events than the header counts (two traces in one file?)
};
constexpr const char* error_domain(TraceError) {
  return "trace";
}

struct Trace {
  int version = 0;
  std::string platform_line;
  std::string run_description;
  std::uint64_t recorded = 0;
  std::uint64_t dropped = 0;
  // The events the file should hold (recorded - dropped), from its "# events:"
  // header line; none for a file without one.
  std::optional<std::uint64_t> expected_events;
  // The file's last line has no end of line: vmlab ends every line with one,
  // so the file was cut inside that line, which is not read.
  bool ends_mid_line = false;
  // Time by privilege level over the whole run, from the recorder (ns).
  std::array<std::uint64_t, static_cast<std::size_t>(PrivilegeLevel::Count)> level_time_ns{};
  std::uint64_t halted_ns = 0;
  std::vector<Event> events;  // in file order (oldest first)
  // Event::detail indexes this table (0 = no detail), as in the recorder.
  std::vector<std::string> details{std::string()};
  std::string_view detail(const Event& event) const {
    return event.detail < details.size() ? std::string_view(details[event.detail])
                                         : std::string_view();
  }
  // Fewer events than the header counts, or a last line cut off: the writer
  // was stopped (killed run, full disk) or the file was cut short since.
  bool truncated() const {
    return ends_mid_line || (expected_events && events.size() < *expected_events);
  }
};

// Parses a trace file (format v1 or v2); a malformed line is an error naming
// it, and so is a file holding more events than its header counts. A file
// holding fewer reads, with truncated() set.
Result<Trace> read_trace(std::istream& in);
Result<Trace> read_trace_file(const std::string& path);

// Empty for a complete trace; otherwise one sentence saying it is truncated,
// with the number of events read and the number the header counts.
std::string truncation_message(const Trace& trace);

// Chrome JSON trace event format (Perfetto opens it): one process, a track
// (thread) per privilege level, each event a complete slice ("ph":"X") on the
// level that did the work, guest execution between exits as slices on the
// guest's level, injections as instant events, exit counts as counter tracks.
void export_perfetto(const Trace& trace, std::ostream& out);
void export_csv(const Trace& trace, std::ostream& out);

struct TraceSummary {
  struct Count {
    std::string kind;
    std::string reason;
    std::uint64_t count = 0;
    std::uint64_t total_duration_ns = 0;
  };
  struct CostlyRip {
    std::uint64_t guest_rip = 0;
    std::uint64_t events = 0;
    std::uint64_t total_duration_ns = 0;
  };
  std::vector<Count> counts;           // by kind and reason, most frequent first
  std::vector<CostlyRip> costly_rips;  // most VMM time first, at most 10
  // Monitor traps by what caused them (the decoded instruction), most first.
  std::vector<std::pair<std::string, std::uint64_t>> traps_by_detail;
  std::uint64_t span_ns = 0;  // first event to last event end
};

TraceSummary summarize(const Trace& trace);
void print_summary(const Trace& trace, const TraceSummary& summary, std::ostream& out);

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::TraceError);
