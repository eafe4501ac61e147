#include "vmlab/full/full_mode.hpp"
#include "vmlab/format.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <string_view>
#include <utility>

#include "vmlab/boot.hpp"
#include "vmlab/events.hpp"
#include "vmlab/full/emulator.hpp"
#include "vmlab/full/shadow_pager.hpp"
#include "vmlab/memory_slots.hpp"
#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/monitor_region.hpp"
#include "vmlab/monitor/region_memory.hpp"
#include "vmlab/monitor/trap_frame.hpp"
#include "vmlab/monitor/vcpu_state.hpp"

namespace vmlab::full {

// The monitor this technique is built on (modes/monitor/).
using namespace monitor;  // NOLINT(google-build-using-namespace)

namespace {

// Real control-register state while the guest runs (Intel SDM vol. 3A, 2.5).
constexpr std::uint64_t kRealCr0 = 0x80050033;  // PG, WP, NE, ET, MP, PE

}  // namespace

// What emulation needs from the rest of the VMM: the board's ports and the
// shadow pager.
class FullMode::Services final : public MonitorServices {
 public:
  Services(FullMode& mode, Board& board, ShadowPager& shadow, const VirtualCpu& cpu)
      : m_mode(mode), m_board(board), m_shadow(shadow), m_cpu(cpu) {}

  std::uint32_t port_read(std::uint16_t port, unsigned size) override {
    std::uint8_t data[4] = {};
    std::lock_guard lock(m_board.device_lock());
    (void)m_board.port_bus().read(port, std::span(data, size));  // unclaimed: all ones
    return static_cast<std::uint32_t>(data[0]) | static_cast<std::uint32_t>(data[1]) << 8 |
           static_cast<std::uint32_t>(data[2]) << 16 | static_cast<std::uint32_t>(data[3]) << 24;
  }
  void port_write(std::uint16_t port, unsigned size, std::uint32_t value) override {
    const std::uint8_t data[4] = {
        static_cast<std::uint8_t>(value), static_cast<std::uint8_t>(value >> 8),
        static_cast<std::uint8_t>(value >> 16), static_cast<std::uint8_t>(value >> 24)};
    std::lock_guard lock(m_board.device_lock());
    (void)m_board.port_bus().write(port, std::span(data, size));
  }
  void cr3_written(std::uint64_t old_cr3, std::uint64_t new_cr3) override {
    m_shadow.set_guest_cr3(new_cr3);
    if (new_cr3 != old_cr3) m_mode.address_space_changed();
  }
  void page_invalidated(GuestVirtAddr address) override { m_shadow.invalidate_page(address); }
  void paging_control_changed() override {
    m_shadow.set_paging_controls(PagingControls::from(m_cpu));
  }

