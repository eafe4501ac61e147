#include "vmlab/viz/models/text.hpp"

#include "vmlab/format.hpp"

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
  const double value = static_cast<double>(nanoseconds);
  if (nanoseconds < 1000) return QStringLiteral("%1 ns").arg(nanoseconds);
  // Three significant digits in the largest unit the length reaches.
  auto scaled = [](double amount, const char* unit) {
    const int decimals = amount < 10 ? 2 : (amount < 100 ? 1 : 0);
    return QStringLiteral("%1 %2").arg(amount, 0, 'f', decimals).arg(QString::fromUtf8(unit));
  };
  if (nanoseconds < 1000 * 1000) return scaled(value / 1e3, "µs");
  if (nanoseconds < 1000ull * 1000 * 1000) return scaled(value / 1e6, "ms");
  return scaled(value / 1e9, "s");
}

QString lane_title(TimelineLane lane) {
  switch (lane) {
    case TimelineLane::Vmm:
      return QStringLiteral("VMM");
    case TimelineLane::Monitor:
      return QStringLiteral("Monitor");
    case TimelineLane::GuestKernel:
      return QStringLiteral("Guest kernel");
    case TimelineLane::GuestUser:
      return QStringLiteral("Guest user");
    case TimelineLane::GuestUnknown:
      return QStringLiteral("Guest (level unknown)");
    case TimelineLane::Halted:
      return QStringLiteral("Halted");
    case TimelineLane::Count:
      break;
  }
  return QStringLiteral("?");
}

QString kind_reason_text(EventKind kind, EventReason reason) {
  return to_qstring(event_kind_name(kind)) + QLatin1Char(' ') +
         to_qstring(event_reason_name(reason));
}

}  // namespace vmlab::viz
