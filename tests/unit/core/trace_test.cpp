#include "vmlab/trace.hpp"
#include "vmlab/viz/aggregates.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace vmlab {
namespace {

// An event with what every one has; tests set the rest.
Event event_of(EventKind kind, EventReason reason, PrivilegeLevel from, PrivilegeLevel to,
               std::uint64_t time = 0, std::uint64_t duration = 0) {
  return {.time_ns = time,
          .duration_ns = duration,
          .kind = kind,
          .reason = reason,
          .from = from,
          .to = to};
}

// A port access that made the guest exit to the VMM.
Event port_exit(std::uint64_t time, std::uint64_t duration, EventReason reason, PrivilegeLevel from,
                std::uint64_t port) {
  Event event = event_of(EventKind::VmExit, reason, from, PrivilegeLevel::Vmm, time, duration);
  event.address = port;
  event.size = 1;
  event.value = 0x41;
  return event;
}

// A small run: the guest exits twice for port I/O, halts, takes an interrupt.
EventRecorder sample_recorder() {
  EventRecorder recorder(64);
  auto exit = [&](std::uint64_t time, std::uint64_t duration, EventReason reason,
                  PrivilegeLevel from, std::uint64_t port, std::uint64_t rip) {
    Event event = port_exit(time, duration, reason, from, port);
    event.guest_rip = rip;
    recorder.record(event);
  };
  exit(1000, 500, EventReason::IoOut, PrivilegeLevel::GuestKernel, 0x3f8, 0x101000);
  exit(3000, 700, EventReason::IoIn, PrivilegeLevel::GuestKernel, 0x3ff, 0x101010);
  recorder.record(event_of(EventKind::GuestHalt, EventReason::Halt, PrivilegeLevel::GuestKernel,
                           PrivilegeLevel::Vmm, 5100, 2000));
  exit(5000, 2500, EventReason::Halt, PrivilegeLevel::GuestKernel, 0, 0x101020);
  Event injection = event_of(EventKind::InterruptInjection, EventReason::ExternalInterrupt,
                             PrivilegeLevel::Vmm, PrivilegeLevel::GuestKernel, 7600);
  injection.address = 0x20;
  recorder.record(injection);
  exit(9000, 300, EventReason::IoOut, PrivilegeLevel::GuestUser, 0x3f8, 0x400010);
  Event trap = event_of(EventKind::MonitorTrap, EventReason::PrivilegedInstruction,
                        PrivilegeLevel::GuestKernel, PrivilegeLevel::GuestKernel, 9400, 100);
  trap.address = 13;
  trap.guest_rip = 0x101030;
  trap.detail = recorder.intern("out dx, al");
  recorder.record(trap);
  recorder.add_time(PrivilegeLevel::GuestKernel, 6000);
  recorder.add_time(PrivilegeLevel::Vmm, 1500);
  recorder.add_halted_time(2000);
  return recorder;
}

Trace round_trip(const EventRecorder& recorder) {
  std::stringstream file;
  write_trace(file, recorder, "platform: test backend on test CPU", "cpu=hvm workload=pio");
  auto trace = read_trace(file);
  EXPECT_TRUE(trace.ok()) << (trace.ok() ? "" : trace.error().message);
  return trace.ok() ? *trace : Trace{};
}

TEST(Trace, SchemaRoundTrip) {
  const auto recorder = sample_recorder();
  const Trace trace = round_trip(recorder);
  EXPECT_EQ(trace.version, 2);
  EXPECT_EQ(trace.platform_line, "platform: test backend on test CPU");
  EXPECT_EQ(trace.run_description, "cpu=hvm workload=pio");
  EXPECT_EQ(trace.recorded, 7u);
  EXPECT_EQ(trace.level_time_ns[static_cast<std::size_t>(PrivilegeLevel::GuestKernel)], 6000u);
  EXPECT_EQ(trace.halted_ns, 2000u);
  const auto original = recorder.events();
  ASSERT_EQ(trace.events.size(), original.size());
  for (std::size_t index = 0; index < original.size(); ++index) {
    const auto& a = original[index];
    const auto& b = trace.events[index];
    EXPECT_EQ(a.time_ns, b.time_ns);
    EXPECT_EQ(a.duration_ns, b.duration_ns);
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.reason, b.reason);
    EXPECT_EQ(a.from, b.from);
    EXPECT_EQ(a.to, b.to);
    EXPECT_EQ(a.guest_rip, b.guest_rip);
    EXPECT_EQ(a.address, b.address);
    EXPECT_EQ(a.size, b.size);
    EXPECT_EQ(a.value, b.value);
    EXPECT_EQ(recorder.detail(a.detail), trace.detail(b));
  }
  EXPECT_EQ(trace.detail(trace.events.back()), "out dx, al");
}

