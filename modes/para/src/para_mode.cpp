#include "vmlab/para/para_mode.hpp"

#include <cstring>
#include <utility>

#include "vmlab/boot.hpp"
#include "vmlab/format.hpp"
#include "vmlab/memory_slots.hpp"
#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/monitor_region.hpp"
#include "vmlab/monitor/trap_frame.hpp"
#include "vmlab/monitor/vcpu_state.hpp"

namespace vmlab::para {

using monitor::kMonitorPhysicalBase;
using monitor::monitor_physical;
namespace entry_bits = page_entry;

namespace {

// Page tables in the monitor region's static part, a page each above the
// stacks (para needs no shadow pool): the monitor's own mapping (PML4 slot
// 511 of every root) and the boot tables the guest runs on until it pins its
// own root.
enum class ParaTable : std::uint64_t { MonitorPdpt, MonitorPd, BootPml4, BootPdpt, BootPd, Count };
constexpr std::uint64_t kParaTablesOffset = 0xb000;

constexpr std::uint64_t table_offset(ParaTable table) {
  return kParaTablesOffset + static_cast<std::uint64_t>(table) * kPageSize;
}
static_assert(kParaTablesOffset >= monitor::kFaultStackTopOffset &&
              table_offset(ParaTable::Count) <= monitor::kStaticPartSize);

// The table's guest-physical address, as an entry pointing at it holds it.
constexpr std::uint64_t table_entry_address(ParaTable table) {
  return monitor_physical(table_offset(table)).value();
}
// One boot page directory maps 1 GiB with 2 MiB pages.
constexpr std::uint64_t kMaximumRam = GiB;

constexpr std::uint64_t kRealCr0 = 0x80050033;  // PG, WP, NE, ET, MP, PE

// Entries are written with the accessed (and, for leaves, dirty) bits
// already set, so the CPU never writes these tables (Intel SDM vol. 3A,
// 4.8): the integrity check can then demand they never change.
constexpr std::uint64_t kTableEntry =
    entry_bits::kPresent | entry_bits::kWritable | entry_bits::kAccessed;
constexpr std::uint64_t kLargeLeaf = kTableEntry | entry_bits::kDirty | entry_bits::kLargePage;

// Guest-virtual = guest-physical over RAM: the boot tables' view, for the
// hypercalls a kernel makes before it pins its own root.
class IdentityMemory final : public monitor::GuestVirtualMemory {
 public:
  explicit IdentityMemory(GuestMemoryAccess& memory) : m_memory(memory) {}
  std::optional<Fault> read(GuestVirtAddr address, std::span<std::uint8_t> out,
                            monitor::AccessPrivilege) override {
    if (!m_memory.read(physical(address), out)) return Fault{address, 0};
    return std::nullopt;
  }
  std::optional<Fault> write(GuestVirtAddr address, std::span<const std::uint8_t> in,
                             monitor::AccessPrivilege) override {
    if (!m_memory.write(physical(address), in)) return Fault{address, 0};
    return std::nullopt;
  }
  std::optional<Fault> fetch(GuestVirtAddr address, std::span<std::uint8_t> out,
                             monitor::AccessPrivilege privilege) override {
    return read(address, out, privilege);
  }

 private:
  static GuestPhysAddr physical(GuestVirtAddr address) { return GuestPhysAddr(address.value()); }
  GuestMemoryAccess& m_memory;
};

}  // namespace

class ParaMode::Environment final : public HypercallEnvironment {
 public:
  Environment(ParaMode& mode, Board& board, GuestMemoryAccess& ram)
      : m_mode(mode), m_board(board), m_identity(ram) {}

