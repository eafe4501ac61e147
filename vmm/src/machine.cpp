#include "vmlab/machine.hpp"

#include <cpuid.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <future>
#include <thread>

#include "vmlab/abi/cpuid.hpp"
#include "vmlab/boot.hpp"
#include "vmlab/memory_slots.hpp"

namespace vmlab {

namespace {

kvm_cpuid_entry2 cpuid_leaf(std::uint32_t function, std::uint32_t eax, std::uint32_t ebx = 0,
                            std::uint32_t ecx = 0, std::uint32_t edx = 0) {
  kvm_cpuid_entry2 entry{};
  entry.function = function;
  entry.eax = eax;
  entry.ebx = ebx;
  entry.ecx = ecx;
  entry.edx = edx;
  return entry;
}

// vmlab's own hypervisor leaves (abi/vmlab/cpuid.h) in place of KVM's:
// in every mode, so that `vmlab probe` can tell the VMM's CPUID from the
// host's, which a kernel at CPL3 sees on a host without CPUID faulting.
void publish_hypervisor_leaves(std::vector<kvm_cpuid_entry2>& cpuid, HypervisorLeaves which,
                               std::uint32_t tsc_khz) {
  std::erase_if(cpuid, [](const kvm_cpuid_entry2& entry) {
    return entry.function >= VMLAB_CPUID_HYPERVISOR_LEAF &&
           entry.function <= VMLAB_CPUID_HYPERVISOR_LEAF + 0xff;
  });
  if (which == HypervisorLeaves::Host) {
    // This process runs at CPL3 on the host, as a deprivileged guest kernel
    // does: what it reads is what such a kernel reads without CPUID faulting.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    __cpuid_count(VMLAB_CPUID_HYPERVISOR_LEAF, 0, eax, ebx, ecx, edx);
    const std::uint32_t last = std::min(eax, VMLAB_CPUID_HYPERVISOR_LEAF + 0xffu);
    for (std::uint32_t leaf = VMLAB_CPUID_HYPERVISOR_LEAF; leaf <= last; ++leaf) {
      __cpuid_count(leaf, 0, eax, ebx, ecx, edx);
      cpuid.push_back(cpuid_leaf(leaf, eax, ebx, ecx, edx));
    }
    return;
  }
  // The signature as three little-endian registers (EBX, ECX, EDX), the way
  // KVM and Xen publish theirs.
  static_assert(sizeof(VMLAB_CPUID_SIGNATURE) == 13);
  std::array<std::uint32_t, 3> signature{};
  std::memcpy(signature.data(), VMLAB_CPUID_SIGNATURE, 12);
  cpuid.push_back(cpuid_leaf(VMLAB_CPUID_HYPERVISOR_LEAF, VMLAB_CPUID_TIMING_LEAF, signature[0],
                             signature[1], signature[2]));
  cpuid.push_back(cpuid_leaf(VMLAB_CPUID_VERSION_LEAF, VMLAB_BOOT_VERSION));
  cpuid.push_back(cpuid_leaf(VMLAB_CPUID_TIMING_LEAF, tsc_khz));
}

}  // namespace

namespace {

// Guest-physical pages VT-x needs for its real-mode TSS and identity map
// (KVM API: KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR), just below 4 GiB
// where kvmtool and QEMU put them; guest RAM stops well short of this.
constexpr std::uint64_t kVmxIdentityMapAddress = 0xfffbc000;
constexpr std::uint64_t kVmxTssAddress = 0xfffbd000;

std::uint64_t little_endian_value(std::span<const std::uint8_t> data) {
  std::uint64_t value = 0;
  std::memcpy(&value, data.data(), std::min<std::size_t>(data.size(), sizeof value));
  return value;
}

EventReason reason_of(const VcpuExit& exit) {
  return std::visit(
      Overloaded{
          [](const exits::PortIn&) { return EventReason::IoIn; },
          [](const exits::PortOut&) { return EventReason::IoOut; },
          [](const exits::MmioRead&) { return EventReason::MmioRead; },
          [](const exits::MmioWrite&) { return EventReason::MmioWrite; },
          [](const exits::Halt&) { return EventReason::Halt; },
          [](const exits::Shutdown&) { return EventReason::Shutdown; },
          [](const exits::Interrupted&) { return EventReason::Interrupted; },
          [](const exits::InterruptWindowOpen&) { return EventReason::InterruptWindowOpen; },
          [](const exits::FailEntry&) { return EventReason::FailEntry; },
          [](const exits::InternalError&) { return EventReason::InternalError; },
          [](const exits::SystemEvent&) { return EventReason::SystemEvent; },
          [](const exits::Debug&) { return EventReason::Debug; },
          [](const exits::Unknown&) { return EventReason::Unknown; },
      },
      exit);
}

// The access an I/O exit made, into the event that records it.
void describe_access(const VcpuExit& exit, Event& event) {
  auto port = [&](IoPort number, std::uint8_t size, std::span<const std::uint8_t> data) {
    event.address = number.value();
    event.size = size;
    event.value = little_endian_value(data);
  };
  auto memory = [&](GuestPhysAddr address, std::span<const std::uint8_t> data) {
    event.address = address.value();
    event.size = static_cast<std::uint16_t>(data.size());
    event.value = little_endian_value(data);
  };
  if (const auto* in = std::get_if<exits::PortIn>(&exit)) port(in->port, in->size, in->data);
  if (const auto* out = std::get_if<exits::PortOut>(&exit)) port(out->port, out->size, out->data);
  if (const auto* read = std::get_if<exits::MmioRead>(&exit)) memory(read->address, read->data);
  if (const auto* write = std::get_if<exits::MmioWrite>(&exit)) memory(write->address, write->data);
}

}  // namespace

Result<std::unique_ptr<Machine>> Machine::create(const Kvm& kvm, const MachineConfig& config,
                                                 const BoardFactory& make_board,
                                                 std::unique_ptr<CpuMode> mode) {
  if (config.memory_size < kMinimumGuestMemory || config.memory_size > kMaximumGuestMemory) {
    return Error{MachineError::kInvalidMemorySize, "guest memory must be between 4 MiB and 3 GiB"};
  }
  // wait_for converts to the steady clock's nanoseconds: past about 292
  // years that overflows, and the guest would "time out" at once.
  if (config.timeout <= std::chrono::milliseconds::zero() || config.timeout > kMaximumTimeout) {
    return Error{MachineError::kInvalidTimeout,
                 "the run's timeout must be more than 0 and at most 24 hours"};
  }
  auto vm = kvm.create_vm();
  if (!vm) return vm.error();
  // Only VT-x uses these; other backends accept and ignore them or refuse
  // them harmlessly, so a failure is not fatal.
  (void)vm->set_identity_map_address(kVmxIdentityMapAddress);
  (void)vm->set_tss_address(kVmxTssAddress);

  // The board keeps a reference to the Vm (KVM_IRQ_LINE), so the Vm gets its
  // final home before the board is built.
  auto owned_vm = std::make_unique<Vm>(std::move(*vm));
  auto board = make_board(*owned_vm);  // before the vCPU: KVM_CREATE_IRQCHIP must precede it
  if (!board) return board.error();

  auto memory = GuestMemory::create(config.memory_size);
  if (!memory) return memory.error();
  if (auto status = owned_vm->set_user_memory_region(slot_number(MemorySlot::GuestRam), 0,
                                                     memory->size(), memory->host_base());
      !status) {
    return status.error();
  }

  auto vcpu = owned_vm->create_vcpu(0);
  if (!vcpu) return vcpu.error();
  // Hand the guest what KVM supports (long mode, SYSCALL, ...), with vmlab's
  // hypervisor leaves.
  auto cpuid = kvm.supported_cpuid();
  if (!cpuid) return cpuid.error();
  publish_hypervisor_leaves(*cpuid, config.hypervisor_leaves, vcpu->tsc_khz());
  if (auto status = vcpu->set_cpuid(*cpuid); !status) return status.error();

  std::unique_ptr<Machine> machine(new Machine(std::move(owned_vm), std::move(*memory),
                                               std::move(*board), std::move(*vcpu), std::move(mode),
                                               config));
  machine->m_sync_registers =
      (static_cast<unsigned>(kvm.check_extension(KVM_CAP_SYNC_REGS)) & KVM_SYNC_X86_REGS) != 0;
  return machine;
}

Machine::Machine(std::unique_ptr<Vm> vm, GuestMemory memory, std::unique_ptr<Board> board,
                 Vcpu vcpu, std::unique_ptr<CpuMode> mode, const MachineConfig& config)
    : m_vm(std::move(vm)),
      m_memory(std::move(memory)),
      m_board(std::move(board)),
      m_vcpu(std::move(vcpu)),
      m_mode(std::move(mode)),
      m_config(config),
      m_recorder(config.trace_capacity),
      m_context{*m_vm, m_vcpu, m_memory, *m_board, m_recorder, m_start} {}

Machine::~Machine() {
  m_board->stop();
}

Status Machine::load(std::span<const std::uint8_t> elf_image) {
  const auto reserved = boot_reserved_ranges();
  auto image = load_elf(elf_image, m_memory, reserved);
  if (!image) return image.error();
  BootParameters parameters;
  parameters.command_line = m_config.command_line;
  parameters.devices = m_board->device_table();
  parameters.paravirtual_abi = m_mode->paravirtual_abi();
  parameters.tsc_khz = m_vcpu.tsc_khz();
  if (auto status = write_boot_structures(m_memory, parameters); !status) return status;
  if (auto status = m_mode->prepare(m_context, *image); !status) return status;
  m_image = *image;
  m_loaded = true;
  return {};
}

std::uint64_t Machine::elapsed_ns() const {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now() - m_start)
                                        .count());
}

