#include "vmlab/trace.hpp"
#include "vmlab/format.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace vmlab {

namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(
        text.substr(start, end == std::string_view::npos ? text.size() - start : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

// Splits an event line at its tabs into `fields`, without allocating (this
// runs once per event, a million times for a large trace); returns how many
// fields the line has, which may be more than `fields` holds.
std::size_t split_fields(std::string_view line, std::array<std::string_view, 12>& fields) {
  std::size_t count = 0;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = line.find('\t', start);
    const std::size_t stop = end == std::string_view::npos ? line.size() : end;
    if (count < fields.size()) fields[count] = line.substr(start, stop - start);
    ++count;
    if (end == std::string_view::npos) return count;
    start = end + 1;
  }
}

// Looks details up by string_view, without making a std::string per event.
struct TextHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

// How often the reader reports its progress: often enough for a smooth bar,
// rarely enough to cost nothing.
constexpr std::size_t kLinesPerProgress = 16384;

// The trace format versions this reader understands.
constexpr std::uint64_t kOldestTraceVersion = 1;
constexpr std::uint64_t kNewestTraceVersion = 2;

enum class ParsedNumber { Ok, NotANumber, OutOfRange };

// Decimal digits only, the whole of `text`, within 64 bits: no sign, no
// spaces, no hexadecimal, so nothing is read as a different number.
ParsedNumber parse_decimal(std::string_view text, std::uint64_t& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error == std::errc::result_out_of_range) return ParsedNumber::OutOfRange;
  if (error != std::errc() || end != text.data() + text.size()) return ParsedNumber::NotANumber;
  return ParsedNumber::Ok;
}

// For messages that quote what the file holds: a bounded excerpt.
std::string excerpt(std::string_view text) {
  constexpr std::size_t kLongest = 40;
  return single_quoted(text, kLongest);
}

// RFC 4180, 2.6 and 2.7: a field holding a comma, a double quote, CR or LF is
// enclosed in double quotes, and a double quote inside it is doubled.
std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string field = "\"";
  for (char character : text) {
    if (character == '"') field += '"';
    field += character;
  }
  field += '"';
  return field;
}

bool parse_unsigned(std::string_view text, std::uint64_t& value) {
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return error == std::errc() && end == text.data() + text.size();
}

std::string json_escape(std::string_view text) {
  std::string escaped;
  for (char character : text) {
    switch (character) {
      case '"':
        escaped += "\\\"";
        break;
      case '\\':
        escaped += "\\\\";
        break;
      case '\n':
        escaped += "\\n";
        break;
      case '\t':
        escaped += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(character) < 0x20) {
          char code[8];
          std::snprintf(code, sizeof code, "\\u%04x", character);
          escaped += code;
        } else {
          escaped += character;
        }
    }
  }
  return escaped;
}

// Chrome's format counts in microseconds; three decimals keep nanoseconds.
std::string microseconds(std::uint64_t nanoseconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%llu.%03llu",
                static_cast<unsigned long long>(nanoseconds / 1000),
                static_cast<unsigned long long>(nanoseconds % 1000));
  return text;
}

// One track (a "thread" of process 1) per privilege level; the hlt waits go
// on the VMM's, nested in their exits.
int track_of(TimelineLane lane) {
  return static_cast<int>(lane == TimelineLane::Halted ? TimelineLane::Vmm : lane) + 1;
}
int track_of(PrivilegeLevel level) {
  return track_of(lane_of(level));
}

// A slice's name in the export: what the VMM handled, or what the monitor did
// and, where it decoded one, the instruction.
std::string perfetto_slice_name(const TraceInfo& trace, const Event& event) {
  switch (event.kind) {
    case EventKind::VmExit:
      return event_slice_name(event);
    case EventKind::GuestHalt:
      return "hlt: waiting for interrupt";
    case EventKind::InterruptInjection:
    case EventKind::IommuFault:
    case EventKind::MonitorTrap:
    case EventKind::Hypercall:
    case EventKind::DeviceAccess:
    case EventKind::Translation:
    case EventKind::Count:
      break;
  }
  std::string name = std::string(event_kind_name(event.kind)) + ": " + event_slice_name(event);
  if (!trace.detail(event).empty()) name += ": " + std::string(trace.detail(event));
  return name;
}

}  // namespace