  monitor::GuestVirtualMemory& kernel_memory() override {
    if (m_mode.m_state.kernel_root == GuestPhysAddr()) return m_identity;
    return *m_mode.m_walker;
  }
  std::uint32_t port_read(std::uint16_t port, unsigned size) override {
    std::uint8_t data[4] = {};
    std::lock_guard lock(m_board.device_lock());
    (void)m_board.port_bus().read(port, std::span(data, size));  // unclaimed: all ones
    std::uint32_t value = 0;
    std::memcpy(&value, data, sizeof value);
    return value;
  }
  void port_write(std::uint16_t port, unsigned size, std::uint32_t value) override {
    std::uint8_t data[4] = {};
    std::memcpy(data, &value, sizeof value);
    std::lock_guard lock(m_board.device_lock());
    (void)m_board.port_bus().write(port, std::span<const std::uint8_t>(data, size));
  }
  void console_write(std::string_view text) override { m_board.write_console(text); }
  void flush_translations() override { m_mode.m_flush_requested = true; }
  void kernel_root_changed(GuestPhysAddr root) override { m_mode.m_walker->set_root(root.value()); }

 private:
  ParaMode& m_mode;
  Board& m_board;
  IdentityMemory m_identity;
};

ParaMode::ParaMode(ParaModeOptions options) : m_options(options) {}
ParaMode::~ParaMode() = default;

Status ParaMode::build_page_tables() {
  auto write_entry = [&](ParaTable table, unsigned index, std::uint64_t value) {
    return m_monitor.physical().write_object(monitor_physical(table_offset(table) + index * 8ULL),
                                             value);
  };
  // The monitor region at kMonitorVirtualBase, supervisor-only: 2 MiB pages.
  if (auto status = write_entry(ParaTable::MonitorPdpt, 0,
                                table_entry_address(ParaTable::MonitorPd) | kTableEntry);
      !status) {
    return status;
  }
  for (unsigned index = 0; index < monitor::kMonitorSize / monitor::kLargePageSize; ++index) {
    const std::uint64_t frame = kMonitorPhysicalBase + index * monitor::kLargePageSize;
    if (auto status = write_entry(ParaTable::MonitorPd, index, frame | kLargeLeaf); !status) {
      return status;
    }
  }
  // The boot tables: guest RAM identity-mapped with user access (the kernel
  // runs at CPL3), plus the monitor. They live in the monitor region, so the
  // guest can neither change them nor switch back to them once it pinned its
  // own root (NEW_BASEPTR accepts guest RAM only).
  const std::uint64_t monitor_entry = table_entry_address(ParaTable::MonitorPdpt) | kTableEntry;
  if (auto status =
          write_entry(ParaTable::BootPml4, 0,
                      table_entry_address(ParaTable::BootPdpt) | kTableEntry | entry_bits::kUser);
      !status) {
    return status;
  }
  if (auto status = write_entry(ParaTable::BootPml4, 511, monitor_entry); !status) return status;
  if (auto status =
          write_entry(ParaTable::BootPdpt, 0,
                      table_entry_address(ParaTable::BootPd) | kTableEntry | entry_bits::kUser);
      !status) {
    return status;
  }
  const std::uint64_t ram = m_guest_memory->size();
  for (std::uint64_t chunk = 0; chunk * monitor::kLargePageSize < ram; ++chunk) {
    if (auto status = write_entry(ParaTable::BootPd, static_cast<unsigned>(chunk),
                                  chunk * monitor::kLargePageSize | kLargeLeaf | entry_bits::kUser);
        !status) {
      return status;
    }
  }
  return {};
}

Status ParaMode::prepare(ModeContext& context, const LoadedImage& image) {
  if (auto status = monitor::check_monitor_support(context, name()); !status) return status;
  m_guest_memory = &context.memory;
  if (context.memory.size() > kMaximumRam) {
    return Error{ParaError::kGuestMemoryTooLarge,
                 "--cpu para supports up to 1 GiB of guest memory (the boot tables map one "
                 "page directory): lower --mem"};
  }
  // Allocated whole (guest memory comes in 2 MiB units; untouched pages cost
  // nothing), mapped only as far as para uses it: the static part.
  if (auto status = m_monitor.create(context); !status) return status;
  // IRET is a hypercall here, so the user descriptors need no #NP trick.
  if (auto status = monitor::set_user_segments_present(m_monitor.physical(), true); !status) {
    return status;
  }
  if (auto status = build_page_tables(); !status) return status;
  if (auto status = m_monitor.seal(); !status) return status;

  std::vector<monitor::PhysicalRange> device_windows;
  for (const auto& device : context.board.device_table()) {
    if ((device.flags & VMLAB_DEVICE_FLAG_MMIO) != 0) {
      // Whole pages: a page table maps 4 KiB frames, and the rest of the page
      // around a small window is unclaimed MMIO (reads as all ones).
      const std::uint64_t first = device.base & ~std::uint64_t{0xfff};
      const std::uint64_t end = (device.base + device.size + 0xfff) & ~std::uint64_t{0xfff};
      device_windows.push_back({GuestPhysAddr(first), end - first});
    }
  }
  PageTableValidatorConfig validator_config;
  validator_config.guest_ram_size = context.memory.size();
  validator_config.monitor = {GuestPhysAddr(kMonitorPhysicalBase), monitor::kMonitorSize};
  validator_config.device_windows = device_windows;
  validator_config.dma_remapping = context.board.dma_remapping();
  validator_config.reserved_pml4_slot = 511;
  validator_config.monitor_pml4_entry = table_entry_address(ParaTable::MonitorPdpt) | kTableEntry;
  auto validator = PageTableValidator::create(context.memory, validator_config);
  if (!validator) return validator.error();
  m_validator = std::make_unique<PageTableValidator>(std::move(*validator));

  monitor::PageWalkerOptions walker_options;
  walker_options.device_windows = device_windows;
  walker_options.hidden_pml4_slot = 511;
  m_walker =
      std::make_unique<monitor::PageWalker>(context.memory, context.memory.size(), walker_options);
  m_environment = std::make_unique<Environment>(*this, context.board, context.memory);
  m_hypercalls_handler =
      std::make_unique<Hypercalls>(context.memory, *m_validator, *m_environment, m_state);

  kvm_sregs special{};
  kvm_regs registers{};
  set_long_mode_entry_state(special, registers, image.entry);
  m_state = ParaState{};
  m_registers = monitor::GuestRegisters{};
  m_registers.rip = registers.rip;
  m_registers.rdi = registers.rdi;
  m_registers.rsp = registers.rsp;
  m_registers.rflags = registers.rflags;

  // A SYSCALL lands in the monitor's stub: a hypercall from kernel mode, a
  // system call from user mode.
  if (auto status = monitor::route_syscall_to_monitor(context.vcpu); !status) return status;
  return monitor::enter_first_time(context.vcpu, [&] { return resume_guest(context); });
}

GuestPhysAddr ParaMode::current_root() const {
  if (m_state.kernel_root == GuestPhysAddr()) {
    return monitor_physical(table_offset(ParaTable::BootPml4));
  }
  if (m_state.cpl == 3 && m_state.user_root != GuestPhysAddr()) return m_state.user_root;
  return m_state.kernel_root;
}

void ParaMode::capture_guest_state(const kvm_run& run) {
  monitor::capture_registers(m_registers, run.s.regs.regs);
}

std::optional<InstructionCensus> ParaMode::census() const {
  if (!m_options.census) return std::nullopt;
  return m_census.counts();
}

Status ParaMode::resume_guest(ModeContext& context) {
  kvm_run& run = context.vcpu.run_state();
  auto& r = run.s.regs.regs;
  monitor::store_registers(r, m_registers);
  // The real IF is always 1 and IOPL 0: the virtual IF is the shared page's
  // mask, and ports go through PORT_IO.
  r.rflags = (m_registers.rflags & ~(kRflagsInterrupt | kRflagsIoplMask)) | kRflagsInterrupt |
             kRflagsFixed;
  // The census (FullModeOptions::census): every instruction raises #DB.
  if (m_options.census) r.rflags |= kRflagsTrap;

  auto& s = run.s.regs.sregs;
  const bool kernel = m_state.cpl == 0;
  s.cs = monitor::flat_segment(
      kernel ? monitor::kGuestKernelCodeSelector : monitor::kUserCodeSelector, true);
  s.ss = monitor::flat_segment(
      kernel ? monitor::kGuestKernelDataSelector : monitor::kUserDataSelector, false);
  s.ds = s.es = s.ss;
  s.fs = monitor::flat_segment(monitor::kUserDataSelector, false);
  s.gs = s.fs;
  monitor::load_monitor_tables(s);
  s.cr0 = kRealCr0;
  s.cr4 = kCr4PhysicalAddressExtension;
  s.efer = kEferSyscallEnable | (kEferLongModeEnable | kEferLongModeActive);
  s.cr3 = current_root().value();
  if (std::exchange(m_flush_requested, false)) {
    // The VMM changed an entry that was present in the guest's tables from
    // the host side, which KVM does not see: a shadowing backend (kvm_pvm)
    // would go on using what it derived from the old entry, and a TLB may
    // hold it. Deleting and re-adding the RAM slot makes every KVM backend
    // drop everything derived from guest memory (see FullMode).
    ++m_translation_flushes;
    if (auto status =
            context.vm.set_user_memory_region(slot_number(MemorySlot::GuestRam), 0, 0, nullptr);
        !status) {
      return status;
    }
    if (auto status =
            context.vm.set_user_memory_region(slot_number(MemorySlot::GuestRam), 0,
                                              context.memory.size(), context.memory.host_base());
        !status) {
      return status;
    }
  }
  run.kvm_dirty_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
  return {};
}

void ParaMode::record(ModeContext& context, EventKind kind, EventReason reason,
                      std::uint64_t number, std::uint64_t value, std::uint32_t batch,
                      std::uint64_t guest_rip, std::uint8_t cpl_before, std::uint64_t start_ns,
                      std::string_view detail) {
  monitor::record_monitor_event(context, {kind, reason, number, value, batch, guest_rip, cpl_before,
                                          m_state.cpl, start_ns, detail});
}

Status ParaMode::deliver(std::uint8_t vector, std::optional<std::uint32_t> error_code) {
  const TrapEntry& entry = m_state.trap_table[vector];
  if (entry.handler == GuestVirtAddr()) {
    return Error{ModeError::kGuestTripleFault, "the paravirtual kernel registered no handler for " +
                                                   monitor::exception_name(vector) + " (rip " +
                                                   hex(m_registers.rip) + ")"};
  }
  const bool from_user = m_state.cpl == 3;
  if (from_user && m_state.kernel_stack == GuestVirtAddr()) {
    return Error{ModeError::kGuestTripleFault,
                 "an event from user mode, but the kernel registered no stack (stack_switch)"};
  }
  // The frame a 64-bit CPU pushes (Intel SDM vol. 3A, 6.14.2), with the
  // selectors the guest kernel believes in and IF = "events unmasked".
  const bool interrupts_on = from_user || !m_hypercalls_handler->events_masked();
  const std::uint64_t rflags = (m_registers.rflags & ~kRflagsInterrupt) |
                               (interrupts_on ? kRflagsInterrupt : 0) | kRflagsFixed;
  std::uint64_t frame[6];
  std::size_t words = 0;
  if (error_code) frame[words++] = *error_code;
  frame[words++] = m_registers.rip;
  frame[words++] = from_user ? kVirtualUserCode : kVirtualKernelCode;
  frame[words++] = rflags;
  frame[words++] = m_registers.rsp;
  frame[words++] = from_user ? kVirtualUserData : kVirtualKernelData;
  const std::uint64_t stack =
      (from_user ? m_state.kernel_stack.value() : m_registers.rsp) & ~0xfULL;
  const GuestVirtAddr frame_address(stack - words * sizeof(std::uint64_t));
  auto& memory = m_environment->kernel_memory();
  if (auto fault = memory.write(
          frame_address,
          std::span(reinterpret_cast<const std::uint8_t*>(frame), words * sizeof(std::uint64_t)),
          monitor::AccessPrivilege::Supervisor)) {
    return Error{ModeError::kGuestTripleFault,
                 "the paravirtual kernel's stack at " + hex(frame_address.value()) +
                     " cannot take the frame for " + monitor::exception_name(vector) +
                     " (page fault at " + hex(fault->address.value()) + ")"};
  }
  m_state.cpl = 0;
  m_registers.rsp = frame_address.value();
  m_registers.rip = entry.handler.value();
  m_registers.rflags &= ~(kRflagsTrap | kRflagsNestedTask | kRflagsResume);
  if (entry.mask_events) m_hypercalls_handler->set_events_masked(true);
  return {};
}

ExitDisposition ParaMode::handle_exit(ModeContext& context, const VcpuExit& exit) {
  kvm_run& run = context.vcpu.run_state();
  const auto stub = monitor::trapping_stub(exit, run);
  if (!stub) return ExitDisposition::stop(stub.error().message);
  const std::optional<monitor::StubHit>& hit = *stub;
  if (!hit) return ExitDisposition::not_mine();
  capture_guest_state(run);
  m_blocked = false;
  if (hit->syscall) {
    // SYSCALL reached the stub at CPL0 (VT-x, AMD-V): RCX = return RIP,
    // R11 = RFLAGS (SDM vol. 2B, SYSCALL).
    m_registers.rip = m_registers.rcx;
    m_registers.rflags = m_registers.r11;
    return handle_syscall(context);
  }
  auto frame = monitor::read_trap_frame(m_monitor.physical(), hit->vector,
                                        GuestVirtAddr(run.s.regs.regs.rsp));
  if (!frame) {
    return ExitDisposition::stop(frame.error().message);
  }
  m_registers.rip = frame->rip.value();
  m_registers.rflags = frame->rflags;
  m_registers.rsp = frame->rsp.value();
  // Which virtual mode the guest was in follows from the real selector.
  m_state.cpl = frame->cs == monitor::kGuestKernelCodeSelector ? 0 : 3;
  if (m_options.census && hit->vector == kVectorDebug) {
    // A census step: one instruction retired in this virtual mode.
    m_census.count(m_state.cpl, m_registers.rip);
    if (auto status = resume_guest(context); !status) {
      return ExitDisposition::stop(status.error().message);
    }
    return ExitDisposition::handled();
  }
  const GuestVirtAddr cr2(run.s.regs.sregs.cr2);
  if (m_options.syscall_arrives_as_page_fault && monitor::is_syscall_fetch_fault(*frame, cr2)) {
    // A SYSCALL on kvm_pvm, from either virtual mode: a hypercall from the
    // kernel, a system call from user code. RCX holds the return RIP.
    m_registers.rip = m_registers.rcx;
    return handle_syscall(context);
  }
  return reflect(context, hit->vector, frame->error_code,
                 hit->vector == kVectorPageFault ? cr2 : GuestVirtAddr());
}

ExitDisposition ParaMode::reflect(ModeContext& context, std::uint8_t vector,
                                  std::optional<std::uint32_t> error_code,
                                  GuestVirtAddr fault_address) {
  // Direct paging: every fault is the guest's own; the monitor only passes it
  // on (Xen does the same for a PV guest's faults).
  const std::uint64_t start = context.elapsed_ns();
  const std::uint64_t rip = m_registers.rip;
  const std::uint8_t cpl = m_state.cpl;
  ++m_traps;
  if (vector == kVectorPageFault) m_hypercalls_handler->set_fault_address(fault_address);
  if (auto status = deliver(vector, error_code); !status) {
    return ExitDisposition::stop(status.error().message);
  }
  if (auto status = resume_guest(context); !status) {
    return ExitDisposition::stop(status.error().message);
  }
  const EventReason reason =
      vector == kVectorPageFault ? EventReason::GuestPageFault : EventReason::ReflectedException;
  record(context, EventKind::MonitorTrap, reason, vector, rip, 1, rip, cpl, start,
         monitor::exception_name(vector));
  return ExitDisposition::handled();
}

ExitDisposition ParaMode::handle_syscall(ModeContext& context) {
  if (m_state.cpl == 0) return handle_hypercall(context);
  // A user program's system call goes to the kernel's syscall callback as
  // SYSCALL would take it there (SDM vol. 2B): RCX = return RIP, R11 =
  // RFLAGS, events masked (FMASK clears IF), the user RSP unchanged.
  const std::uint64_t start = context.elapsed_ns();
  const std::uint64_t rip = m_registers.rip;
  ++m_traps;
  if (m_state.syscall_entry == GuestVirtAddr()) {
    // No callback: the instruction is undefined for this kernel, as SYSCALL
    // with EFER.SCE clear raises #UD.
    return reflect(context, kVectorInvalidOpcode, std::nullopt, GuestVirtAddr());
  }
  m_registers.rcx = m_registers.rip;
  m_registers.r11 = (m_registers.rflags & ~kRflagsIoplMask) | kRflagsInterrupt | kRflagsFixed;
  m_registers.rflags &= ~(kRflagsTrap | kRflagsDirection);
  m_registers.rip = m_state.syscall_entry.value();
  m_state.cpl = 0;
  m_hypercalls_handler->set_events_masked(true);
  if (auto status = resume_guest(context); !status) {
    return ExitDisposition::stop(status.error().message);
  }
  record(context, EventKind::MonitorTrap, EventReason::SystemCall, 0, rip, 1, rip, 3, start,
         "syscall");
  return ExitDisposition::handled();
}

ExitDisposition ParaMode::handle_hypercall(ModeContext& context) {
  const std::uint64_t start = context.elapsed_ns();
  const std::uint64_t rip = m_registers.rip;
  const std::uint64_t number = m_registers.rax;
  const std::uint64_t first_argument = m_registers.rdi;
  ++m_hypercalls;
  auto outcome = m_hypercalls_handler->call(m_registers);
  if (auto status = resume_guest(context); !status) {
    return ExitDisposition::stop(status.error().message);
  }
  const auto reason = number < VMLAB_HYPERCALL_COUNT
                          ? static_cast<EventReason>(
                                static_cast<unsigned>(EventReason::HypercallSetTrapTable) + number)
                          : EventReason::HypercallUnknown;
  record(context, EventKind::Hypercall, reason, number, first_argument, outcome.batch_size, rip, 0,
         start, outcome.detail);
  if (outcome.continuation == HypercallContinuation::Block) {
    m_blocked = true;
    return ExitDisposition::wait_for_interrupt();
  }
  return ExitDisposition::handled();
}

bool ParaMode::interrupts_enabled(ModeContext&) const {
  return m_state.cpl == 3 || m_blocked ||
         (m_hypercalls_handler && !m_hypercalls_handler->events_masked());
}

Result<Injection> ParaMode::deliver_interrupts(ModeContext& context) {
  InterruptController* controller = context.board.interrupt_controller();
  kvm_run& run = context.vcpu.run_state();
  {
    std::lock_guard lock(context.board.device_lock());
    if (controller == nullptr || !controller->interrupt_pending()) return kNoInjection;
  }
  if (run.s.regs.sregs.cs.dpl != 3) return kNoInjection;  // inside a stub
  if (m_state.cpl == 0 && !m_blocked && m_hypercalls_handler->events_masked()) {
    // The kernel will see the flag when it unmasks and ask for the event.
    if (!m_hypercalls_handler->event_pending_flag()) m_hypercalls_handler->set_event_pending(true);
    return kNoInjection;
  }
  capture_guest_state(run);
  std::uint8_t vector;
  {
    std::lock_guard lock(context.board.device_lock());
    if (!controller->interrupt_pending()) return kNoInjection;
    vector = controller->acknowledge();
  }
  m_blocked = false;
  m_hypercalls_handler->set_event_pending(false);
  m_hypercalls_handler->count_event();
  if (auto status = deliver(vector, std::nullopt); !status) return status.error();
  if (auto status = resume_guest(context); !status) return status.error();
  return Injection{vector};
}

std::optional<std::string> ParaMode::integrity_violation() const {
  return m_monitor.integrity_violation();
}

}  // namespace vmlab::para