// Reads `text` as a trace file.
Result<Trace> read_text(const std::string& text) {
  std::stringstream file(text);
  return read_trace(file);
}

// The kind of the error reading `text`, or none for a file that reads.
std::error_code refusal_of(const std::string& text) {
  auto trace = read_text(text);
  return trace.ok() ? std::error_code() : trace.error().kind;
}

TEST(Trace, RejectsMalformedFiles) {
  EXPECT_EQ(refusal_of("1\t2\t0\tvm-exit\tio-in\tvmm\tvmm\t0\t0\t1\t0\n"), TraceError::kNotATrace);
  EXPECT_EQ(refusal_of(""), TraceError::kNotATrace);
  EXPECT_EQ(refusal_of("# vmlab-tra"), TraceError::kTruncated) << "cut inside the header";
  auto old = read_text("# vmlab-trace 1\n1\t2\t0\tvm-exit\tio-in\tvmm\tvmm\t0\t0x3ff\t1\t0x5a\n");
  ASSERT_TRUE(old.ok()) << "version 1 traces (no detail column) still read";
  EXPECT_EQ(old->events.size(), 1u);
  EXPECT_EQ(refusal_of("# vmlab-trace 9\n"), TraceError::kUnsupportedVersion);
  // (version 1: eleven fields)
  auto bad_kind = read_text("# vmlab-trace 1\n1\t2\t0\tvm-exot\tio-in\tvmm\tvmm\t0\t0\t1\t0\n");
  ASSERT_FALSE(bad_kind.ok());
  EXPECT_EQ(bad_kind.error().kind, TraceError::kMalformedLine);
  EXPECT_NE(bad_kind.error().message.find("line 2"), std::string::npos) << "names the line";
  EXPECT_EQ(refusal_of("# vmlab-trace 1\n1\t2\t0\n"), TraceError::kMalformedLine);
}

TEST(Trace, TheLineReaderReadsAStreamAsItArrivesAsTheFileReaderReadsTheFile) {
  const auto recorder = sample_recorder();
  std::stringstream file;
  write_trace(file, recorder, "platform: test backend on test CPU", "cpu=hvm workload=pio");
  const std::string text = file.str();
  TraceLineReader reader;
  std::vector<Event> events;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    auto event = reader.read_line(std::string_view(text).substr(start, end - start));
    ASSERT_TRUE(event) << event.error().message;
    if (*event) events.push_back(**event);
    start = end + 1;
    // Known as soon as its line has been read, before the end.
    if (events.size() == 1) {
      EXPECT_EQ(reader.info().run_description, "cpu=hvm workload=pio");
    }
  }
  auto info = reader.finish(false);
  ASSERT_TRUE(info) << info.error().message;
  const Trace whole = round_trip(recorder);
  ASSERT_EQ(events.size(), whole.events.size());
  for (std::size_t index = 0; index < events.size(); ++index) {
    EXPECT_EQ(events[index].time_ns, whole.events[index].time_ns);
    EXPECT_EQ(reader.info().detail(events[index]), whole.detail(whole.events[index]));
  }
  EXPECT_EQ(info->recorded, whole.recorded);

  // A malformed line is refused by its number, as in a file.
  TraceLineReader bad;
  ASSERT_TRUE(bad.read_line("# vmlab-trace 2"));
  auto refused = bad.read_line("1\t2\t0\tvm-exot");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("line 2"), std::string::npos) << refused.error().message;
}

