// The one event model (DESIGN.md section 7): every transition the VMM sees is
// a fixed-size record in a ring. Counters by kind and reason are always kept
// (cheap); the ring itself only exists when a trace was asked for.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace vmlab {

enum class EventKind : std::uint8_t {
  VmExit,              // an exit KVM passed up to the VMM
  MonitorTrap,         // a trap into the in-guest monitor (full, bt, para modes)
  Hypercall,           // a paravirtual guest's call into the monitor
  InterruptInjection,  // the VMM delivered an interrupt vector
  DeviceAccess,        // a device model did work on the guest's behalf
  IommuFault,          // a DMA the IOMMU model blocked
  Translation,         // the binary translator produced a block
  GuestHalt,           // the vCPU thread slept waiting for an interrupt
  Count,
};

// Who was running: the VMM process, the monitor inside the VM (CPL0 stubs of
// the software modes), the guest kernel, guest user code.
enum class PrivilegeLevel : std::uint8_t { Vmm, Monitor, GuestKernel, GuestUser, Unknown, Count };

std::string_view event_kind_name(EventKind kind);
std::string_view privilege_level_name(PrivilegeLevel level);

// Reasons: exit reasons for VmExit, device names for DeviceAccess; stable small
// integers so the record stays fixed-size. The names table lives in events.cpp.
enum class EventReason : std::uint8_t {
  IoIn,
  IoOut,
  MmioRead,
  MmioWrite,
  Halt,
  Interrupted,
  InterruptWindowOpen,
  Shutdown,
  FailEntry,
  InternalError,
  SystemEvent,
  Debug,
  Unknown,
  ExternalInterrupt,  // InterruptInjection reason
  // MonitorTrap reasons (address = vector, value = guest RIP):
  PrivilegedInstruction,  // emulated against the virtual CPU
  ShadowFill,             // a shadow page-table entry was built
  GuestPageFault,         // a #PF reflected to the guest kernel
  PageTableWrite,         // the guest wrote its own page tables
  SystemCall,             // a user SYSCALL reflected to the guest kernel
  ReflectedException,     // any other exception reflected to the guest kernel
  // bt (MonitorTrap):
  CallOut,              // translated code asked the monitor to carry out an instruction
  TranslatedCodeWrite,  // the guest wrote a page holding translated code
  // bt (Translation; address = guest RIP, value = TC address):
  BlockTranslated,  // a basic block went into the translation cache (size = its instructions)
  BranchChained,    // a direct branch now jumps straight to its target's block
  IndirectMiss,     // an indirect branch's target was not in the lookup table
  CodeInvalidated,  // translations dropped (address = guest frame, size = blocks)
  // Hypercall reasons, one per call of abi/vmlab/hypercall.h in its
  // numbering (address = number, value = first argument, size = batch size):
  HypercallSetTrapTable,
  HypercallMmuUpdate,
  HypercallUpdateVaMapping,
  HypercallNewBaseptr,
  HypercallSetGdt,
  HypercallStackSwitch,
  HypercallSchedOp,
  HypercallIret,
  HypercallConsoleIo,
  HypercallMulticall,
  HypercallRegisterSharedInfo,
  HypercallSetCallbacks,
  HypercallPortIo,
  HypercallFlushTlb,
  HypercallUnknown,  // a number the ABI does not define
  // IommuFault reasons (address = I/O virtual address of the first blocked
  // byte, value = 1 if the device was writing memory, 0 if reading it):
  IommuNotMapped,  // no I/O page-table entry (or outside RAM with --iommu off)
  IommuReadOnly,   // a write to a page mapped or protected read-only
  IommuWriteOnly,  // a read of a page mapped write-only
  Count,
};

std::string_view event_reason_name(EventReason reason);

std::optional<EventKind> parse_event_kind(std::string_view name);
std::optional<PrivilegeLevel> parse_privilege_level(std::string_view name);
std::optional<EventReason> parse_event_reason(std::string_view name);

struct Event {
  std::uint64_t time_ns = 0;      // since the run started
  std::uint64_t duration_ns = 0;  // time spent in the VMM handling it
  std::uint64_t guest_rip = 0;    // 0 when not fetched (tracing off)
  std::uint64_t address = 0;      // port, MMIO address, or vector
  std::uint64_t value = 0;        // data written/read (first 8 bytes)
  std::uint32_t vcpu = 0;
  std::uint32_t detail = 0;  // text from the recorder's detail table (a mnemonic); 0 = none
  std::uint16_t size = 0;    // access width in bytes
  EventKind kind = EventKind::VmExit;
  EventReason reason = EventReason::Unknown;
  PrivilegeLevel from = PrivilegeLevel::Unknown;
  PrivilegeLevel to = PrivilegeLevel::Unknown;
};

