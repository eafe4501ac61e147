// Moving the deprivileged guest's state between the monitor and KVM's
// sync-regs area (kvm_run.s.regs), shared by the modes that run a guest
// kernel at CPL3 on the monitor region (full, para).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "vmlab/cpu_mode.hpp"
#include "vmlab/events.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/monitor/monitor_error.hpp"
#include "vmlab/monitor/monitor_region.hpp"
#include "vmlab/result.hpp"

namespace vmlab::monitor {

// What running a guest kernel deprivileged on the monitor needs of KVM and
// the board, for prepare() to check first: the sync-regs area for registers
// and special registers (MonitorError::kMissingKvmCapability), and interrupts
// the VMM's own controller raises (kNeedsVmmIrqchip). `mode` is the --cpu
// value the messages name.
Status check_monitor_support(ModeContext& context, std::string_view mode);

// General-purpose registers, RIP, RSP and RFLAGS as KVM synced them.
void capture_registers(GuestRegisters& registers, const kvm_regs& real);
// The same back, except RFLAGS, whose IF and IOPL each mode decides.
void store_registers(kvm_regs& real, const GuestRegisters& registers);

// A flat 64-bit code or data segment with the selector's RPL as its DPL.
kvm_segment flat_segment(std::uint16_t selector, bool code);

// The real GDT, IDT, TSS and (no) LDT of the monitor region.
void load_monitor_tables(kvm_sregs& special);

// STAR, LSTAR and FMASK so that a SYSCALL at any level lands in the
// monitor's SYSCALL stub at CPL0 with IF, TF and DF clear.
Status route_syscall_to_monitor(Vcpu& vcpu);

// The first entry goes through the ioctls (the sync-regs area holds nothing
// valid before the first exit); `fill` writes the guest's state into
// kvm_run's sync-regs area as every later resume does.
Status enter_first_time(Vcpu& vcpu, const std::function<Status()>& fill);

// One monitor trap or hypercall, handled in the VMM process on the guest's
// behalf: recorded, and its time counted as the monitor's (its logic runs in
// the VMM process, but it is the monitor's work, not device or exit handling).
struct MonitorEventRecord {
  EventKind kind = EventKind::MonitorTrap;
  EventReason reason = EventReason::Unknown;
  std::uint64_t address = 0;  // vector or hypercall number
  std::uint64_t value = 0;    // guest RIP or first argument
  std::uint32_t batch = 1;    // requests in a batched hypercall
  std::uint64_t guest_rip = 0;
  std::uint8_t cpl_before = 0;  // virtual CPL: 0 kernel, 3 user
  std::uint8_t cpl_after = 0;
  std::uint64_t start_ns = 0;
  std::string_view detail;  // kept only when tracing
};
void record_monitor_event(ModeContext& context, const MonitorEventRecord& record);

// "#PF", "#GP", ... (Intel SDM vol. 3A, table 6-1), or "vector N".
std::string exception_name(std::uint8_t vector);

// The monitor stub behind `exit`, when the exit is a stub's write to the
// monitor port at CPL0; empty for an exit that is not the monitor's; an
// error (MonitorError::kStrayMonitorPortWrite) for a CPL0 write to the port
// from outside the stubs.
Result<std::optional<StubHit>> trapping_stub(const VcpuExit& exit, const kvm_run& run);

}  // namespace vmlab::monitor