TEST(Trace, ALiveStreamsTotalsAfterItsEventsAreCheckedAsHeadersAre) {
  const std::string stream =
      "# vmlab-trace 2\n# run: cpu=full workload=hello\n"
      "1\t2\t0\tvm-exit\tio-in\tvmm\tvmm\t0\t0\t1\t0\t\n"
      "3\t2\t0\tvm-exit\tio-in\tvmm\tvmm\t0\t0\t1\t0\t\n"
      "# events: 5 recorded, 3 dropped (the reader fell behind)\n# end: stopped\n";
  auto trace = read_text(stream);
  ASSERT_TRUE(trace) << trace.error().message;
  EXPECT_FALSE(trace->truncated());
  EXPECT_EQ(trace->dropped, 3u);
  EXPECT_EQ(refusal_of("# vmlab-trace 2\n"
                       "1\t2\t0\tvm-exit\tio-in\tvmm\tvmm\t0\t0\t1\t0\t\n"
                       "3\t2\t0\tvm-exit\tio-in\tvmm\tvmm\t0\t0\t1\t0\t\n"
                       "# events: 1 recorded, 0 dropped (the reader fell behind)\n"),
            TraceError::kTooManyEvents);
}

TEST(Trace, AFileThatCannotBeOpenedIsUnreadable) {
  auto trace = read_trace_file("/nonexistent/vmlab.trace");
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.error().kind, TraceError::kUnreadable);
  EXPECT_EQ(trace.error().system_errno, ENOENT);
}

TEST(Trace, PerfettoExportParsesWithTracksNestingAndOrder) {
  const Trace trace = round_trip(sample_recorder());
  std::stringstream out;
  export_perfetto(trace, out);
  const auto json = nlohmann::json::parse(out.str());  // throws (fails the test) if invalid
  ASSERT_TRUE(json.contains("traceEvents"));
  std::map<int, std::string> tracks;
  struct Slice {
    double start, end;
    std::string name;
  };
  std::map<int, std::vector<Slice>> slices;
  double previous = -1;
  int counters = 0, instants = 0;
  for (const auto& event : json["traceEvents"]) {
    const std::string phase = event["ph"];
    if (phase == "M") {
      if (event["name"] == "thread_name") tracks[event["tid"]] = event["args"]["name"];
      continue;
    }
    const double start = event["ts"];
    EXPECT_GE(start, previous) << "timestamps must be in order";
    previous = start;
    if (phase == "X") {
      slices[event["tid"]].push_back({start, start + event["dur"].get<double>(), event["name"]});
    } else if (phase == "C") {
      ++counters;
    } else if (phase == "i") {
      ++instants;
    }
  }
  EXPECT_EQ(tracks[1], "vmm");
  EXPECT_EQ(tracks[3], "guest-kernel");
  EXPECT_EQ(tracks[4], "guest-user");
  EXPECT_EQ(counters, 4) << "one counter sample per VM exit";
  EXPECT_EQ(instants, 1) << "the interrupt injection";
  // Slices on one track either nest or do not overlap.
  for (const auto& [track, list] : slices) {
    for (std::size_t a = 0; a < list.size(); ++a) {
      for (std::size_t b = a + 1; b < list.size(); ++b) {
        const bool disjoint = list[a].end <= list[b].start || list[b].end <= list[a].start;
        const bool nested = (list[a].start <= list[b].start && list[b].end <= list[a].end) ||
                            (list[b].start <= list[a].start && list[a].end <= list[b].end);
        EXPECT_TRUE(disjoint || nested)
            << list[a].name << " and " << list[b].name << " on track " << track;
      }
    }
  }
  // The hlt wait nests inside the hlt exit on the VMM track.
  ASSERT_EQ(slices[1].size(), 5u);
  // Guest execution between exits appears on the guest's tracks.
  EXPECT_EQ(slices[3].size(), 3u);
  ASSERT_EQ(slices[4].size(), 1u);
  EXPECT_DOUBLE_EQ(slices[4][0].start, 7.5);  // after the halt exit ended
  EXPECT_DOUBLE_EQ(slices[4][0].end, 9.0);
}

