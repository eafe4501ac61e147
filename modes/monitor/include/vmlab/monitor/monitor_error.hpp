// Why the monitor every software technique shares failed (STYLE.md 6): its
// trap frames, its stubs, and what it needs of the host. A guest that cannot
// take an event is not the monitor's failure: deliver_event reports that as
// ModeError::kGuestTripleFault (vmlab/cpu_mode.hpp).
#pragma once

#include "vmlab/result.hpp"

namespace vmlab::monitor {

// Found by argument-dependent lookup when a kind converts to std::error_code
// (the kinds live in this namespace, the function in vmlab).
using vmlab::make_error_code;

enum class MonitorError {
  kBadTrapFrame = 1,  // a stub's stack pointer is off the monitor stack, or its frame unreadable
  kMonitorFault,      // the trap came from CPL0: the monitor itself faulted
  kStrayMonitorPortWrite,  // CPL0 code outside the stubs wrote the monitor port
  kMissingKvmCapability,   // this KVM lacks what resuming the guest needs (KVM_CAP_SYNC_REGS)
  kNeedsVmmIrqchip,        // the monitor delivers interrupts: the board needs --irqchip vmm
};

constexpr const char* error_domain(MonitorError) {
  return "monitor";
}

}  // namespace vmlab::monitor

VMLAB_ERROR_KINDS(vmlab::monitor::MonitorError);
