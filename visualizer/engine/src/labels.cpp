#include "vmlab/viz/labels.hpp"

#include <cstdio>

namespace vmlab::viz {

std::string_view level_title(TimelineLane lane) {
  switch (lane) {
    case TimelineLane::Vmm:
      return "VMM";
    case TimelineLane::Monitor:
      return "Monitor";
    case TimelineLane::GuestKernel:
      return "Guest kernel";
    case TimelineLane::GuestUser:
      return "Guest user";
    case TimelineLane::GuestUnknown:
      return "Guest (level unknown)";
    case TimelineLane::Halted:
      return "Halted";
    case TimelineLane::Count:
      break;
  }
  return "?";
}

std::string duration_words(std::uint64_t nanoseconds) {
  if (nanoseconds < 1000) return std::to_string(nanoseconds) + " ns";
  const double value = static_cast<double>(nanoseconds);
  // Three significant digits in the largest unit the length reaches.
  auto scaled = [](double amount, const char* unit) {
    const int decimals = amount < 10 ? 2 : (amount < 100 ? 1 : 0);
    char text[48];
    std::snprintf(text, sizeof text, "%.*f %s", decimals, amount, unit);
    return std::string(text);
  };
  if (nanoseconds < 1000 * 1000) return scaled(value / 1e3, "µs");
  if (nanoseconds < 1000ull * 1000 * 1000) return scaled(value / 1e6, "ms");
  return scaled(value / 1e9, "s");
}

}  // namespace vmlab::viz