TEST(Trace, IommuFaultsExportAsInstantsOnTheVmmTrack) {
  EventRecorder recorder(8);
  Event fault = event_of(EventKind::IommuFault, EventReason::IommuReadOnly, PrivilegeLevel::Vmm,
                         PrivilegeLevel::Vmm, 2000);
  fault.address = 0x3e00000;
  fault.value = 1;
  recorder.record(fault);
  const Trace trace = round_trip(recorder);
  ASSERT_EQ(trace.events.size(), 1u);
  EXPECT_EQ(trace.events[0].reason, EventReason::IommuReadOnly);

  std::stringstream out;
  export_perfetto(trace, out);
  const auto json = nlohmann::json::parse(out.str());
  int instants = 0;
  for (const auto& event : json["traceEvents"]) {
    if (event["ph"] != "i") continue;
    ++instants;
    EXPECT_EQ(event["name"], "DMA blocked: iommu-read-only 0x3e00000");
    EXPECT_EQ(event["tid"], 1);  // the VMM's track: the device thread, not the vCPU
  }
  EXPECT_EQ(instants, 1);
}

TEST(Trace, CsvAndSummary) {
  const Trace trace = round_trip(sample_recorder());
  std::stringstream csv;
  export_csv(trace, csv);
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line,
            "time_ns,duration_ns,vcpu,kind,reason,from,to,guest_rip,address,size,value,detail");
  std::getline(csv, line);
  EXPECT_EQ(line, "1000,500,0,vm-exit,io-out,guest-kernel,vmm,0x101000,0x3f8,1,0x41,");

  // The summary is the visualizer engine's (vmlab trace summary prints it).
  const auto model = viz::TraceModel::from_trace(trace);
  const auto summary = viz::aggregate(model);
  ASSERT_FALSE(summary.counts.empty());
  EXPECT_EQ(summary.counts[0].kind, EventKind::VmExit);
  EXPECT_EQ(summary.counts[0].reason, EventReason::IoOut);
  EXPECT_EQ(summary.counts[0].count, 2u);
  EXPECT_EQ(summary.counts[0].total_duration_ns, 800u);
  ASSERT_FALSE(summary.costly_rips.empty());
  EXPECT_EQ(summary.costly_rips[0].guest_rip, 0x101020u) << "the halt cost the VMM most";
  EXPECT_EQ(summary.span_ns, 9500u - 1000u);
  ASSERT_EQ(summary.traps_by_detail.size(), 1u);
  EXPECT_EQ(summary.traps_by_detail[0].cause, "out dx, al");
  std::stringstream text;
  viz::print_summary(model, summary, text);
  EXPECT_NE(text.str().find("guest-kernel"), std::string::npos);
  EXPECT_NE(text.str().find("platform: test backend"), std::string::npos);
  EXPECT_FALSE(trace.truncated());
  EXPECT_EQ(text.str().find("truncated"), std::string::npos) << "a complete trace is not truncated";
}

// The fields of one CSV record, unquoted as RFC 4180 (section 2) says.
std::vector<std::string> csv_fields(const std::string& record) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t index = 0; index < record.size(); ++index) {
    const char character = record[index];
    if (quoted) {
      if (character != '"') {
        fields.back() += character;
      } else if (index + 1 < record.size() && record[index + 1] == '"') {
        fields.back() += '"';
        ++index;
      } else {
        quoted = false;
      }
    } else if (character == '"') {
      quoted = true;
    } else if (character == ',') {
      fields.emplace_back();
    } else {
      fields.back() += character;
    }
  }
  EXPECT_FALSE(quoted) << "unterminated quoted field in " << record;
  return fields;
}

