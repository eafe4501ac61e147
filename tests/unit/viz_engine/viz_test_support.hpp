// What the engine's tests share: trace files written as text, random traces
// with a fixed seed, and the brute-force answers the engine is checked
// against, computed the slow and obvious way (nanosecond by nanosecond).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "vmlab/format.hpp"
#include "vmlab/viz/lod.hpp"
#include "vmlab/viz/trace_model.hpp"

namespace vmlab::viz::testing {

// One event line of a version 2 trace file.
inline std::string event_line(const Event& event, const std::string& detail = "") {
  std::ostringstream line;
  line << event.time_ns << '\t' << event.duration_ns << '\t' << event.vcpu << '\t'
       << event_kind_name(event.kind) << '\t' << event_reason_name(event.reason) << '\t'
       << privilege_level_name(event.from) << '\t' << privilege_level_name(event.to) << '\t'
       << hex(event.guest_rip) << '\t' << hex(event.address) << '\t' << event.size << '\t'
       << hex(event.value) << '\t' << detail << '\n';
  return line.str();
}

inline std::string trace_header(std::size_t events) {
  return "# vmlab-trace 2\n# platform: test backend on test CPU\n# run: cpu=full workload=test\n"
         "# events: " +
         std::to_string(events) +
         " recorded, 0 dropped (ring full)\n"
         "# levels: vmm=100 monitor=200 guest-kernel=300 guest-user=400 unknown=0 halted=500\n"
         "# time_ns\tduration_ns\tvcpu\tkind\treason\tfrom\tto\tguest_rip\taddress\tsize\tvalue\t"
         "detail\n";
}

inline TraceModel load_text(const std::string& text) {
  std::istringstream in(text);
  auto model = TraceModel::load(in, text.size());
  EXPECT_TRUE(model.ok()) << (model.ok() ? "" : model.error().message);
  return model.ok() ? std::move(*model) : TraceModel();
}

struct GeneratedEvent {
  Event event;
  std::string detail;
};

// A random run, its events in the order a recorder writes them (work done
// while an exit is handled before the exit), with what makes lanes hard:
// traps nested in exits, translations nested in traps, spans of no length,
// hlt waits, guest running at every level, and now and then an exit that
// overlaps the one before.
inline std::vector<GeneratedEvent> random_events(std::uint64_t seed, std::size_t exits) {
  std::mt19937_64 random(seed);
  auto below = [&](std::uint64_t bound) {
    return bound == 0 ? 0 : std::uniform_int_distribution<std::uint64_t>(0, bound - 1)(random);
  };
  auto chance = [&](unsigned percent) { return below(100) < percent; };
  auto duration = [&]() -> std::uint64_t {
    if (chance(10)) return 0;
    if (chance(15)) return 1000 + below(8000);
    return 1 + below(400);
  };
  constexpr std::array kExitReasons = {EventReason::IoIn, EventReason::IoOut,
                                       EventReason::MmioWrite, EventReason::Halt,
                                       EventReason::InterruptWindowOpen};
  constexpr std::array kTrapReasons = {EventReason::PrivilegedInstruction, EventReason::SystemCall,
                                       EventReason::ShadowFill, EventReason::CallOut};
  constexpr std::array kDetails = {"", "out dx, al", "iretq", "syscall", "in al, dx"};
  auto level = [&]() {
    if (chance(80)) return chance(60) ? PrivilegeLevel::GuestKernel : PrivilegeLevel::GuestUser;
    return static_cast<PrivilegeLevel>(below(static_cast<std::uint64_t>(PrivilegeLevel::Count)));
  };
  std::vector<GeneratedEvent> events;
  std::uint64_t time = below(500);
  for (std::size_t index = 0; index < exits; ++index) {
    time += chance(10) ? 0 : below(1500);
    Event exit{.time_ns = time,
               .duration_ns = duration(),
               .guest_rip = chance(10) ? 0 : 0x100000 + 16 * below(64),
               .address = 0x3f8 + below(8),
               .kind = EventKind::VmExit,
               .reason = kExitReasons[below(kExitReasons.size())],
               .from = level(),
               .to = PrivilegeLevel::Vmm};
    // Inside the exit: a monitor trap, perhaps with a translation in it,
    // and perhaps a hlt wait; written before the exit, as the recorder does.
    if (chance(50)) {
      const std::uint64_t offset = below(exit.duration_ns + 1);
      Event trap{.time_ns = exit.time_ns + offset,
                 .duration_ns = chance(10) ? duration() : below(exit.duration_ns - offset + 1),
                 .guest_rip = 0x100000 + 16 * below(64),
                 .kind = chance(85) ? EventKind::MonitorTrap : EventKind::Hypercall,
                 .reason = kTrapReasons[below(kTrapReasons.size())],
                 .from = level(),
                 .to = level()};
      if (trap.kind == EventKind::Hypercall) trap.reason = EventReason::HypercallIret;
      const std::size_t detail = below(kDetails.size());
      trap.detail = static_cast<std::uint32_t>(detail);
      events.push_back({trap, kDetails[detail]});
      if (chance(30)) {
        const std::uint64_t inner = below(trap.duration_ns + 1);
        Event translation{.time_ns = trap.time_ns + inner,
                          .duration_ns = below(trap.duration_ns - inner + 1),
                          .kind = EventKind::Translation,
                          .reason = EventReason::BlockTranslated,
                          .from = PrivilegeLevel::GuestKernel,
                          .to = PrivilegeLevel::GuestKernel};
        events.push_back({translation, ""});
      }
    }
    if (chance(10)) {
      const std::uint64_t offset = below(exit.duration_ns + 1);
      events.push_back({Event{.time_ns = exit.time_ns + offset,
                              .duration_ns = below(exit.duration_ns - offset + 1),
                              .kind = EventKind::GuestHalt,
                              .reason = EventReason::Halt,
                              .from = PrivilegeLevel::GuestKernel,
                              .to = PrivilegeLevel::Vmm},
                        ""});
    }
    events.push_back({exit, ""});
    if (chance(5)) {
      events.push_back({Event{.time_ns = exit.time_ns + exit.duration_ns,
                              .address = 0x20,
                              .kind = EventKind::InterruptInjection,
                              .reason = EventReason::ExternalInterrupt,
                              .from = PrivilegeLevel::Vmm,
                              .to = PrivilegeLevel::GuestKernel},
                        ""});
    }
    // Usually the next exit comes after this one ends; now and then it
    // overlaps it (a trace need not be well formed).
    time = chance(5) ? exit.time_ns + below(exit.duration_ns + 1) : exit.time_ns + exit.duration_ns;
  }
  return events;
}

inline std::string trace_text(const std::vector<GeneratedEvent>& events) {
  std::string text = trace_header(events.size());
  for (const auto& generated : events)
    text += event_line(generated.event, generated.detail);
  return text;
}

// The events as the engine orders them: by time, the file's order among equals.
inline std::vector<Event> time_ordered(const std::vector<GeneratedEvent>& generated) {
  std::vector<Event> events;
  for (const auto& item : generated)
    events.push_back(item.event);
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.time_ns < b.time_ns; });
  return events;
}