// Sees every event as it is recorded, on the thread that records it (the
// vCPU's): `vmlab run --live` streams them (live_trace.hpp). `detail` is
// the event's interned text, valid for the call.
class EventObserver {
 public:
  virtual ~EventObserver() = default;
  virtual void observe(const Event& event, std::string_view detail) = 0;
};

class EventRecorder {
 public:
  // capacity 0: count only, keep no records.
  explicit EventRecorder(std::size_t capacity = 0, EventObserver* observer = nullptr)
      : m_ring(capacity), m_observer(observer) {}

  bool recording() const { return !m_ring.empty(); }
  void record(const Event& event) {
    ++m_counts[static_cast<std::size_t>(event.kind)][static_cast<std::size_t>(event.reason)];
    if (m_observer != nullptr) m_observer->observe(event, detail(event.detail));
    if (m_ring.empty()) return;
    m_ring[m_next % m_ring.size()] = event;
    ++m_next;
  }

  // A short text for Event::detail (a decoded mnemonic), stored once and
  // referred to by index, so events stay fixed-size. Index 0 is "no detail".
  std::uint32_t intern(std::string_view text);
  std::string_view detail(std::uint32_t index) const {
    return index < m_details.size() ? std::string_view(m_details[index]) : std::string_view();
  }
  const std::vector<std::string>& details() const { return m_details; }

  // Time the vCPU spent running at a level (guest time between entry and
  // exit, attributed to the level the guest was at when it exited).
  void add_time(PrivilegeLevel level, std::uint64_t nanoseconds) {
    m_time_ns[static_cast<std::size_t>(level)] += nanoseconds;
  }
  std::uint64_t time_ns(PrivilegeLevel level) const {
    return m_time_ns[static_cast<std::size_t>(level)];
  }
  // Time the vCPU thread slept in hlt, waiting for an interrupt.
  void add_halted_time(std::uint64_t nanoseconds) { m_halted_ns += nanoseconds; }
  std::uint64_t halted_ns() const { return m_halted_ns; }

  std::uint64_t count(EventKind kind, EventReason reason) const {
    return m_counts[static_cast<std::size_t>(kind)][static_cast<std::size_t>(reason)];
  }
  std::uint64_t count(EventKind kind) const;
  std::uint64_t recorded() const { return m_next; }
  std::uint64_t dropped() const { return m_next > m_ring.size() ? m_next - m_ring.size() : 0; }
  // The kept records, oldest first.
  std::vector<Event> events() const;

 private:
  using ReasonCounts = std::array<std::uint64_t, static_cast<std::size_t>(EventReason::Count)>;
  std::array<ReasonCounts, static_cast<std::size_t>(EventKind::Count)> m_counts{};
  std::array<std::uint64_t, static_cast<std::size_t>(PrivilegeLevel::Count)> m_time_ns{};
  std::uint64_t m_halted_ns = 0;
  std::vector<Event> m_ring;
  EventObserver* m_observer;
  std::uint64_t m_next = 0;
  static constexpr std::size_t kMaximumDetails = 4096;
  std::uint32_t intern_overflow();
  std::vector<std::string> m_details{std::string()};
  std::map<std::string, std::uint32_t, std::less<>> m_detail_index;
};

// The trace file format, version 2 (documented in README.md, "Trace file format"):
// '#' header lines, then one tab-separated line per event.
//
// The lines before the events: the version, the platform and the run.
void write_trace_preamble(std::ostream& out, std::string_view platform_line,
                          std::string_view run_description);
// The event counts and the level times: before the events in a file
// written at the end of a run, after them in a live one (the reader takes
// them anywhere).
void write_trace_counts(std::ostream& out, std::uint64_t recorded, std::uint64_t dropped,
                        std::string_view dropped_because);
void write_trace_levels(std::ostream& out, const EventRecorder& recorder);
// The column names, a comment line.
void write_trace_columns(std::ostream& out);
// One event's line, with its end of line, appended to `out`.
void append_trace_line(std::string& out, const Event& event, std::string_view detail);
// A whole trace of what `recorder` kept.
void write_trace(std::ostream& out, const EventRecorder& recorder, std::string_view platform_line,
                 std::string_view run_description);

}  // namespace vmlab