struct TraceLineReader::DetailIndex {
  std::unordered_map<std::string, std::uint32_t, TextHash, std::equal_to<>> by_text;
};

TraceLineReader::TraceLineReader() : m_detail_index(std::make_unique<DetailIndex>()) {}
TraceLineReader::~TraceLineReader() = default;
TraceLineReader::TraceLineReader(TraceLineReader&&) noexcept = default;
TraceLineReader& TraceLineReader::operator=(TraceLineReader&&) noexcept = default;

Error TraceLineReader::bad(const std::string& why, TraceError kind) const {
  return Error{kind, "trace line " + std::to_string(m_lines) + ": " + why};
}

Result<std::optional<Event>> TraceLineReader::read_line(std::string_view line) {
  ++m_lines;
  if (line.empty()) return std::optional<Event>();
  if (line[0] == '#') {
    std::string_view header(line);
    header.remove_prefix(std::min<std::size_t>(2, header.size()));
    if (header.rfind("vmlab-trace ", 0) == 0) {
      const std::string_view text = header.substr(12);
      std::uint64_t version = 0;
      switch (parse_decimal(text, version)) {
        case ParsedNumber::Ok:
          break;
        case ParsedNumber::NotANumber:
          return bad("trace format version " + excerpt(text) + " is not a decimal number");
        case ParsedNumber::OutOfRange:
          return bad("trace format version " + excerpt(text) +
                         " is out of range; this vmlab reads versions 1 and 2",
                     TraceError::kUnsupportedVersion);
      }
      // Compared as read, before any narrowing: 2^32 + 2 is not version 2.
      if (version < kOldestTraceVersion) {
        return bad("trace format version 0 does not exist; this vmlab reads versions 1 and 2",
                   TraceError::kUnsupportedVersion);
      }
      if (version > kNewestTraceVersion) {
        return bad("trace format version " + std::to_string(version) +
                       " is newer than this vmlab reads (1, 2)",
                   TraceError::kUnsupportedVersion);
      }
      m_info.version = static_cast<int>(version);
    } else if (header.rfind("platform: ", 0) == 0) {
      m_info.platform_line = std::string(header);
    } else if (header.rfind("run: ", 0) == 0) {
      m_info.run_description = std::string(header.substr(5));
    } else if (header.rfind("events: ", 0) == 0) {
      // "N recorded, D dropped (why)": the file holds N - D of them.
      auto words = split(header.substr(8), ' ');
      if (words.size() < 4 || words[1] != "recorded," || words[3] != "dropped" ||
          parse_decimal(words[0], m_info.recorded) != ParsedNumber::Ok ||
          parse_decimal(words[2], m_info.dropped) != ParsedNumber::Ok) {
        return bad("unreadable event counts " + excerpt(header.substr(8)) +
                   " (expected 'N recorded, D dropped')");
      }
      if (m_info.dropped > m_info.recorded) {
        return bad(std::to_string(m_info.dropped) + " events dropped of only " +
                   std::to_string(m_info.recorded) + " recorded");
      }
      m_info.expected_events = m_info.recorded - m_info.dropped;
    } else if (header.rfind("levels:", 0) == 0) {
      for (auto word : split(header.substr(7), ' ')) {
        const auto equals = word.find('=');
        if (equals == std::string_view::npos) continue;
        std::uint64_t value = 0;
        if (!parse_unsigned(word.substr(equals + 1), value)) return bad("unreadable level time");
        if (word.substr(0, equals) == "halted") {
          m_info.halted_ns = value;
        } else if (auto level = parse_privilege_level(word.substr(0, equals))) {
          m_info.level_time_ns[static_cast<std::size_t>(*level)] = value;
        }
      }
    }
    return std::optional<Event>();
  }
  if (m_info.version == 0) {
    return bad("not a vmlab trace (no '# vmlab-trace' header)", TraceError::kNotATrace);
  }
  // Version 2 added the detail column.
  const std::size_t expected_fields = m_info.version == 1 ? 11 : 12;
  std::array<std::string_view, 12> fields;
  const std::size_t found = split_fields(line, fields);
  if (found != expected_fields) {
    return bad("expected " + std::to_string(expected_fields) + " tab-separated fields, found " +
               std::to_string(found));
  }
  Event event;
  std::uint64_t vcpu = 0, size = 0;
  auto kind = parse_event_kind(fields[3]);
  auto reason = parse_event_reason(fields[4]);
  auto from = parse_privilege_level(fields[5]);
  auto to = parse_privilege_level(fields[6]);
  if (!parse_unsigned(fields[0], event.time_ns) || !parse_unsigned(fields[1], event.duration_ns) ||
      !parse_unsigned(fields[2], vcpu) || !kind || !reason || !from || !to ||
      !parse_unsigned(fields[7], event.guest_rip) || !parse_unsigned(fields[8], event.address) ||
      !parse_unsigned(fields[9], size) || !parse_unsigned(fields[10], event.value) ||
      size > 0xffff || vcpu > 0xffffffff) {
    return bad("unreadable event");
  }
  event.vcpu = static_cast<std::uint32_t>(vcpu);
  event.size = static_cast<std::uint16_t>(size);
  event.kind = *kind;
  event.reason = *reason;
  event.from = *from;
  event.to = *to;
  if (expected_fields == 12 && !fields[11].empty()) {
    auto& by_text = m_detail_index->by_text;
    auto known = by_text.find(fields[11]);
    if (known == by_text.end()) {
      known =
          by_text
              .emplace(std::string(fields[11]), static_cast<std::uint32_t>(m_info.details.size()))
              .first;
      m_info.details.emplace_back(fields[11]);
    }
    event.detail = known->second;
  }
  ++m_events;
  return std::optional<Event>(event);
}

