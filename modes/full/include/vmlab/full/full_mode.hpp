// Trap-and-emulate (DESIGN.md 1): the unmodified guest kernel runs at CPL3.
// Its privileged instructions fault into one-instruction CPL0 stubs in the
// monitor region, which exit to the VMM through the monitor port; the monitor
// logic here decodes and emulates them against a virtual CPU, reflects
// exceptions, system calls and interrupts into the guest kernel as the
// hardware would, and keeps shadow page tables in step with the guest's.
//
// Resuming the guest: where a classic monitor's stub would pop registers and
// iretq, this one writes the guest's registers and segments into KVM's
// sync-regs area (kvm_run.s.regs, kvm_dirty_regs), which KVM loads on the next
// KVM_RUN. Same effect, without executing CPL0 instructions that a software
// KVM backend must emulate one by one (PLATFORM.md).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "vmlab/cpu_mode.hpp"
#include "vmlab/events.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/monitor/region_memory.hpp"

namespace vmlab::full {

// From the monitor every software technique shares (modes/monitor/).
using monitor::GuestRegisters;
using monitor::VirtualCpu;

class ShadowPager;

struct FullModeOptions {
  // Set CR4.UMIP for the guest, so sgdt/sidt/sldt/str/smsw at CPL3 fault
  // and are emulated instead of revealing the real tables (closes holes).
  bool umip = false;
  // The KVM backend runs a user SYSCALL at CPL3 (kvm_pvm): treat the fetch
  // fault at the SYSCALL stub as the system call. Off on VT-x and AMD-V,
  // where SYSCALL reaches the stub and such a fault is the guest's own.
  bool syscall_arrives_as_page_fault = false;
};

class FullMode final : public CpuMode {
 public:
  explicit FullMode(FullModeOptions options = {});
  ~FullMode() override;

  std::string_view name() const override { return "full"; }
  Status prepare(ModeContext& context, const LoadedImage& image) override;
  Result<Injection> deliver_interrupts(ModeContext& context) override;
  ExitDisposition handle_exit(ModeContext& context, const VcpuExit& exit) override;

  // The GDT, IDT, TSS and stubs compared with what prepare() wrote (the
  // present bits of the two user descriptors and the TSS busy bit excepted,
  // which the monitor itself changes), and the rest of the region below the
  // shadow pool, the stacks excepted, still zero as prepare() left it.
  std::optional<std::string> integrity_violation() const override;
  // Every exit happens in a CPL0 stub: the level is the guest's virtual one.
  PrivilegeLevel level_at_exit(const kvm_run&) const override {
    return m_cpu.cpl == 0 ? PrivilegeLevel::GuestKernel : PrivilegeLevel::GuestUser;
  }
  bool interrupts_enabled(ModeContext&) const override {
    return m_cpu.interrupt_flag || m_cpu.cpl == 3;
  }

  // For tests and reports.
  const VirtualCpu& virtual_cpu() const { return m_cpu; }
  std::uint64_t traps() const { return m_traps; }
  std::uint64_t translation_flushes() const { return m_translation_flushes; }

 private:
  class Services;
  enum class View { Kernel, User };

  View view() const { return m_cpu.cpl == 0 ? View::Kernel : View::User; }
  void capture_guest_state(const kvm_run& run);
  Status map_shadow_pool(Vm& vm);
  Status flush_translations(Vm& vm);
  Status resume_guest(ModeContext& context);
  // One trap: the stub the vCPU stopped in says which.
  ExitDisposition handle_trap(ModeContext& context, std::uint8_t vector,
                              std::optional<std::uint32_t> error_code);
  ExitDisposition handle_system_call(ModeContext& context);
  void record_trap(ModeContext& context, EventReason reason, std::uint8_t vector,
                   std::uint64_t guest_rip, std::uint8_t cpl_before, std::uint64_t start_ns,
                   std::string_view detail);

  FullModeOptions m_options;
  monitor::MonitorRegionMemory m_monitor;
  std::unique_ptr<ShadowPager> m_shadow;
  std::unique_ptr<Services> m_services;
  VirtualCpu m_cpu;
  GuestRegisters m_registers;
  std::uint64_t m_traps = 0;
  std::uint64_t m_guest_ram_size = 0;
  // The one-instruction interrupt shadow after an emulated sti (SDM vol. 3A,
  // 6.8.3): interrupts pending then wait until the guest has executed one
  // more instruction, which the monitor single-steps with the real TF.
  bool m_interrupt_shadow = false;
  bool m_single_stepping = false;
  std::uint64_t m_translation_flushes = 0;
};

}  // namespace vmlab::full
