#include "vmlab/monitor/vcpu_state.hpp"

#include <algorithm>
#include <array>
#include <iterator>
#include <variant>

#include "vmlab/format.hpp"
#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/monitor_region.hpp"

namespace vmlab::monitor {

Status check_monitor_support(ModeContext& context, std::string_view mode) {
  constexpr unsigned kNeeded = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
  if ((static_cast<unsigned>(context.vm.check_extension(KVM_CAP_SYNC_REGS)) & kNeeded) != kNeeded) {
    return Error{MonitorError::kMissingKvmCapability,
                 "--cpu " + std::string(mode) +
                     " needs KVM_CAP_SYNC_REGS (registers and special registers), which this "
                     "KVM lacks"};
  }
  if (context.board.interrupt_controller() == nullptr) {
    return Error{MonitorError::kNeedsVmmIrqchip,
                 "--cpu " + std::string(mode) + " delivers interrupts itself: use --irqchip vmm"};
  }
  return {};
}

namespace {

// The registers the guest and KVM's sync-regs area share, one to one (RFLAGS
// is each mode's to translate, see store_registers).
struct RegisterPair {
  std::uint64_t GuestRegisters::*guest;
  __u64 kvm_regs::*real;
};
constexpr std::array<RegisterPair, 17> kSharedRegisters{{
    {&GuestRegisters::rax, &kvm_regs::rax},
    {&GuestRegisters::rbx, &kvm_regs::rbx},
    {&GuestRegisters::rcx, &kvm_regs::rcx},
    {&GuestRegisters::rdx, &kvm_regs::rdx},
    {&GuestRegisters::rsi, &kvm_regs::rsi},
    {&GuestRegisters::rdi, &kvm_regs::rdi},
    {&GuestRegisters::rbp, &kvm_regs::rbp},
    {&GuestRegisters::rsp, &kvm_regs::rsp},
    {&GuestRegisters::r8, &kvm_regs::r8},
    {&GuestRegisters::r9, &kvm_regs::r9},
    {&GuestRegisters::r10, &kvm_regs::r10},
    {&GuestRegisters::r11, &kvm_regs::r11},
    {&GuestRegisters::r12, &kvm_regs::r12},
    {&GuestRegisters::r13, &kvm_regs::r13},
    {&GuestRegisters::r14, &kvm_regs::r14},
    {&GuestRegisters::r15, &kvm_regs::r15},
    {&GuestRegisters::rip, &kvm_regs::rip},
}};

}  // namespace

void capture_registers(GuestRegisters& registers, const kvm_regs& real) {
  for (const RegisterPair& pair : kSharedRegisters)
    registers.*pair.guest = real.*pair.real;
  registers.rflags = real.rflags;
}

void store_registers(kvm_regs& real, const GuestRegisters& registers) {
  for (const RegisterPair& pair : kSharedRegisters)
    real.*pair.real = registers.*pair.guest;
}

kvm_segment flat_segment(std::uint16_t selector, bool code) {
  kvm_segment segment{};
  segment.base = 0;
  segment.limit = 0xffffffff;
  segment.selector = selector;
  segment.type = code ? 0xb : 0x3;  // execute/read or read/write, accessed
  segment.present = 1;
  segment.dpl = static_cast<std::uint8_t>(selector & 3);
  segment.db = code ? 0 : 1;
  segment.s = 1;
  segment.l = code ? 1 : 0;
  segment.g = 1;
  return segment;
}

void load_monitor_tables(kvm_sregs& special) {
  special.gdt.base = monitor_virtual(kGdtOffset).value();
  special.gdt.limit = kGdtLimit;
  special.idt.base = monitor_virtual(kIdtOffset).value();
  special.idt.limit = 256 * 16 - 1;
  special.tr = kvm_segment{};
  special.tr.base = monitor_virtual(kTssOffset).value();
  special.tr.limit = 0x67;
  special.tr.selector = kTssSelector;
  special.tr.type = 0xb;  // busy 64-bit TSS
  special.tr.present = 1;
  special.ldt = kvm_segment{};
  special.ldt.unusable = 1;
}

Status route_syscall_to_monitor(Vcpu& vcpu) {
  const Vcpu::Msr msrs[] = {
      {kMsrStar, std::uint64_t{kMonitorCodeSelector} << 32},
      {kMsrLstar, monitor_virtual(kSyscallStubOffset).value()},
      {kMsrFmask, kRflagsInterrupt | kRflagsTrap | kRflagsDirection},
  };
  return vcpu.set_msrs(msrs);
}

Status enter_first_time(Vcpu& vcpu, const std::function<Status()>& fill) {
  auto current = vcpu.special_registers();
  if (!current) return current.error();
  kvm_run& run = vcpu.run_state();
  run.s.regs.sregs = *current;
  if (auto status = fill(); !status) return status;
  run.kvm_dirty_regs = 0;
  if (auto status = vcpu.set_special_registers(run.s.regs.sregs); !status) return status;
  return vcpu.set_registers(run.s.regs.regs);
}

void record_monitor_event(ModeContext& context, const MonitorEventRecord& record) {
  auto level = [](std::uint8_t cpl) {
    return cpl == 0 ? PrivilegeLevel::GuestKernel : PrivilegeLevel::GuestUser;
  };
  vmlab::Event event;
  event.kind = record.kind;
  event.reason = record.reason;
  event.address = record.address;
  event.value = record.value;
  event.size = static_cast<std::uint16_t>(std::min<std::uint32_t>(record.batch, 0xffff));
  event.guest_rip = record.guest_rip;
  // Only a trace shows details; counting alone keeps no text.
  if (context.recorder.recording()) event.detail = context.recorder.intern(record.detail);
  event.time_ns = record.start_ns;
  event.duration_ns = context.elapsed_ns() - record.start_ns;
  context.recorder.add_time(PrivilegeLevel::Monitor, event.duration_ns);
  event.from = level(record.cpl_before);
  event.to = level(record.cpl_after);
  context.recorder.record(event);
}

std::string exception_name(std::uint8_t vector) {
  static constexpr const char* kNames[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
                                           "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "15",
                                           "#MF", "#AC", "#MC", "#XM", "#VE", "#CP"};
  if (vector < std::size(kNames)) return kNames[vector];
  return "vector " + std::to_string(vector);
}

Result<std::optional<StubHit>> trapping_stub(const VcpuExit& exit, const kvm_run& run) {
  const auto* io = std::get_if<exits::PortOut>(&exit);
  if (io == nullptr || io->port != IoPort(kMonitorPort) || run.s.regs.sregs.cs.dpl != 0) {
    return std::optional<StubHit>();
  }
  auto hit = stub_at(GuestVirtAddr(run.s.regs.regs.rip));
  if (!hit) {
    return Error{MonitorError::kStrayMonitorPortWrite, "the monitor port was written at rip " +
                                                           hex(run.s.regs.regs.rip) +
                                                           ", outside the monitor's stubs"};
  }
  return hit;
}

}  // namespace vmlab::monitor