// A span as the README describes the timeline, derived here without the
// engine: guest running from the end of one exit to the next exit on the
// level the guest exited from, exits on the VMM lane, monitor work on the
// monitor lane, hlt waits on the halted lane.
struct ReferenceSpan {
  std::uint64_t start;
  std::uint64_t end;
  SpanLabel label;
  EventIndex event;
};

struct Reference {
  std::array<std::vector<ReferenceSpan>, kLaneCount> spans;  // by start, then derivation order
  // owner[lane][t]: the span covering nanosecond t that started last (-1: none).
  std::array<std::vector<int>, kLaneCount> owner;
  std::vector<bool> carries_monitor_work;  // by event index
  std::uint64_t horizon = 0;               // every span ends by then
};

inline Reference reference_of(const std::vector<Event>& events) {
  Reference reference;
  std::uint64_t resumed = 0;
  auto add = [&](TimelineLane lane, std::uint64_t start, std::uint64_t end, SpanLabel label,
                 std::size_t event) {
    reference.spans[static_cast<std::size_t>(lane)].push_back(
        {start, end, label, static_cast<EventIndex>(event)});
    reference.horizon = std::max(reference.horizon, end);
  };
  for (std::size_t index = 0; index < events.size(); ++index) {
    const Event& event = events[index];
    const std::uint64_t end = event.time_ns + event.duration_ns;
    const SpanLabel label = SpanLabel::of(event.kind, event.reason);
    switch (event.kind) {
      case EventKind::VmExit:
        if (event.time_ns > resumed) {
          add(static_cast<TimelineLane>(event.from), resumed, event.time_ns,
              SpanLabel::guest_running(), index);
        }
        add(TimelineLane::Vmm, event.time_ns, end, label, index);
        resumed = end;
        break;
      case EventKind::GuestHalt:
        add(TimelineLane::Halted, event.time_ns, end, label, index);
        break;
      case EventKind::MonitorTrap:
      case EventKind::Hypercall:
      case EventKind::DeviceAccess:
      case EventKind::Translation:
        add(TimelineLane::Monitor, event.time_ns, end, label, index);
        break;
      case EventKind::InterruptInjection:
      case EventKind::IommuFault:
      case EventKind::Count:
        break;
    }
  }
  for (auto& lane : reference.spans) {
    std::stable_sort(lane.begin(), lane.end(),
                     [](const auto& a, const auto& b) { return a.start < b.start; });
  }
  for (std::size_t lane = 0; lane < kLaneCount; ++lane) {
    auto& owner = reference.owner[lane];
    owner.assign(reference.horizon + 1, -1);
    const auto& spans = reference.spans[lane];
    for (std::size_t index = 0; index < spans.size(); ++index) {
      for (std::uint64_t time = spans[index].start; time < spans[index].end; ++time)
        owner[time] = static_cast<int>(index);
    }
  }
  reference.carries_monitor_work.assign(events.size(), false);
  for (const auto& exit : reference.spans[static_cast<std::size_t>(TimelineLane::Vmm)]) {
    if (exit.label.is_guest_running()) continue;
    for (const auto& work : reference.spans[static_cast<std::size_t>(TimelineLane::Monitor)]) {
      if (work.start >= exit.start && work.start < exit.end) {
        reference.carries_monitor_work[exit.event] = true;
      }
    }
  }
  return reference;
}

