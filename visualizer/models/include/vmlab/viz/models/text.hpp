// How the visualizer writes figures and names: the same words in every
// table, chart, tooltip and rendered image.
#pragma once

#include <QString>
#include <cstdint>
#include <string_view>

#include "vmlab/events.hpp"
#include "vmlab/trace.hpp"
#include "vmlab/viz/trace_model.hpp"

namespace vmlab::viz {

// Item data roles the models add to Qt's.
enum ModelRole {
  // The cell's figure as a number (qulonglong or double), for sorting and
  // charts; DisplayRole is the text a person reads.
  kValueRole = 0x0100 + 1,  // Qt::UserRole + 1
};

QString to_qstring(std::string_view text);

// "0x3f8".
QString hex_text(std::uint64_t value);
// Nanoseconds as microseconds with three decimals: "12.345" (tables say the unit).
QString microseconds_text(std::uint64_t nanoseconds);
// A length with the unit that reads best: "850 ns", "12.3 µs", "4.56 ms", "1.23 s".
QString duration_text(std::uint64_t nanoseconds);
// "VMM", "Monitor", "Guest kernel", "Guest user", "Guest (level unknown)", "Halted".
QString lane_title(TimelineLane lane);
// "vm-exit io-out": kind and reason, as the trace spells them.
QString kind_reason_text(EventKind kind, EventReason reason);

// The lane an event's own work is drawn on: exits and blocked DMA on the
// VMM's, monitor work on the monitor's, hlt waits on the halted lane, an
// injected interrupt on the level it was delivered to (TimelineDeriver).
TimelineLane lane_of_event(const EventStore& events, EventIndex event);

// What a person wants to know about an event, a fact a line: its name
// (reason, with port or address), when and how long, the guest RIP, the
// levels, and what its kind has (a trap's vector and decoded instruction,
// a port's width and value, a hypercall's number and argument).
QString event_description(const TraceModel& trace, EventIndex event);

}  // namespace vmlab::viz
