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
#include "vmlab/monitor/census.hpp"
#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/monitor/region_memory.hpp"

namespace vmlab::full {

// From the monitor every software technique shares (modes/monitor/).
using monitor::Event;
using monitor::GuestRegisters;
using monitor::VirtualCpu;

class MonitorServices;
class ShadowPager;
struct ShadowPagerConfig;

struct FullModeOptions {
  // Set CR4.UMIP for the guest, so sgdt/sidt/sldt/str/smsw at CPL3 fault
  // and are emulated instead of revealing the real tables (closes holes).
  bool umip = false;
  // The KVM backend runs a user SYSCALL at CPL3 (kvm_pvm): treat the fetch
  // fault at the SYSCALL stub as the system call. Off on VT-x and AMD-V,
  // where SYSCALL reaches the stub and such a fault is the guest's own.
  bool syscall_arrives_as_page_fault = false;
  // The instruction census (InstructionCensus): the real TF stays set while
  // the guest runs, so each instruction that retires raises #DB into the
  // monitor's stub, which counts it by the virtual mode and resumes. The
  // guest's saved RFLAGS show the TF (its iretq and popf then keep
  // stepping); every #DB is taken for a step, so a census run is for
  // workloads that raise none of their own.
  bool census = false;
};

class FullMode : public CpuMode {
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
  std::optional<InstructionCensus> census() const override;
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

 protected:
  // What a technique built on this monitor changes (bt, modes/bt/). Each
  // hook's default is what trap-and-emulate does.
  //
  // Before the shadow pager is created: add to its configuration (and map
  // memory it will need).
  virtual Status configure_shadow(ModeContext& context, ShadowPagerConfig& config);
  // The shadow pager exists; the guest has not run yet.
  virtual Status start_technique(ModeContext& context);
  // After an exit, before anything reads the virtual CPU: bring into it what
  // the guest changed without a trap.
  virtual void synchronize_virtual_cpu() {}
  // Just before the registers go back to the vCPU: where the guest resumes
  // (registers().rip may be changed, the virtual CPU stays the guest's).
  virtual Status place_guest(ModeContext& context);
  // A trap from the guest (vector, error code), the registers as the trap
  // frame has them: handled here (a disposition), or nullopt for the
  // monitor's own handling.
  virtual std::optional<ExitDisposition> intercept_trap(ModeContext& context, std::uint8_t vector,
                                                        std::optional<std::uint32_t> error_code);
  // Makes registers() the guest's own where the real ones are not (an
  // exception or interrupt is about to be reflected, an instruction emulated).
  virtual Status make_state_precise() { return {}; }
  // The guest wrote CR3 with a new value (after the shadow pager heard of it).
  virtual void address_space_changed() {}

  // For those hooks.
  GuestRegisters& registers() { return m_registers; }
  VirtualCpu& cpu() { return m_cpu; }
  ShadowPager& shadow() { return *m_shadow; }
  MonitorServices& services();
  const FullModeOptions& options() const { return m_options; }
  // Writes registers() and the virtual CPU's segments back for the next entry.
  Status resume_guest(ModeContext& context);
  // The monitor's handling of a trap (emulation, reflection, shadow faults),
  // with registers() at the instruction.
  // `emulated_as` names an emulated instruction's event (bt: a call-out).
  ExitDisposition handle_trap(ModeContext& context, std::uint8_t vector,
                              std::optional<std::uint32_t> error_code,
                              EventReason emulated_as = EventReason::PrivilegedInstruction);
  // Makes the vCPU drop what it derived from the shadow tables if they lost
  // rights since (resume_guest does it too).
  Status flush_if_requested(Vm& vm);
  ExitDisposition handle_system_call(ModeContext& context);
  // Delivers an exception to the guest kernel at registers(): false and
  // `failure` set if it cannot take it.
  bool reflect_exception(const Event& event, std::string& failure);
  void begin_interrupt_shadow() { m_interrupt_shadow = true; }
  void record_trap(ModeContext& context, EventReason reason, std::uint8_t vector,
                   std::uint64_t guest_rip, std::uint8_t cpl_before, std::uint64_t start_ns,
                   std::string_view detail);

 private:
  class Services;
  enum class View { Kernel, User };

  View view() const { return m_cpu.cpl == 0 ? View::Kernel : View::User; }
  void capture_guest_state(const kvm_run& run);
  Status map_shadow_pool(Vm& vm);
  Status flush_translations(Vm& vm);

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
  monitor::InstructionCounter m_census;  // FullModeOptions::census
};

}  // namespace vmlab::full
