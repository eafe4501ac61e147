#include "vmlab/events.hpp"

#include <cstdio>

namespace vmlab {

std::string_view event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::VmExit: return "vm-exit";
    case EventKind::InterruptInjection: return "interrupt-injection";
    case EventKind::DeviceAccess: return "device-access";
    case EventKind::GuestHalt: return "guest-halt";
    case EventKind::Count: break;
  }
  return "?";
}

std::string_view privilege_level_name(PrivilegeLevel level) {
  switch (level) {
    case PrivilegeLevel::Vmm: return "vmm";
    case PrivilegeLevel::Monitor: return "monitor";
    case PrivilegeLevel::GuestKernel: return "guest-kernel";
    case PrivilegeLevel::GuestUser: return "guest-user";
    case PrivilegeLevel::Unknown: return "unknown";
  }
  return "?";
}

std::string_view event_reason_name(EventReason reason) {
  switch (reason) {
    case EventReason::IoIn: return "io-in";
    case EventReason::IoOut: return "io-out";
    case EventReason::MmioRead: return "mmio-read";
    case EventReason::MmioWrite: return "mmio-write";
    case EventReason::Halt: return "hlt";
    case EventReason::Interrupted: return "interrupted";
    case EventReason::InterruptWindowOpen: return "irq-window-open";
    case EventReason::Shutdown: return "shutdown";
    case EventReason::FailEntry: return "fail-entry";
    case EventReason::InternalError: return "internal-error";
    case EventReason::SystemEvent: return "system-event";
    case EventReason::Debug: return "debug";
    case EventReason::Unknown: return "unknown";
    case EventReason::ExternalInterrupt: return "external-interrupt";
    case EventReason::Count: break;
  }
  return "?";
}

std::uint64_t EventRecorder::count(EventKind kind) const {
  std::uint64_t total = 0;
  for (auto value : m_counts[static_cast<std::size_t>(kind)]) total += value;
  return total;
}

std::vector<Event> EventRecorder::events() const {
  std::vector<Event> kept;
  if (m_ring.empty()) return kept;
  const std::uint64_t first = dropped();
  kept.reserve(static_cast<std::size_t>(m_next - first));
  for (std::uint64_t index = first; index < m_next; ++index) kept.push_back(m_ring[index % m_ring.size()]);
  return kept;
}

void write_trace(std::ostream& out, const EventRecorder& recorder, std::string_view platform_line,
                 std::string_view run_description) {
  out << "# vmlab-trace 1\n";
  out << "# " << platform_line << "\n";
  out << "# run: " << run_description << "\n";
  out << "# events: " << recorder.recorded() << " recorded, " << recorder.dropped()
      << " dropped (ring full)\n";
  out << "# time_ns\tduration_ns\tvcpu\tkind\treason\tfrom\tto\tguest_rip\taddress\tsize\tvalue\n";
  char line[256];
  for (const auto& event : recorder.events()) {
    std::snprintf(line, sizeof line, "%llu\t%llu\t%u\t%.*s\t%.*s\t%.*s\t%.*s\t%#llx\t%#llx\t%u\t%#llx\n",
                  static_cast<unsigned long long>(event.time_ns),
                  static_cast<unsigned long long>(event.duration_ns), event.vcpu,
                  static_cast<int>(event_kind_name(event.kind).size()), event_kind_name(event.kind).data(),
                  static_cast<int>(event_reason_name(event.reason).size()),
                  event_reason_name(event.reason).data(),
                  static_cast<int>(privilege_level_name(event.from).size()),
                  privilege_level_name(event.from).data(),
                  static_cast<int>(privilege_level_name(event.to).size()),
                  privilege_level_name(event.to).data(),
                  static_cast<unsigned long long>(event.guest_rip),
                  static_cast<unsigned long long>(event.address), event.size,
                  static_cast<unsigned long long>(event.value));
    out << line;
  }
}

}  // namespace vmlab