void Machine::request_stop() {
  m_stop.store(true);
  {
    // Taking the lock orders the store before a waiter's predicate check.
    std::lock_guard lock(m_board->device_lock());
  }
  m_interrupt_wakeup.notify_all();
  m_vcpu.kick();
}

void Machine::on_interrupt_raised() {
  // Called by the board's device threads (the PIT's timer), never with the
  // device lock held and never on the vCPU thread.
  { std::lock_guard lock(m_board->device_lock()); }
  m_interrupt_wakeup.notify_all();
  m_vcpu.kick();
}

RunReport Machine::run() {
  RunReport report;
  if (!m_loaded) {
    report.message = "no guest loaded";
    return report;
  }
  std::optional<StatsReader> stats;
  std::optional<StatsSnapshot> stats_before;
  auto stats_fd = m_vcpu.stats_fd();
  if (stats_fd) {
    auto reader = StatsReader::open(stats_fd->get());
    if (reader) {
      stats = std::move(*reader);
      auto snapshot = stats->read();
      if (snapshot) {
        stats_before = std::move(*snapshot);
      } else {
        report.stats_error = snapshot.error().message;
      }
    } else {
      report.stats_error = reader.error().message;
    }
  } else {
    report.stats_error = stats_fd.error().message;
  }

  m_start = std::chrono::steady_clock::now();
  m_board->start([this] { on_interrupt_raised(); });

  std::promise<void> finished;
  auto finished_future = finished.get_future();
  RunReport vcpu_report;
  std::thread vcpu_thread([&] {
    vcpu_thread_main(vcpu_report);
    finished.set_value();
  });
  const bool timed_out = finished_future.wait_for(m_config.timeout) == std::future_status::timeout;
  if (timed_out) request_stop();
  // The board's timer thread kicks the vCPU thread: stop it before that
  // thread is joined, so no signal can target a finished thread.
  m_board->stop();
  vcpu_thread.join();
  record_device_events();  // what the devices did after the last exit
  report.outcome = vcpu_report.outcome;
  report.exit_value = vcpu_report.exit_value;
  report.message = vcpu_report.message;
  report.registers = vcpu_report.registers;
  {
    std::lock_guard lock(m_board->device_lock());
    report.unmapped_port_accesses = m_board->port_bus().unmapped_accesses();
    report.unmapped_mmio_accesses = m_board->mmio_bus().unmapped_accesses();
  }
  if (timed_out && vcpu_report.outcome != RunOutcome::GuestExited) {
    report.outcome = RunOutcome::Timeout;
    // Milliseconds are the timeout's unit: 0.001 s must not read "0.0 s".
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g",
                  std::chrono::duration<double>(m_config.timeout).count());
    report.message = std::string("the guest was still running after the ") + seconds +
                     " s timeout; raise --timeout, or check the guest for a hang";
    report.registers = describe_registers(m_vcpu);
  }
  report.wall_time = std::chrono::steady_clock::now() - m_start;
  report.integrity_violation = m_mode->integrity_violation();
  // What is neither guest time nor sleeping in hlt is the VMM's own work.
  const auto wall_ns = static_cast<std::uint64_t>(report.wall_time.count());
  std::uint64_t accounted = m_recorder.halted_ns();
  for (auto level : {PrivilegeLevel::Monitor, PrivilegeLevel::GuestKernel,
                     PrivilegeLevel::GuestUser, PrivilegeLevel::Unknown}) {
    accounted += m_recorder.time_ns(level);
  }
  if (wall_ns > accounted) m_recorder.add_time(PrivilegeLevel::Vmm, wall_ns - accounted);

  if (stats && stats_before) {
    auto after = stats->read();
    if (after) {
      report.kvm_stats = stats_delta(*stats_before, *after);
      report.stats_available = true;
    } else {
      report.stats_error = after.error().message;
    }
  }
  return report;
}