TEST(Trace, CsvQuotesDetailsAsRfc4180Says) {
  EventRecorder recorder(8);
  auto trap = [&](std::string_view detail) {
    Event event = event_of(EventKind::MonitorTrap, EventReason::PrivilegedInstruction,
                           PrivilegeLevel::Unknown, PrivilegeLevel::Unknown);
    event.detail = recorder.intern(detail);
    recorder.record(event);
  };
  trap(R"(mov "a", b)");
  trap("hlt");
  trap("out dx, al");
  const Trace trace = round_trip(recorder);
  std::stringstream csv;
  export_csv(trace, csv);
  std::string header, quote_and_comma, plain, comma;
  std::getline(csv, header);
  std::getline(csv, quote_and_comma);
  std::getline(csv, plain);
  std::getline(csv, comma);
  // Enclosed in quotes, the embedded ones doubled (RFC 4180, 2.6 and 2.7).
  const std::string columns = "0,0,0,monitor-trap,privileged-instruction,unknown,unknown,0,0,0,0,";
  EXPECT_EQ(quote_and_comma, columns + R"("mov ""a"", b")");
  EXPECT_EQ(plain, columns + "hlt") << "nothing to quote";
  EXPECT_EQ(comma, columns + R"("out dx, al")");
  const auto fields = csv_fields(quote_and_comma);
  ASSERT_EQ(fields.size(), 12u) << quote_and_comma;
  EXPECT_EQ(fields[3], "monitor-trap");
  EXPECT_EQ(fields[11], R"(mov "a", b)");
  EXPECT_EQ(csv_fields(comma).back(), "out dx, al");
}

TEST(Trace, RejectsFormatVersionsOutOfRangeOrNotNumbers) {
  auto version_file = [](const std::string& version) { return "# vmlab-trace " + version + "\n"; };
  // 2^32 + 2: once read as version 2 by a 32-bit truncation.
  auto wrapped = read_text(version_file("4294967298"));
  ASSERT_FALSE(wrapped.ok());
  EXPECT_EQ(wrapped.error().kind, TraceError::kUnsupportedVersion);
  EXPECT_NE(wrapped.error().message.find("version 4294967298 is newer"), std::string::npos)
      << wrapped.error().message;
  EXPECT_EQ(refusal_of(version_file("18446744073709551618")), TraceError::kUnsupportedVersion);
  EXPECT_EQ(refusal_of(version_file("0")), TraceError::kUnsupportedVersion);
  for (const char* not_a_number : {"", "two", "2x", "-1", "+2", "0x2", " 2", "2 ", "2.0"}) {
    EXPECT_EQ(refusal_of(version_file(not_a_number)), TraceError::kMalformedLine)
        << "'" << not_a_number << "'";
  }
  for (int version : {1, 2}) {
    auto trace = read_text(version_file(std::to_string(version)));
    ASSERT_TRUE(trace.ok()) << trace.error().message;
    EXPECT_EQ(trace->version, version);
  }
}

// A recorder with `count` port writes, 1 us apart.
EventRecorder recorder_with(std::size_t count) {
  EventRecorder recorder(1024);
  for (std::size_t index = 0; index < count; ++index) {
    recorder.record(
        port_exit(1000 * (index + 1), 100, EventReason::IoOut, PrivilegeLevel::GuestKernel, 0x3f8));
  }
  return recorder;
}

// The first `lines` lines of a trace file with their ends of line, then
// `partial` characters of the next.
std::string first_lines(const std::string& file, std::size_t lines, std::size_t partial = 0) {
  std::size_t end = 0;
  for (std::size_t line = 0; line < lines; ++line)
    end = file.find('\n', end) + 1;
  return file.substr(0, end + partial);
}

std::string written_trace(const EventRecorder& recorder) {
  std::stringstream file;
  write_trace(file, recorder, "platform: test", "cpu=hvm workload=pio");
  return file.str();
}

constexpr std::size_t kHeaderLines = 6;  // version, platform, run, events, levels, columns

std::string summary_text(const Trace& trace) {
  std::stringstream text;
  const auto model = viz::TraceModel::from_trace(trace);
  viz::print_summary(model, viz::aggregate(model), text);
  return text.str();
}

