// Moving the deprivileged guest's state between the monitor and KVM's
// sync-regs area (kvm_run.s.regs), shared by the modes that run a guest
// kernel at CPL3 on the monitor region (full, para).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <functional>
#include <string>

#include "vmlab/full/guest_context.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/result.hpp"

namespace vmlab::full {

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

// "#PF", "#GP", ... (Intel SDM vol. 3A, table 6-1), or "vector N".
std::string exception_name(std::uint8_t vector);

}  // namespace vmlab::full