void Machine::vcpu_thread_main(RunReport& report) {
  m_vcpu.prepare_thread();
  kvm_run& run = m_vcpu.run_state();
  // With KVM_CAP_SYNC_REGS, KVM copies the registers into kvm_run at every
  // exit for free, which tells the level the guest was at (for the time
  // shares) and its RIP (for trace events).
  while (true) {
    if (m_stop.load()) {
      report.outcome = RunOutcome::Timeout;
      report.message = "stopped";
      return;
    }
    auto injected = m_mode->deliver_interrupts(m_context);
    if (!injected) {
      report.outcome = injected.error().kind == ModeError::kGuestTripleFault
                           ? RunOutcome::GuestCrashed
                           : RunOutcome::VmmError;
      report.message = injected.error().message;
      report.registers = describe_registers(m_vcpu);
      return;
    }
    if (const Injection vector = *injected) {
      Event event;
      event.time_ns = elapsed_ns();
      event.kind = EventKind::InterruptInjection;
      event.reason = EventReason::ExternalInterrupt;
      event.address = *vector;
      event.from = PrivilegeLevel::Vmm;
      event.to = PrivilegeLevel::GuestKernel;
      m_recorder.record(event);
    }
    if (m_sync_registers) run.kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;

    const std::uint64_t entry_time = elapsed_ns();
    auto exit = m_vcpu.run();
    const std::uint64_t exit_time = elapsed_ns();
    // Read before the mode rewrites kvm_run's registers to resume the guest.
    PrivilegeLevel guest_level = PrivilegeLevel::Unknown;
    std::uint64_t guest_rip = 0;
    if (m_sync_registers) {
      guest_level = m_mode->level_at_exit(run);
      guest_rip = run.s.regs.regs.rip;
    }
    m_recorder.add_time(guest_level, exit_time - entry_time);
    if (!exit) {
      report.outcome = RunOutcome::VmmError;
      report.message = exit.error().message;
      report.registers = describe_registers(m_vcpu);
      return;
    }
    bool keep_running = true;
    const ExitDisposition disposition = m_mode->handle_exit(m_context, *exit);
    switch (disposition.kind()) {
      case ExitDisposition::Kind::NotMine:
        keep_running = handle_exit(*exit, report);
        break;
      case ExitDisposition::Kind::Handled:
        break;
      case ExitDisposition::Kind::WaitForInterrupt:
        wait_for_interrupt();
        break;
      case ExitDisposition::Kind::Stop:
        report.outcome = RunOutcome::GuestCrashed;
        report.message = disposition.stop_reason();
        report.registers = describe_registers(m_vcpu);
        keep_running = false;
        break;
    }

    Event event;
    event.time_ns = exit_time;
    event.duration_ns = elapsed_ns() - exit_time;
    event.kind = EventKind::VmExit;
    event.reason = reason_of(*exit);
    event.to = PrivilegeLevel::Vmm;
    event.from = guest_level;
    event.guest_rip = guest_rip;
    describe_access(*exit, event);
    m_recorder.record(event);
    record_device_events();
    if (!keep_running) return;
    if (auto value = m_board->exit_request()) {
      report.outcome = RunOutcome::GuestExited;
      report.exit_value = *value;
      return;
    }
  }
}

