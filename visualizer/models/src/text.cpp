#include "vmlab/viz/models/text.hpp"

#include <QStringList>

#include "vmlab/format.hpp"
#include "vmlab/viz/labels.hpp"

namespace vmlab::viz {

QString to_qstring(std::string_view text) {
  return QString::fromUtf8(text.data(), static_cast<qsizetype>(text.size()));
}

QString hex_text(std::uint64_t value) {
  return QString::fromStdString(hex(value));
}

QString microseconds_text(std::uint64_t nanoseconds) {
  return QStringLiteral("%1.%2")
      .arg(nanoseconds / 1000)
      .arg(nanoseconds % 1000, 3, 10, QLatin1Char('0'));
}

QString duration_text(std::uint64_t nanoseconds) {
  return QString::fromStdString(duration_words(nanoseconds));
}

QString lane_title(TimelineLane lane) {
  return to_qstring(level_title(lane));
}

QString kind_reason_text(EventKind kind, EventReason reason) {
  return to_qstring(event_kind_name(kind)) + QLatin1Char(' ') +
         to_qstring(event_reason_name(reason));
}

TimelineLane lane_of_event(const EventStore& events, EventIndex event) {
  switch (events.kind(event)) {
    case EventKind::VmExit:
    case EventKind::IommuFault:
      return TimelineLane::Vmm;
    case EventKind::MonitorTrap:
    case EventKind::Hypercall:
    case EventKind::DeviceAccess:
    case EventKind::Translation:
      return TimelineLane::Monitor;
    case EventKind::GuestHalt:
      return TimelineLane::Halted;
    case EventKind::InterruptInjection:
      return lane_of(events.to(event));
    case EventKind::Count:
      break;
  }
  return TimelineLane::Vmm;
}

QString event_description(const TraceModel& trace, EventIndex event) {
  const EventStore& events = trace.events();
  const Event whole = events.event(event);
  QStringList lines;
  lines << to_qstring(event_kind_name(whole.kind)) + QLatin1Char(' ') +
               QString::fromStdString(event_slice_name(whole));
  lines << QStringLiteral("at %1 µs, lasting %2")
               .arg(microseconds_text(whole.time_ns), duration_text(whole.duration_ns));
  const QString from = to_qstring(privilege_level_name(whole.from));
  const QString to = to_qstring(privilege_level_name(whole.to));
  const QString detail = to_qstring(trace.detail(event));
  switch (whole.kind) {
    case EventKind::VmExit:
      lines << QStringLiteral("from %1").arg(from);
      if (whole.reason == EventReason::IoIn || whole.reason == EventReason::IoOut) {
        lines << QStringLiteral("port %1, %2 byte(s), value %3")
                     .arg(hex_text(whole.address))
                     .arg(whole.size)
                     .arg(hex_text(whole.value));
      } else if (whole.reason == EventReason::MmioRead || whole.reason == EventReason::MmioWrite) {
        lines << QStringLiteral("address %1, %2 byte(s), value %3")
                     .arg(hex_text(whole.address))
                     .arg(whole.size)
                     .arg(hex_text(whole.value));
      }
      break;
    case EventKind::MonitorTrap:
      lines << QStringLiteral("vector %1, %2 -> %3").arg(hex_text(whole.address), from, to);
      break;
    case EventKind::Hypercall:
      lines << QStringLiteral("hypercall %1, argument %2, batch %3, %4 -> %5")
                   .arg(hex_text(whole.address), hex_text(whole.value))
                   .arg(whole.size)
                   .arg(from, to);
      break;
    case EventKind::InterruptInjection:
      lines << QStringLiteral("vector %1 into %2").arg(hex_text(whole.address), to);
      break;
    case EventKind::DeviceAccess:
    case EventKind::IommuFault:
      lines << QStringLiteral("address %1, value %2")
                   .arg(hex_text(whole.address), hex_text(whole.value));
      break;
    case EventKind::Translation:
      lines << QStringLiteral("guest %1, translation cache %2, size %3")
                   .arg(hex_text(whole.address), hex_text(whole.value))
                   .arg(whole.size);
      break;
    case EventKind::GuestHalt:
      lines << QStringLiteral("the vCPU asleep in hlt, waiting for an interrupt");
      break;
    case EventKind::Count:
      break;
  }
  if (!detail.isEmpty()) lines << QStringLiteral("instruction: %1").arg(detail);
  if (whole.guest_rip != 0) lines << QStringLiteral("guest RIP %1").arg(hex_text(whole.guest_rip));
  lines << QStringLiteral("event #%1").arg(event);
  return lines.join(QLatin1Char('\n'));
}

}  // namespace vmlab::viz
