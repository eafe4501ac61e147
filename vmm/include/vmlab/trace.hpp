// Reading a vmlab trace back, where its events sit on a timeline, and the
// Perfetto/Chrome JSON and CSV exports. Qt-free: the CLI and the visualizer's
// engine (visualizer/engine, which also holds the summary `vmlab trace
// summary` prints) share it (STYLE.md 8).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
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
  kCancelled,           // the reader's progress callback asked it to stop
};
constexpr const char* error_domain(TraceError) {
  return "trace";
}

// What a trace file says about its run besides the events: the header lines,
// the table the events' details index, and whether its last line was cut.
struct TraceInfo {
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
  // Event::detail indexes this table (0 = no detail), as in the recorder.
  std::vector<std::string> details{std::string()};
  std::string_view detail(std::uint32_t index) const {
    return index < details.size() ? std::string_view(details[index]) : std::string_view();
  }
  std::string_view detail(const Event& event) const { return detail(event.detail); }
};

// Fewer events than the header counts, or a last line cut off: the writer was
// stopped (killed run, full disk) or the file was cut short since.
bool is_truncated(const TraceInfo& info, std::uint64_t events_read);

struct Trace : TraceInfo {
  std::vector<Event> events;  // in file order (oldest first)
  bool truncated() const { return is_truncated(*this, events.size()); }
};

// How a reader takes the events of a trace as the one parser reads them.
struct TraceReadCallbacks {
  // Each event line, in file order; Event::detail indexes TraceInfo::details.
  std::function<void(const Event&)> event;
  // Called every few thousand lines with the bytes read so far (for a
  // progress bar); returning false stops the reader with kCancelled.
  std::function<bool(std::uint64_t bytes_read)> progress;
};

// The one parser, a line at a time: read_trace_events feeds it a file's
// lines, vmlab-viz's live view the lines of a stream as they arrive (a
// `vmlab run --live` pipe).
class TraceLineReader {
 public:
  TraceLineReader();
  ~TraceLineReader();
  TraceLineReader(TraceLineReader&&) noexcept;
  TraceLineReader& operator=(TraceLineReader&&) noexcept;

  // One whole line, without its end of line: a header line fills info(), an
  // event line gives its event (Event::detail indexes info().details).
  Result<std::optional<Event>> read_line(std::string_view line);
  // After the last line: the checks a whole trace gets (that it had a
  // header, that it holds no more events than it counts). `ends_mid_line`:
  // the input stopped inside a line, which was not read.
  Result<TraceInfo> finish(bool ends_mid_line);

  const TraceInfo& info() const { return m_info; }
  std::uint64_t events() const { return m_events; }
  std::size_t lines() const { return m_lines; }

 private:
  struct DetailIndex;
  Error bad(const std::string& why, TraceError kind = TraceError::kMalformedLine) const;

  TraceInfo m_info;
  std::unique_ptr<DetailIndex> m_detail_index;  // details by text, for the table events index
  std::uint64_t m_events = 0;
  std::size_t m_lines = 0;
};

// Parses a trace file (format v1 or v2); a malformed line is an error naming
// it, and so is a file holding more events than its header counts. A file
// holding fewer reads, with truncated() set. read_trace keeps the events in a
// Trace; read_trace_events hands each to its caller, which keeps them in its
// own form (the visualizer's engine does).
Result<Trace> read_trace(std::istream& in);
Result<Trace> read_trace_file(const std::string& path);
Result<TraceInfo> read_trace_events(std::istream& in, const TraceReadCallbacks& callbacks);

// Empty for a complete trace; otherwise one sentence saying it is truncated,
// with the number of events read and the number the header counts.
std::string truncation_message(const TraceInfo& info, std::uint64_t events_read);
std::string truncation_message(const Trace& trace);

// The lanes of a trace's timeline: one per privilege level, in
// PrivilegeLevel's order, and one for the vCPU asleep in hlt.
enum class TimelineLane : std::uint8_t {
  Vmm,
  Monitor,
  GuestKernel,
  GuestUser,
  GuestUnknown,  // the guest, at a level KVM did not report
  Halted,
  Count,
};
static_assert(static_cast<std::size_t>(TimelineLane::GuestUnknown) ==
                  static_cast<std::size_t>(PrivilegeLevel::Unknown),
              "the first lanes are the privilege levels, in order");
std::string_view timeline_lane_name(TimelineLane lane);
constexpr TimelineLane lane_of(PrivilegeLevel level) {
  return static_cast<TimelineLane>(level);
}

// What an event puts on the timeline. The Perfetto export draws these slices
// and the visualizer's engine builds its lanes from them, so both show a
// trace the same way:
// - a VM exit: the guest running on the level it exited from, from the end of
//   the previous exit to this one, then the exit's handling on the VMM lane;
// - monitor traps, hypercalls, translations, device work: the monitor lane;
// - a hlt wait: the halted lane (nested in its VM exit, or in the monitor's
//   emulated hlt);
// - interrupt injections and blocked DMA: instants, on the level injected
//   into and on the VMM lane (the device thread's DMA, not the vCPU's).
// Only VM exits move the guest's clock, so events must come with their VM
// exits in time order (as a trace file lists them).
struct TimelineSlice {
  TimelineLane lane = TimelineLane::Vmm;
  // Guest execution that ended with the VM exit; otherwise the event's own work.
  bool guest_running = false;
  std::uint64_t start_ns = 0;
  std::uint64_t duration_ns = 0;
};
struct TimelineInstant {
  TimelineLane lane = TimelineLane::Vmm;
  std::uint64_t time_ns = 0;
};
struct TimelineStep {
  std::array<TimelineSlice, 2> slices{};
  std::size_t slice_count = 0;
  std::optional<TimelineInstant> instant;
};

class TimelineDeriver {
 public:
  // What `event`, the next event of the trace, puts on the timeline.
  TimelineStep next(const Event& event);

 private:
  std::uint64_t m_guest_resumed = 0;  // when the guest last started running
};

// Chrome JSON trace event format (Perfetto opens it): one process, a track
// (thread) per privilege level, each event a complete slice ("ph":"X") on the
// level that did the work, guest execution between exits as slices on the
// guest's level, injections as instant events, exit counts as counter tracks.
// (TimelineDeriver's slices; the hlt waits on the VMM's track, nested in their
// exits.)
void export_perfetto(const Trace& trace, std::ostream& out);
void export_csv(const Trace& trace, std::ostream& out);

// The name of an event on a timeline: its reason, with the port, address or
// batch size where the reason has one ("io-out 0x3f8", "hc-mmu-update x4").
std::string event_slice_name(const Event& event);

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::TraceError);