 private:
  FullMode& m_mode;
  Board& m_board;
  ShadowPager& m_shadow;
  const VirtualCpu& m_cpu;
};

FullMode::FullMode(FullModeOptions options) : m_options(options) {}
FullMode::~FullMode() = default;

Status FullMode::prepare(ModeContext& context, const LoadedImage& image) {
  if (auto status = check_monitor_support(context, name()); !status) return status;
  // Two slots: the static part (GDT, IDT, TSS, stubs, stacks) and the pool of
  // shadow page tables, which flush_translations() recycles on its own.
  if (auto status = m_monitor.create(context); !status) return status;
  if (auto status = map_shadow_pool(context.vm); !status) return status;
  if (auto status = m_monitor.seal(); !status) return status;
  m_guest_ram_size = context.memory.size();

  // The virtual CPU starts where the vmlab entry starts a real one.
  kvm_sregs special{};
  kvm_regs registers{};
  set_long_mode_entry_state(special, registers, image.entry);
  m_cpu = VirtualCpu{};
  m_cpu.cpl = 0;
  m_cpu.interrupt_flag = false;
  m_cpu.cs = kBootCodeSelector;
  m_cpu.ss = kBootDataSelector;
  m_cpu.cr0 = special.cr0;
  m_cpu.cr3 = special.cr3;
  m_cpu.cr4 = special.cr4;
  m_cpu.efer = special.efer;
  m_cpu.gdtr = {special.gdt.base, special.gdt.limit};
  m_registers = GuestRegisters{};
  m_registers.rip = registers.rip;
  m_registers.rdi = registers.rdi;
  m_registers.rsp = registers.rsp;
  m_registers.rflags = registers.rflags;

  ShadowPagerConfig shadow_config;
  shadow_config.guest_ram_size = m_guest_ram_size;
  shadow_config.monitor = {GuestPhysAddr(kMonitorPhysicalBase), kMonitorSize};
  shadow_config.monitor_virtual_base = kMonitorVirtualBase;
  shadow_config.table_pool = {monitor_physical(kShadowPoolOffset), kShadowPoolSize};
  // A guest page may map a device's MMIO window: the access from the
  // deprivileged guest then leaves KVM as an MMIO exit the machine dispatches.
  for (const auto& device : context.board.device_table()) {
    if ((device.flags & VMLAB_DEVICE_FLAG_MMIO) != 0) {
      // Whole pages: a page table maps 4 KiB frames, and the rest of the page
      // around a small window is unclaimed MMIO (reads as all ones).
      const std::uint64_t first = device.base & ~std::uint64_t{0xfff};
      const std::uint64_t end = (device.base + device.size + 0xfff) & ~std::uint64_t{0xfff};
      shadow_config.device_windows.push_back({GuestPhysAddr(first), end - first});
    }
  }
  if (auto status = configure_shadow(context, shadow_config); !status) return status;
  auto shadow = ShadowPager::create(m_monitor.physical(), shadow_config);
  if (!shadow) return shadow.error();
  m_shadow = std::move(*shadow);
  m_shadow->set_paging_controls(PagingControls::from(m_cpu));
  m_shadow->set_guest_cr3(m_cpu.cr3);
  m_services = std::make_unique<Services>(*this, context.board, *m_shadow, m_cpu);
  if (auto status = start_technique(context); !status) return status;

  // A SYSCALL from guest user mode lands in the monitor's stub at CPL0.
  if (auto status = route_syscall_to_monitor(context.vcpu); !status) return status;
  return enter_first_time(context.vcpu, [&] { return resume_guest(context); });
}

Status FullMode::configure_shadow(ModeContext&, ShadowPagerConfig&) {
  return {};
}

Status FullMode::start_technique(ModeContext&) {
  return {};
}

Status FullMode::place_guest(ModeContext&) {
  return {};
}

std::optional<ExitDisposition> FullMode::intercept_trap(ModeContext&, std::uint8_t,
                                                        std::optional<std::uint32_t>) {
  return std::nullopt;
}

std::optional<InstructionCensus> FullMode::census() const {
  if (!m_options.census) return std::nullopt;
  return m_census.counts();
}

MonitorServices& FullMode::services() {
  return *m_services;
}

Status FullMode::map_shadow_pool(Vm& vm) {
  return vm.set_user_memory_region(slot_number(MemorySlot::ShadowPool),
                                   kMonitorPhysicalBase + kShadowPoolOffset, kShadowPoolSize,
                                   m_monitor.region().host_base() + kShadowPoolOffset);
}

// After a shadow entry was removed or lost rights, nothing may still
// translate through the old one, as a monitor on hardware would flush the TLB.
// The VMM edits the shadow tables from the host, which KVM does not see:
// kvm_pvm keeps its own shadow of them (measured: changing CR3 does not make
// it drop that), and on EPT hardware the TLB may hold them. Deleting and
// re-adding the memory slot the tables live in makes every KVM backend
// discard what it derived from them.
Status FullMode::flush_if_requested(Vm& vm) {
  if (!m_shadow->take_tlb_flush_request()) return {};
  return flush_translations(vm);
}

Status FullMode::flush_translations(Vm& vm) {
  ++m_translation_flushes;
  if (auto status = vm.set_user_memory_region(slot_number(MemorySlot::ShadowPool), 0, 0, nullptr);
      !status) {
    return status;
  }
  return map_shadow_pool(vm);
}

void FullMode::capture_guest_state(const kvm_run& run) {
  capture_registers(m_registers, run.s.regs.regs);
}

Status FullMode::resume_guest(ModeContext& context) {
  if (auto status = place_guest(context); !status) return status;
  kvm_run& run = context.vcpu.run_state();
  auto& r = run.s.regs.regs;
  store_registers(r, m_registers);
  // The real CPU always runs the guest with IF=1 and IOPL=0: the guest's IF
  // and IOPL live in the virtual CPU, so cli/sti/in/out fault (SDM 6.8.1).
  r.rflags = (m_registers.rflags & ~(kRflagsInterrupt | kRflagsIoplMask)) | kRflagsInterrupt | 0x2;
  if (m_options.census) r.rflags |= kRflagsTrap;

  auto& s = run.s.regs.sregs;
  const bool kernel = m_cpu.cpl == 0;
  s.cs = flat_segment(kernel ? kGuestKernelCodeSelector : kUserCodeSelector, true);
  s.ss = flat_segment(kernel ? kGuestKernelDataSelector : kUserDataSelector, false);
  s.ds = s.es = s.ss;
  s.fs = flat_segment(kUserDataSelector, false);
  s.gs = s.fs;
  s.fs.base = m_cpu.fs_base;
  s.gs.base = m_cpu.gs_base;
  load_monitor_tables(s);
  s.cr0 = kRealCr0;
  s.cr4 = kCr4PhysicalAddressExtension | (m_options.umip ? kCr4UserModeInstructionPrevention : 0);
  // The real EFER.NXE follows the guest's, so XD is never reserved in the
  // shadow; under bt the kernel view is no-execute whatever the guest's is.
  const bool no_execute =
      (m_cpu.efer & kEferNoExecuteEnable) != 0 || m_shadow->config().translation_cache;
  s.efer = kEferSyscallEnable | (kEferLongModeEnable | kEferLongModeActive) |
           (no_execute ? kEferNoExecuteEnable : 0);
  if (auto status = flush_if_requested(context.vm); !status) return status;
  s.cr3 = m_shadow->root(kernel ? ShadowView::Kernel : ShadowView::User).value();
  // DESIGN.md 4: in virtual kernel mode the user descriptors are not present,
  // so the guest kernel's iretq to user mode raises #NP into the monitor.
  if (auto status = set_user_segments_present(m_monitor.physical(), !kernel); !status) {
    return status;
  }
  run.kvm_dirty_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
  return {};
}

void FullMode::record_trap(ModeContext& context, EventReason reason, std::uint8_t vector,
                           std::uint64_t guest_rip, std::uint8_t cpl_before, std::uint64_t start_ns,
                           std::string_view detail) {
  ++m_traps;
  record_monitor_event(context, {EventKind::MonitorTrap, reason, vector, guest_rip, 1, guest_rip,
                                 cpl_before, m_cpu.cpl, start_ns, detail});
}

ExitDisposition FullMode::handle_exit(ModeContext& context, const VcpuExit& exit) {
  kvm_run& run = context.vcpu.run_state();
  const auto stub = trapping_stub(exit, run);
  if (!stub) return ExitDisposition::stop(stub.error().message);
  const std::optional<monitor::StubHit>& hit = *stub;
  if (!hit) return ExitDisposition::not_mine();
  capture_guest_state(run);
  synchronize_virtual_cpu();
  // Any trap ends the interrupt shadow: the instruction after sti ran (or is
  // the one that trapped, as `hlt` in the `sti; hlt` idiom does).
  m_interrupt_shadow = false;
  const bool was_single_stepping = std::exchange(m_single_stepping, false);
  if (hit->syscall) {
    // SYSCALL reached the stub at CPL0 (VT-x, AMD-V): RCX holds the return
    // RIP, R11 the RFLAGS, RSP is still the guest's (SDM vol. 2B, SYSCALL).
    m_registers.rip = m_registers.rcx;
    m_registers.rflags = m_registers.r11;
    return handle_system_call(context);
  }
  auto frame =
      read_trap_frame(m_monitor.physical(), hit->vector, GuestVirtAddr(run.s.regs.regs.rsp));
  if (!frame) {
    return ExitDisposition::stop(frame.error().message);
  }
  m_registers.rip = frame->rip.value();
  m_registers.rsp = frame->rsp.value();
  // The monitor's TF, not the guest's; a census keeps it in the guest's
  // flags, so that the RFLAGS its iretq and popf load go on stepping.
  if (was_single_stepping && !m_options.census) frame->rflags &= ~kRflagsTrap;
  // The guest sees its virtual IF and IOPL, never the real ones.
  m_registers.rflags = frame->rflags;
  m_registers.rflags = guest_visible_rflags(m_registers, m_cpu);
  if (m_options.syscall_arrives_as_page_fault && m_cpu.cpl == 3 &&
      is_syscall_fetch_fault(*frame, GuestVirtAddr(run.s.regs.sregs.cr2))) {
    // A user SYSCALL on kvm_pvm: RCX holds the return RIP. A user jump to
    // the stub looks the same there; it gets the system call it asked the
    // kernel for and nothing more. Elsewhere the fault is reflected.
    m_registers.rip = m_registers.rcx;
    return handle_system_call(context);
  }
  if (hit->vector == kVectorDebug && (was_single_stepping || m_options.census)) {
    // Our own single step (the census's, or through the interrupt shadow):
    // nothing to emulate; a pending interrupt is delivered before the next
    // entry. The instruction ran in the virtual mode the guest is still in.
    if (m_options.census) m_census.count(m_cpu.cpl, m_registers.rip);
    if (auto status = resume_guest(context); !status) {
      return ExitDisposition::stop(status.error().message);
    }
    return ExitDisposition::handled();
  }
  if (auto handled = intercept_trap(context, hit->vector, frame->error_code)) return *handled;
  return handle_trap(context, hit->vector, frame->error_code);
}

ExitDisposition FullMode::handle_system_call(ModeContext& context) {
  const std::uint64_t start = context.elapsed_ns();
  const std::uint64_t rip = m_registers.rip;
  const std::uint8_t cpl = m_cpu.cpl;
  // From virtual kernel mode too, SYSCALL simply re-enters LSTAR at CPL0, as
  // on hardware (the unmodified kernel never does it; para mode will).
  deliver_syscall(m_registers, m_cpu);
  if (auto status = resume_guest(context); !status) {
    return ExitDisposition::stop(status.error().message);
  }
  record_trap(context, EventReason::SystemCall, 0, rip, cpl, start, "syscall");
  return ExitDisposition::handled();
}

ExitDisposition FullMode::handle_trap(ModeContext& context, std::uint8_t vector,
                                      std::optional<std::uint32_t> error_code,
                                      EventReason emulated_as) {
  const std::uint64_t start = context.elapsed_ns();
  // The registers as the vCPU has them, for a fault that only needs a shadow
  // entry: the guest goes on where it stopped.
  const GuestRegisters real = m_registers;
  if (auto status = make_state_precise(); !status) {
    return ExitDisposition::stop(status.error().message);
  }
  const std::uint64_t rip = m_registers.rip;
  const std::uint8_t cpl = m_cpu.cpl;
  EventReason reason = EventReason::ReflectedException;
  ExitDisposition disposition = ExitDisposition::handled();
  std::string detail = exception_name(vector);
  std::string failure;  // why reflect() could not deliver
  auto reflect = [&](const Event& event) { return reflect_exception(event, failure); };

  if (vector == kVectorPageFault) {
    const GuestVirtAddr address(context.vcpu.run_state().s.regs.sregs.cr2);
    auto fault =
        m_shadow->handle_fault(view() == View::Kernel ? ShadowView::Kernel : ShadowView::User,
                               address, error_code.value_or(0));
    if (!fault) {
      return ExitDisposition::stop("shadow paging failed at guest address " + hex(address.value()) +
                                   ": " + fault.error().message);
    }
    const FaultResolution& resolution = *fault;
    switch (resolution.kind) {
      case FaultResolution::Kind::Filled:
        reason = EventReason::ShadowFill;
        detail = "#PF: shadow entry filled";
        m_registers = real;
        break;
      case FaultResolution::Kind::KernelFetch:
        // bt: place_guest() runs the code from the translation cache.
        reason = EventReason::ShadowFill;
        detail = "#PF: kernel code fetch";
        break;
      case FaultResolution::Kind::ReflectToGuest:
        reason = EventReason::GuestPageFault;
        detail = "#PF: the guest's own";
        if (!reflect(Event{kVectorPageFault, resolution.guest_error_code, EventSource::Exception,
                           resolution.address})) {
          return ExitDisposition::stop(failure);
        }
        break;
      case FaultResolution::Kind::PageTableWrite:
      case FaultResolution::Kind::CodeWrite: {
        const bool code = resolution.kind == FaultResolution::Kind::CodeWrite;
        reason = code ? EventReason::TranslatedCodeWrite : EventReason::PageTableWrite;
        // The walker reports every byte it stores to the pager, so the
        // shadow entries (bt: the translations) derived from them are
        // already gone.
        auto emulation = emulate_memory_write(m_registers, m_cpu, m_shadow->walker());
        detail = (code ? "translated-code write: " : "page-table write: ") + emulation.mnemonic;
        if (emulation.kind == EmulationKind::Reflect) {
          if (!reflect(emulation.event)) return ExitDisposition::stop(failure);
        } else if (emulation.kind != EmulationKind::Emulated) {
          return ExitDisposition::stop(std::string("cannot emulate the guest's write to its ") +
                                       (code ? "translated code" : "page tables") + " at rip " +
                                       hex(rip) + " (" + emulation.mnemonic +
                                       "): " + emulation.detail);
        }
        break;
      }
    }
  } else if (vector == kVectorGeneralProtection || vector == kVectorInvalidOpcode ||
             vector == kVectorSegmentNotPresent || vector == kVectorStackFault) {
    auto emulation = emulate_privileged(m_registers, m_cpu, m_shadow->walker(), *m_services,
                                        Event{vector, error_code, EventSource::Exception});
    if (!emulation.mnemonic.empty()) detail = emulation.mnemonic;
    switch (emulation.kind) {
      case EmulationKind::Emulated:
        reason = emulated_as;
        m_interrupt_shadow = emulation.interrupt_shadow;
        break;
      case EmulationKind::Halt:
        reason = emulated_as;
        disposition = ExitDisposition::wait_for_interrupt();
        break;
      case EmulationKind::Reflect:
        if (!reflect(emulation.event)) return ExitDisposition::stop(failure);
        break;
      case EmulationKind::Unsupported:
        if (cpl == 3) {
          // Not a privileged instruction of the guest kernel's: the user task
          // faulted, and its kernel decides (as on hardware).
          if (!reflect(Event{vector, error_code, EventSource::Exception})) {
            return ExitDisposition::stop(failure);
          }
          break;
        }
        return ExitDisposition::stop("cannot emulate '" + emulation.mnemonic + "' at guest rip " +
                                     hex(rip) + ": " + emulation.detail);
    }
  } else {
    if (!reflect(Event{vector, error_code, EventSource::Exception}))
      return ExitDisposition::stop(failure);
  }
  if (auto status = resume_guest(context); !status) {
    return ExitDisposition::stop(status.error().message);
  }
  record_trap(context, reason, vector, rip, cpl, start, detail);
  return disposition;
}

bool FullMode::reflect_exception(const Event& event, std::string& failure) {
  const std::uint64_t rip = m_registers.rip;
  auto delivered = deliver_event(m_registers, m_cpu, m_shadow->walker(), event);
  if (!delivered) {
    failure = "the guest kernel could not take exception " + std::to_string(event.vector) +
              " at rip " + hex(rip) + ": " + delivered.error().message;
    return false;
  }
  return true;
}

std::optional<std::string> FullMode::integrity_violation() const {
  // resume_guest() flips the present bits of the user descriptors
  // (DESIGN.md 4): bit 47 of a descriptor is bit 7 of its byte 5.
  constexpr std::uint64_t kPresentByte = 5;
  constexpr std::array<std::uint64_t, 2> kUserPresentBytes = {
      kGdtOffset + (kUserDataSelector & ~7u) + kPresentByte,
      kGdtOffset + (kUserCodeSelector & ~7u) + kPresentByte};
  return m_monitor.integrity_violation(kUserPresentBytes);
}

Result<Injection> FullMode::deliver_interrupts(ModeContext& context) {
  InterruptController* controller = context.board.interrupt_controller();
  kvm_run& run = context.vcpu.run_state();
  synchronize_virtual_cpu();
  {
    std::lock_guard lock(context.board.device_lock());
    if (controller == nullptr || !controller->interrupt_pending()) return kNoInjection;
  }
  // Only while the vCPU is in the guest (not inside a stub it is about to
  // leave) and the guest's virtual IF allows it (DESIGN.md 5).
  if (run.s.regs.sregs.cs.dpl != 3) return kNoInjection;
  if (m_cpu.cpl == 0 && !m_cpu.interrupt_flag) return kNoInjection;
  if (m_interrupt_shadow) {
    // Let one more guest instruction run first: single-step it.
    m_single_stepping = true;
    run.s.regs.regs.rflags |= kRflagsTrap;
    run.kvm_dirty_regs |= KVM_SYNC_X86_REGS;
    return kNoInjection;
  }
  capture_guest_state(run);
  if (auto status = make_state_precise(); !status) return status.error();
  m_registers.rflags = guest_visible_rflags(m_registers, m_cpu);
  std::uint8_t vector;
  {
    std::lock_guard lock(context.board.device_lock());
    if (!controller->interrupt_pending()) return kNoInjection;
    vector = controller->acknowledge();
  }
  m_cpu.halted = false;
  auto delivered = deliver_event(m_registers, m_cpu, m_shadow->walker(), vector, std::nullopt,
                                 EventSource::ExternalInterrupt);
  if (!delivered) {
    return Error{ModeError::kGuestTripleFault, "the guest kernel could not take interrupt vector " +
                                                   std::to_string(vector) + ": " +
                                                   delivered.error().message};
  }
  if (auto status = resume_guest(context); !status) return status.error();
  return Injection{vector};
}

}  // namespace vmlab::full