Result<TraceInfo> TraceLineReader::finish(bool ends_mid_line) {
  m_info.ends_mid_line = ends_mid_line;
  if (m_info.version == 0 && ends_mid_line) {
    return Error{TraceError::kTruncated,
                 "not a vmlab trace, or one cut short inside its header (no complete "
                 "'# vmlab-trace' line)"};
  }
  if (m_info.version == 0) {
    return Error{TraceError::kNotATrace, "not a vmlab trace (no '# vmlab-trace' header)"};
  }
  if (m_info.expected_events && m_events > *m_info.expected_events) {
    return Error{TraceError::kTooManyEvents, "trace holds " + std::to_string(m_events) +
                                                 " events but its header counts " +
                                                 std::to_string(*m_info.expected_events) +
                                                 " (two traces joined into one file?)"};
  }
  return m_info;
}

Result<TraceInfo> read_trace_events(std::istream& in, const TraceReadCallbacks& callbacks) {
  TraceLineReader reader;
  std::uint64_t bytes_read = 0;
  std::string line;
  bool ends_mid_line = false;
  while (std::getline(in, line)) {
    // getline stops at the end of the file without a newline only when the
    // file was cut inside its last line; what is left of it is not read.
    if (in.eof()) {
      ends_mid_line = true;
      break;
    }
    bytes_read += line.size() + 1;
    if (callbacks.progress && (reader.lines() + 1) % kLinesPerProgress == 0 &&
        !callbacks.progress(bytes_read)) {
      return Error{TraceError::kCancelled,
                   "reading the trace was cancelled at line " + std::to_string(reader.lines() + 1)};
    }
    auto event = reader.read_line(line);
    if (!event) return event.error();
    if (*event && callbacks.event) callbacks.event(**event);
  }
  return reader.finish(ends_mid_line);
}

Result<Trace> read_trace(std::istream& in) {
  std::vector<Event> events;
  auto info = read_trace_events(
      in, {.event = [&](const Event& event) { events.push_back(event); }, .progress = {}});
  if (!info) return info.error();
  Trace trace;
  static_cast<TraceInfo&>(trace) = std::move(*info);
  trace.events = std::move(events);
  return trace;
}

Result<Trace> read_trace_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) return Error::from_errno(TraceError::kUnreadable, "cannot open trace " + path, errno);
  auto trace = read_trace(file);
  if (!trace) return Error{trace.error().kind, path + ": " + trace.error().message};
  return trace;
}

bool is_truncated(const TraceInfo& info, std::uint64_t events_read) {
  return info.ends_mid_line || (info.expected_events && events_read < *info.expected_events);
}

std::string truncation_message(const TraceInfo& info, std::uint64_t events_read) {
  if (!is_truncated(info, events_read)) return {};
  std::string message = "truncated trace: read " + std::to_string(events_read) + " events";
  if (info.expected_events) {
    message += " of the " + std::to_string(*info.expected_events) + " its header counts";
  }
  if (info.ends_mid_line) message += "; its last line is cut off and was not read";
  message += " (the run was killed, or the disk filled, before the file was complete?)";
  return message;
}

