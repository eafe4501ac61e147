#include "vmlab/events.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>

namespace vmlab {

namespace {

// Names by enum value; the static_asserts keep each table in step with its enum.
constexpr std::string_view kKindNames[] = {
    "vm-exit",       "monitor-trap", "hypercall",   "interrupt-injection",
    "device-access", "iommu-fault",  "translation", "guest-halt",
};
static_assert(std::size(kKindNames) == static_cast<std::size_t>(EventKind::Count));

constexpr std::string_view kLevelNames[] = {"vmm", "monitor", "guest-kernel", "guest-user",
                                            "unknown"};
static_assert(std::size(kLevelNames) == static_cast<std::size_t>(PrivilegeLevel::Count));

constexpr std::string_view kReasonNames[] = {
    "io-in",
    "io-out",
    "mmio-read",
    "mmio-write",
    "hlt",
    "interrupted",
    "irq-window-open",
    "shutdown",
    "fail-entry",
    "internal-error",
    "system-event",
    "debug",
    "unknown",
    "external-interrupt",
    "privileged-instruction",
    "shadow-fill",
    "guest-page-fault",
    "page-table-write",
    "system-call",
    "reflected-exception",
    "call-out",
    "translated-code-write",
    "block-translated",
    "branch-chained",
    "indirect-miss",
    "code-invalidated",
    "hc-set-trap-table",
    "hc-mmu-update",
    "hc-update-va-mapping",
    "hc-new-baseptr",
    "hc-set-gdt",
    "hc-stack-switch",
    "hc-sched-op",
    "hc-iret",
    "hc-console-io",
    "hc-multicall",
    "hc-register-shared-info",
    "hc-set-callbacks",
    "hc-port-io",
    "hc-flush-tlb",
    "hc-unknown",
    "iommu-not-mapped",
    "iommu-read-only",
    "iommu-write-only",
};
static_assert(std::size(kReasonNames) == static_cast<std::size_t>(EventReason::Count));

template <typename Enum, std::size_t N>
std::string_view name_of(const std::string_view (&names)[N], Enum value) {
  const auto index = static_cast<std::size_t>(value);
  return index < N ? names[index] : std::string_view("?");
}

template <typename Enum, std::size_t N>
std::optional<Enum> parse_name(const std::string_view (&names)[N], std::string_view name) {
  for (std::size_t index = 0; index < N; ++index) {
    if (names[index] == name) return static_cast<Enum>(index);
  }
  return std::nullopt;
}

}  // namespace

std::string_view event_kind_name(EventKind kind) {
  return name_of(kKindNames, kind);
}
std::string_view privilege_level_name(PrivilegeLevel level) {
  return name_of(kLevelNames, level);
}
std::string_view event_reason_name(EventReason reason) {
  return name_of(kReasonNames, reason);
}

std::optional<EventKind> parse_event_kind(std::string_view name) {
  return parse_name<EventKind>(kKindNames, name);
}
std::optional<PrivilegeLevel> parse_privilege_level(std::string_view name) {
  return parse_name<PrivilegeLevel>(kLevelNames, name);
}
std::optional<EventReason> parse_event_reason(std::string_view name) {
  return parse_name<EventReason>(kReasonNames, name);
}

std::uint64_t EventRecorder::count(EventKind kind) const {
  std::uint64_t total = 0;
  for (auto value : m_counts[static_cast<std::size_t>(kind)])
    total += value;
  return total;
}

std::vector<Event> EventRecorder::events() const {
  std::vector<Event> kept;
  if (m_ring.empty()) return kept;
  const std::uint64_t first = dropped();
  kept.reserve(static_cast<std::size_t>(m_next - first));
  for (std::uint64_t index = first; index < m_next; ++index)
    kept.push_back(m_ring[index % m_ring.size()]);
  return kept;
}

std::uint32_t EventRecorder::intern(std::string_view text) {
  if (text.empty()) return 0;
  if (auto found = m_detail_index.find(text); found != m_detail_index.end()) return found->second;
  // A guest decides what it executes: cap the table, so odd instructions at
  // many addresses cannot grow it without bound.
  if (m_details.size() >= kMaximumDetails) return intern_overflow();
  // Tabs and newlines would break the trace file's lines and columns.
  std::string cleaned(text);
  for (char& character : cleaned) {
    if (character == '\t' || character == '\n' || character == '\r') character = ' ';
  }
  const auto index = static_cast<std::uint32_t>(m_details.size());
  m_details.push_back(cleaned);
  m_detail_index.emplace(std::string(text), index);
  return index;
}

std::uint32_t EventRecorder::intern_overflow() {
  constexpr std::string_view kOverflow = "(more distinct details than the trace keeps)";
  if (auto found = m_detail_index.find(kOverflow); found != m_detail_index.end()) {
    return found->second;
  }
  const auto index = static_cast<std::uint32_t>(m_details.size());
  m_details.emplace_back(kOverflow);
  m_detail_index.emplace(std::string(kOverflow), index);
  return index;
}

void write_trace_preamble(std::ostream& out, std::string_view platform_line,
                          std::string_view run_description) {
  out << "# vmlab-trace 2\n";
  out << "# " << platform_line << "\n";
  out << "# run: " << run_description << "\n";
}

void write_trace_counts(std::ostream& out, std::uint64_t recorded, std::uint64_t dropped,
                        std::string_view dropped_because) {
  out << "# events: " << recorded << " recorded, " << dropped << " dropped (" << dropped_because
      << ")\n";
}

void write_trace_levels(std::ostream& out, const EventRecorder& recorder) {
  out << "# levels:";
  for (std::size_t index = 0; index < static_cast<std::size_t>(PrivilegeLevel::Count); ++index) {
    const auto level = static_cast<PrivilegeLevel>(index);
    out << " " << privilege_level_name(level) << "=" << recorder.time_ns(level);
  }
  out << " halted=" << recorder.halted_ns() << "\n";
}

void write_trace_columns(std::ostream& out) {
  out << "# time_ns\tduration_ns\tvcpu\tkind\treason\tfrom\tto\tguest_rip\taddress\tsize\tvalue\t"
         "detail\n";
}

void append_trace_line(std::string& out, const Event& event, std::string_view detail) {
  char line[256];
  const int length = std::snprintf(
      line, sizeof line, "%llu\t%llu\t%u\t%.*s\t%.*s\t%.*s\t%.*s\t%#llx\t%#llx\t%u\t%#llx\t",
      static_cast<unsigned long long>(event.time_ns),
      static_cast<unsigned long long>(event.duration_ns), event.vcpu,
      static_cast<int>(event_kind_name(event.kind).size()), event_kind_name(event.kind).data(),
      static_cast<int>(event_reason_name(event.reason).size()),
      event_reason_name(event.reason).data(),
      static_cast<int>(privilege_level_name(event.from).size()),
      privilege_level_name(event.from).data(),
      static_cast<int>(privilege_level_name(event.to).size()),
      privilege_level_name(event.to).data(), static_cast<unsigned long long>(event.guest_rip),
      static_cast<unsigned long long>(event.address), event.size,
      static_cast<unsigned long long>(event.value));
  // The fields' widest spellings fit in the buffer with room to spare.
  out.append(line, std::min(static_cast<std::size_t>(std::max(length, 0)), sizeof line - 1));
  out.append(detail);
  out.push_back('\n');
}

void write_trace(std::ostream& out, const EventRecorder& recorder, std::string_view platform_line,
                 std::string_view run_description) {
  write_trace_preamble(out, platform_line, run_description);
  write_trace_counts(out, recorder.recorded(), recorder.dropped(), "ring full");
  write_trace_levels(out, recorder);
  write_trace_columns(out);
  std::string line;
  for (const auto& event : recorder.events()) {
    line.clear();
    append_trace_line(line, event, recorder.detail(event.detail));
    out << line;
  }
}

}  // namespace vmlab
