// The frame a trap into a monitor stub leaves: what the CPU pushed on the
// monitor stack when guest code at CPL3 took an exception through a gate to
// CPL0 (Intel SDM vol. 3A, 6.14.2 and figure 6-9, "IA-32e-Mode Stack Usage
// After Privilege Level Change"): [error code,] RIP, CS, RFLAGS, RSP, SS.
// Every software technique reads it the same way; what it then does with the
// trap is the technique's.
#pragma once

#include <cstdint>
#include <optional>

#include "vmlab/address.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/monitor/monitor_error.hpp"
#include "vmlab/result.hpp"

namespace vmlab::monitor {

struct TrapFrame {
  std::uint8_t vector = 0;
  std::optional<std::uint32_t> error_code;  // for the vectors that push one (SDM 6.15)
  GuestVirtAddr rip{};
  std::uint16_t cs = 0;  // the real selector the guest ran on
  std::uint64_t rflags = 0;
  GuestVirtAddr rsp{};
  std::uint16_t ss = 0;

  std::uint8_t real_cpl() const { return static_cast<std::uint8_t>(cs & 3); }
};

// Reads the frame for `vector` at `monitor_rsp`, the stub's stack pointer
// (monitor-virtual). An error, for the technique to stop the guest with:
// MonitorError::kBadTrapFrame when the stack pointer is outside the monitor
// stack or the frame cannot be read, kMonitorFault when the trap came from
// CPL0 (the monitor itself faulted).
Result<TrapFrame> read_trap_frame(const GuestMemoryAccess& physical, std::uint8_t vector,
                                  GuestVirtAddr monitor_rsp);

// kvm_pvm runs a SYSCALL at CPL3 without entering CPL0 (README.md, "What this
// KVM backend gets wrong"): the fetch of the supervisor-only SYSCALL stub
// faults with RIP = CR2 = LSTAR and a user-mode read error code. Whether
// `frame` is that fault; `cr2` is the vCPU's CR2 at the trap. Elsewhere (VT-x,
// AMD-V) SYSCALL reaches the stub at CPL0 and this never matches.
bool is_syscall_fetch_fault(const TrapFrame& frame, GuestVirtAddr cr2);

}  // namespace vmlab::monitor