std::string truncation_message(const Trace& trace) {
  return truncation_message(trace, trace.events.size());
}

std::string_view timeline_lane_name(TimelineLane lane) {
  switch (lane) {
    case TimelineLane::Vmm:
    case TimelineLane::Monitor:
    case TimelineLane::GuestKernel:
    case TimelineLane::GuestUser:
    case TimelineLane::GuestUnknown:
      return privilege_level_name(static_cast<PrivilegeLevel>(lane));
    case TimelineLane::Halted:
      return "halted";
    case TimelineLane::Count:
      break;
  }
  return "?";
}

TimelineStep TimelineDeriver::next(const Event& event) {
  TimelineStep step;
  auto slice = [&](TimelineLane lane, bool guest_running, std::uint64_t start,
                   std::uint64_t duration) {
    step.slices[step.slice_count++] = {
        .lane = lane, .guest_running = guest_running, .start_ns = start, .duration_ns = duration};
  };
  switch (event.kind) {
    case EventKind::VmExit:
      if (event.time_ns > m_guest_resumed) {
        slice(lane_of(event.from), true, m_guest_resumed, event.time_ns - m_guest_resumed);
      }
      slice(TimelineLane::Vmm, false, event.time_ns, event.duration_ns);
      m_guest_resumed = event.time_ns + event.duration_ns;
      break;
    case EventKind::InterruptInjection:
      step.instant = TimelineInstant{.lane = lane_of(event.to), .time_ns = event.time_ns};
      break;
    case EventKind::GuestHalt:
      slice(TimelineLane::Halted, false, event.time_ns, event.duration_ns);
      break;
    case EventKind::IommuFault:
      step.instant = TimelineInstant{.lane = TimelineLane::Vmm, .time_ns = event.time_ns};
      break;
    case EventKind::MonitorTrap:
    case EventKind::Hypercall:
    case EventKind::DeviceAccess:
    case EventKind::Translation:
    case EventKind::Count:
      slice(TimelineLane::Monitor, false, event.time_ns, event.duration_ns);
      break;
  }
  return step;
}

std::string event_slice_name(const Event& event) {
  std::string name(event_reason_name(event.reason));
  switch (event.reason) {
    case EventReason::IoIn:
    case EventReason::IoOut:
    case EventReason::MmioRead:
    case EventReason::MmioWrite:
    case EventReason::IommuNotMapped:
    case EventReason::IommuReadOnly:
    case EventReason::IommuWriteOnly:
      name += " " + hex(event.address);
      break;
    case EventReason::Halt:
    case EventReason::Interrupted:
    case EventReason::InterruptWindowOpen:
    case EventReason::Shutdown:
    case EventReason::FailEntry:
    case EventReason::InternalError:
    case EventReason::SystemEvent:
    case EventReason::Debug:
    case EventReason::Unknown:
    case EventReason::ExternalInterrupt:
    case EventReason::PrivilegedInstruction:
    case EventReason::ShadowFill:
    case EventReason::GuestPageFault:
    case EventReason::PageTableWrite:
    case EventReason::SystemCall:
    case EventReason::ReflectedException:
    case EventReason::CallOut:
    case EventReason::TranslatedCodeWrite:
    case EventReason::BlockTranslated:
    case EventReason::BranchChained:
    case EventReason::IndirectMiss:
    case EventReason::CodeInvalidated:
    case EventReason::Count:
      break;
    case EventReason::HypercallMmuUpdate:
    case EventReason::HypercallMulticall:
      name += " x" + std::to_string(event.size);  // the batch
      break;
    case EventReason::HypercallSetTrapTable:
    case EventReason::HypercallUpdateVaMapping:
    case EventReason::HypercallNewBaseptr:
    case EventReason::HypercallSetGdt:
    case EventReason::HypercallStackSwitch:
    case EventReason::HypercallSchedOp:
    case EventReason::HypercallIret:
    case EventReason::HypercallConsoleIo:
    case EventReason::HypercallRegisterSharedInfo:
    case EventReason::HypercallSetCallbacks:
    case EventReason::HypercallPortIo:
    case EventReason::HypercallFlushTlb:
    case EventReason::HypercallUnknown:
      break;
  }
  return name;
}