void Machine::record_device_events() {
  if (!m_board->device_events_pending()) return;
  for (const Event& event : m_board->take_device_events(elapsed_ns()))
    m_recorder.record(event);
}

bool Machine::handle_exit(const VcpuExit& exit, RunReport& report) {
  const ExitAction action = handle_core_exit(*m_board, exit);
  switch (action.kind) {
    case ExitAction::Kind::Continue:
      return true;
    case ExitAction::Kind::Halt:
      wait_for_interrupt();
      return true;
    case ExitAction::Kind::End:
      report.outcome = action.outcome;
      report.message = action.message;
      report.registers = describe_registers(m_vcpu);
      return false;
  }
  return false;
}

void Machine::wait_for_interrupt() {
  // hlt: the vCPU thread sleeps until an interrupt is due (DESIGN.md 5).
  const std::uint64_t start = elapsed_ns();
  std::unique_lock lock(m_board->device_lock());
  InterruptController* controller = m_board->interrupt_controller();
  // Only an interrupt the guest can take ends hlt: with IF clear, a real CPU
  // stays halted (until NMI or reset), and so does this one.
  m_interrupt_wakeup.wait(lock, [&] {
    return m_stop.load() || m_board->exit_request().has_value() ||
           (controller != nullptr && controller->interrupt_pending() &&
            m_mode->interrupts_enabled(m_context));
  });
  // Kicks that arrived while asleep set immediate_exit; the loop top checks
  // everything they were for, so the next KVM_RUN need not return at once.
  m_vcpu.run_state().immediate_exit = 0;
  Event event;
  event.time_ns = start;
  event.duration_ns = elapsed_ns() - start;
  event.kind = EventKind::GuestHalt;
  event.reason = EventReason::Halt;
  event.from = PrivilegeLevel::GuestKernel;
  event.to = PrivilegeLevel::Vmm;
  m_recorder.record(event);
  m_recorder.add_halted_time(event.duration_ns);
}

}  // namespace vmlab