// The level at nanosecond t (timeline.hpp's rule), or Count for nothing.
inline TimelineLane reference_level(const Reference& reference, std::uint64_t time) {
  auto owner = [&](TimelineLane lane) {
    return reference.owner[static_cast<std::size_t>(lane)][time];
  };
  if (owner(TimelineLane::Halted) >= 0) return TimelineLane::Halted;
  if (owner(TimelineLane::Monitor) >= 0) return TimelineLane::Monitor;
  if (const int exit = owner(TimelineLane::Vmm); exit >= 0) {
    const auto& span =
        reference
            .spans[static_cast<std::size_t>(TimelineLane::Vmm)][static_cast<std::size_t>(exit)];
    const bool carries =
        !span.label.is_guest_running() && reference.carries_monitor_work[span.event];
    return carries ? TimelineLane::Monitor : TimelineLane::Vmm;
  }
  for (const auto lane :
       {TimelineLane::GuestKernel, TimelineLane::GuestUser, TimelineLane::GuestUnknown}) {
    if (owner(lane) >= 0) return lane;
  }
  return TimelineLane::Count;
}

// What query_lod should return, pixel by pixel from the owner arrays.
inline std::vector<LodItem> reference_lod(const Reference& reference, TimelineLane lane,
                                          TimeRange view, std::uint32_t width) {
  std::vector<LodItem> items;
  if (width == 0 || view.empty()) return items;
  const auto& spans = reference.spans[static_cast<std::size_t>(lane)];
  const auto& owner = reference.owner[static_cast<std::size_t>(lane)];
  std::vector<std::uint64_t> label_time(SpanLabel::kCount, 0);
  // stamp[span] == pixel + 1: the span is present in this pixel (owns time
  // in it or starts in it).
  std::vector<std::uint32_t> stamp(spans.size(), 0);
  for (std::uint32_t pixel = 0; pixel < width; ++pixel) {
    const auto boundary = [&](std::uint64_t j) {
      return view.start_ns +
             static_cast<std::uint64_t>(static_cast<unsigned __int128>(view.length()) * j / width);
    };
    const std::uint64_t start = boundary(pixel);
    const std::uint64_t end = boundary(pixel + 1);
    LodItem item;
    item.start_ns = start;
    item.end_ns = end;
    std::size_t present = 0;
    std::size_t only = 0;
    auto mark = [&](std::size_t span) {
      if (stamp[span] == pixel + 1) return;
      stamp[span] = pixel + 1;
      if (present++ == 0) only = span;
    };
    std::vector<std::uint16_t> labels;
    for (std::uint64_t time = start; time < end && time < owner.size(); ++time) {
      const int span = owner[time];
      if (span < 0) continue;
      ++item.busy_ns;
      const std::uint16_t code = spans[static_cast<std::size_t>(span)].label.code();
      if (label_time[code]++ == 0) labels.push_back(code);
      mark(static_cast<std::size_t>(span));
    }
    int first_starting = -1;
    const auto first =
        std::lower_bound(spans.begin(), spans.end(), start,
                         [](const auto& span, std::uint64_t time) { return span.start < time; });
    for (auto span = first; span != spans.end() && span->start < end; ++span) {
      ++item.spans;
      const auto index = static_cast<std::size_t>(span - spans.begin());
      if (first_starting < 0) first_starting = static_cast<int>(index);
      mark(index);
    }
    if (present == 0) continue;
    if (item.busy_ns == 0) {
      item.dominant = spans[static_cast<std::size_t>(first_starting)].label;
    } else {
      std::uint16_t best = labels[0];
      for (const std::uint16_t code : labels) {
        if (label_time[code] > label_time[best] ||
            (label_time[code] == label_time[best] && code < best)) {
          best = code;
        }
      }
      item.dominant = SpanLabel::from_code(best);
    }
    for (const std::uint16_t code : labels)
      label_time[code] = 0;
    item.event = present == 1 ? spans[only].event : kNoEvent;
    if (!items.empty()) {
      LodItem& previous = items.back();
      if (previous.end_ns == item.start_ns && previous.wholly_busy() && item.wholly_busy() &&
          previous.dominant == item.dominant && previous.event == item.event) {
        previous.end_ns = item.end_ns;
        previous.busy_ns += item.busy_ns;
        previous.spans += item.spans;
        continue;
      }
    }
    items.push_back(item);
  }
  return items;
}

inline std::string describe(const LodItem& item) {
  return "[" + std::to_string(item.start_ns) + ", " + std::to_string(item.end_ns) +
         ") busy=" + std::to_string(item.busy_ns) + " spans=" + std::to_string(item.spans) + " " +
         item.dominant.name() + " event=" + std::to_string(item.event);
}

}  // namespace vmlab::viz::testing
