// Paravirtualization, Xen style (DESIGN.md 1, 4, 5): the guest kernel runs at
// CPL3 like in `full`, but knows it: the boot protocol told it so
// (boot_info.paravirtual_abi, as a Xen PV domain's start_info) and it replaced its privileged
// operations with hypercalls (a `syscall` in virtual kernel mode) and plain stores to a shared
// page. Its own page tables are the real ones (direct paging), validated by the monitor on every
// change; there are no shadow tables and no instruction emulation.
//
// The monitor region (GDT, IDT, TSS, CPL0 stubs) is the one `full` uses; the
// validator puts it into PML4 slot 511 of every root the guest pins.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmlab/cpu_mode.hpp"
#include "vmlab/monitor/census.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/monitor/page_walker.hpp"
#include "vmlab/monitor/region_memory.hpp"
#include "vmlab/para/hypercalls.hpp"
#include "vmlab/para/page_table_validator.hpp"
#include "vmlab/para/para_error.hpp"

namespace vmlab::para {

struct ParaModeOptions {
  // The KVM backend runs a SYSCALL at CPL3 (kvm_pvm): the fetch fault at the
  // SYSCALL stub is the syscall (see FullModeOptions).
  bool syscall_arrives_as_page_fault = false;
  bool census = false;  // as FullModeOptions
};

class ParaMode final : public CpuMode {
 public:
  explicit ParaMode(ParaModeOptions options = {});
  ~ParaMode() override;

  std::string_view name() const override { return "para"; }
  std::uint32_t paravirtual_abi() const override { return VMLAB_PARA_ABI_VERSION; }
  Status prepare(ModeContext& context, const LoadedImage& image) override;
  Result<Injection> deliver_interrupts(ModeContext& context) override;
  ExitDisposition handle_exit(ModeContext& context, const VcpuExit& exit) override;
  std::optional<std::string> integrity_violation() const override;
  std::optional<InstructionCensus> census() const override;
  PrivilegeLevel level_at_exit(const kvm_run&) const override {
    return m_state.cpl == 0 ? PrivilegeLevel::GuestKernel : PrivilegeLevel::GuestUser;
  }
  bool interrupts_enabled(ModeContext&) const override;

  const ParaState& state() const { return m_state; }
  std::uint64_t hypercalls() const { return m_hypercalls; }
  std::uint64_t traps() const { return m_traps; }

 private:
  class Environment;

  Status build_page_tables();
  void capture_guest_state(const kvm_run& run);
  Status resume_guest(ModeContext& context);
  // Builds the native exception frame on the guest kernel's stack and enters
  // the handler its trap table names for the vector.
  Status deliver(std::uint8_t vector, std::optional<std::uint32_t> error_code);
  ExitDisposition handle_syscall(ModeContext& context);
  ExitDisposition handle_hypercall(ModeContext& context);
  ExitDisposition reflect(ModeContext& context, std::uint8_t vector,
                          std::optional<std::uint32_t> error_code, GuestVirtAddr fault_address);
  void record(ModeContext& context, EventKind kind, EventReason reason, std::uint64_t number,
              std::uint64_t value, std::uint32_t batch, std::uint64_t guest_rip,
              std::uint8_t cpl_before, std::uint64_t start_ns, std::string_view detail);
  GuestPhysAddr current_root() const;

  ParaModeOptions m_options;
  monitor::MonitorRegionMemory m_monitor;
  GuestMemory* m_guest_memory = nullptr;
  std::unique_ptr<monitor::PageWalker> m_walker;  // the current kernel-mode tables
  std::unique_ptr<PageTableValidator> m_validator;
  std::unique_ptr<Environment> m_environment;
  std::unique_ptr<Hypercalls> m_hypercalls_handler;
  ParaState m_state;
  monitor::GuestRegisters m_registers;
  bool m_flush_requested = false;
  bool m_blocked = false;  // in SCHED_OP BLOCK: events were unmasked by it
  std::uint64_t m_hypercalls = 0;
  std::uint64_t m_traps = 0;
  std::uint64_t m_translation_flushes = 0;
  monitor::InstructionCounter m_census;  // ParaModeOptions::census
};

}  // namespace vmlab::para