void export_perfetto(const Trace& trace, std::ostream& out) {
  struct Record {
    std::uint64_t start;
    std::uint64_t duration;
    std::string json;
  };
  std::vector<Record> records;
  auto slice = [&](TimelineLane lane, std::uint64_t start, std::uint64_t duration,
                   const std::string& name, const std::string& arguments) {
    records.push_back({start, duration,
                       "{\"ph\":\"X\",\"pid\":1,\"tid\":" + std::to_string(track_of(lane)) +
                           ",\"ts\":" + microseconds(start) + ",\"dur\":" + microseconds(duration) +
                           ",\"name\":\"" + json_escape(name) + "\",\"args\":{" + arguments +
                           "}}"});
  };
  auto instant = [&](TimelineLane lane, std::uint64_t time, const std::string& name) {
    records.push_back(
        {time, 0,
         "{\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":" + std::to_string(track_of(lane)) +
             ",\"ts\":" + microseconds(time) + ",\"name\":\"" + json_escape(name) + "\"}"});
  };

  TimelineDeriver timeline;
  std::uint64_t exits = 0;
  for (const auto& event : trace.events) {
    const TimelineStep step = timeline.next(event);
    for (std::size_t index = 0; index < step.slice_count; ++index) {
      const TimelineSlice& piece = step.slices[index];
      if (piece.guest_running) {
        slice(piece.lane, piece.start_ns, piece.duration_ns, "guest running", "");
        continue;
      }
      const std::string arguments =
          "\"guest_rip\":\"" + hex(event.guest_rip) + "\",\"address\":\"" + hex(event.address) +
          "\",\"value\":\"" + hex(event.value) + "\",\"size\":" + std::to_string(event.size) +
          ",\"from\":\"" + std::string(privilege_level_name(event.from)) + "\"";
      slice(piece.lane, piece.start_ns, piece.duration_ns, perfetto_slice_name(trace, event),
            arguments);
    }
    if (step.instant) {
      instant(step.instant->lane, step.instant->time_ns,
              event.kind == EventKind::IommuFault ? "DMA blocked: " + event_slice_name(event)
                                                  : "interrupt vector " + hex(event.address));
    }
    if (event.kind == EventKind::VmExit) {
      ++exits;
      records.push_back({event.time_ns, 0,
                         "{\"ph\":\"C\",\"pid\":1,\"ts\":" + microseconds(event.time_ns) +
                             ",\"name\":\"VM exits\",\"args\":{\"total\":" + std::to_string(exits) +
                             "}}"});
    }
  }
  // Parents before children: by start, then longest first.
  std::stable_sort(records.begin(), records.end(), [](const Record& a, const Record& b) {
    return a.start != b.start ? a.start < b.start : a.duration > b.duration;
  });

  out << "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"platform\":\""
      << json_escape(trace.platform_line) << "\",\"run\":\"" << json_escape(trace.run_description)
      << "\",\"dropped_events\":" << trace.dropped << "},\"traceEvents\":[\n";
  out << "{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"vmlab "
      << json_escape(trace.run_description) << "\"}}";
  for (std::size_t index = 0; index < static_cast<std::size_t>(PrivilegeLevel::Count); ++index) {
    const auto level = static_cast<PrivilegeLevel>(index);
    out << ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":" << track_of(level)
        << ",\"name\":\"thread_name\",\"args\":{\"name\":\"" << privilege_level_name(level)
        << "\"}}";
    out << ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":" << track_of(level)
        << ",\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":" << index << "}}";
  }
  for (const auto& record : records)
    out << ",\n" << record.json;
  out << "\n]}\n";
}

void export_csv(const Trace& trace, std::ostream& out) {
  out << "time_ns,duration_ns,vcpu,kind,reason,from,to,guest_rip,address,size,value,detail\n";
  for (const auto& event : trace.events) {
    out << event.time_ns << ',' << event.duration_ns << ',' << event.vcpu << ','
        << event_kind_name(event.kind) << ',' << event_reason_name(event.reason) << ','
        << privilege_level_name(event.from) << ',' << privilege_level_name(event.to) << ','
        << hex(event.guest_rip) << ',' << hex(event.address) << ',' << event.size << ','
        << hex(event.value) << ',' << csv_field(trace.detail(event)) << '\n';
  }
}

}  // namespace vmlab