TEST(Trace, SaysATraceCutAtALineBoundaryIsTruncated) {
  const std::string whole = written_trace(recorder_with(506));
  std::stringstream cut(first_lines(whole, kHeaderLines + 294));
  auto trace = read_trace(cut);
  ASSERT_TRUE(trace.ok()) << trace.error().message;
  EXPECT_EQ(trace->events.size(), 294u);
  ASSERT_TRUE(trace->expected_events.has_value());
  EXPECT_EQ(*trace->expected_events, 506u);
  EXPECT_TRUE(trace->truncated());
  EXPECT_FALSE(trace->ends_mid_line);
  const std::string message = truncation_message(*trace);
  EXPECT_NE(message.find("truncated trace: read 294 events of the 506 its header counts"),
            std::string::npos)
      << message;
  const std::string summary = summary_text(*trace);
  EXPECT_NE(summary.find("warning: " + message), std::string::npos) << summary;

  std::stringstream complete(whole);
  auto full = read_trace(complete);
  ASSERT_TRUE(full.ok()) << full.error().message;
  EXPECT_EQ(full->events.size(), 506u);
  EXPECT_FALSE(full->truncated());
  EXPECT_EQ(truncation_message(*full), "");
  EXPECT_EQ(summary_text(*full).find("truncated"), std::string::npos);
}

TEST(Trace, SaysATraceCutInsideALineIsTruncated) {
  const std::string whole = written_trace(recorder_with(20));
  // Cut inside the value column of the last event ("0x41" -> "0x4"), where
  // what is left would still parse, and inside an earlier line.
  const std::string last_line = whole.substr(whole.rfind('\n', whole.size() - 2) + 1);
  const std::size_t into_value = last_line.find("0x41") + 3;
  for (const auto& [complete_lines, partial] :
       {std::pair{kHeaderLines + 19, into_value}, std::pair{kHeaderLines + 7, std::size_t{5}}}) {
    std::stringstream cut(first_lines(whole, complete_lines, partial));
    auto trace = read_trace(cut);
    ASSERT_TRUE(trace.ok()) << trace.error().message;
    const std::size_t events = complete_lines - kHeaderLines;
    EXPECT_EQ(trace->events.size(), events) << "the cut line is not read";
    for (const auto& event : trace->events)
      EXPECT_EQ(event.value, 0x41u);
    EXPECT_TRUE(trace->ends_mid_line);
    EXPECT_TRUE(trace->truncated());
    const std::string message = truncation_message(*trace);
    EXPECT_NE(message.find("read " + std::to_string(events) + " events of the 20"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("last line is cut off"), std::string::npos) << message;
  }
}

TEST(Trace, RejectsMoreEventsThanTheHeaderCounts) {
  const std::string whole = written_trace(recorder_with(3));
  const std::string extra = whole.substr(first_lines(whole, kHeaderLines + 2).size());
  auto trace = read_text(whole + extra);  // the last event twice
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.error().kind, TraceError::kTooManyEvents);
  EXPECT_NE(trace.error().message.find("holds 4 events but its header counts 3"), std::string::npos)
      << trace.error().message;
}

TEST(Trace, RejectsUnreadableEventCounts) {
  for (const char* counts :
       {"many recorded, 0 dropped (ring full)", "5 recorded", "0x5 recorded, 0 dropped",
        "5 recorded, -1 dropped", "3 recorded, 4 dropped (ring full)"}) {
    auto trace = read_text(std::string("# vmlab-trace 2\n# events: ") + counts + "\n");
    ASSERT_FALSE(trace.ok()) << counts;
    EXPECT_EQ(trace.error().kind, TraceError::kMalformedLine) << trace.error().message;
    EXPECT_NE(trace.error().message.find("line 2"), std::string::npos) << trace.error().message;
  }
  std::stringstream ring_wrapped("# vmlab-trace 2\n# events: 9 recorded, 4 dropped (ring full)\n");
  auto trace = read_trace(ring_wrapped);
  ASSERT_TRUE(trace.ok()) << trace.error().message;
  EXPECT_EQ(trace->expected_events, std::optional<std::uint64_t>(5));
  EXPECT_TRUE(trace->truncated()) << "no event lines at all";
}

}  // namespace
}  // namespace vmlab
