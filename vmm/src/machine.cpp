#include "vmlab/machine.hpp"

#include <cpuid.h>

#include <algorithm>
#include <array>
#include <cstring>

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

// Guest-physical pages VT-x needs for its real-mode TSS and identity map
// (KVM API: KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR), just below 4 GiB
// where kvmtool and QEMU put them; guest RAM stops well short of this.
constexpr std::uint64_t kVmxIdentityMapAddress = 0xfffbc000;
constexpr std::uint64_t kVmxTssAddress = 0xfffbd000;

}  // namespace

Result<std::unique_ptr<Machine>> Machine::create(const Kvm& kvm, const MachineConfig& config,
                                                 const BoardFactory& make_board,
                                                 std::unique_ptr<CpuMode> mode) {
  if (config.memory_size < kMinimumGuestMemory || config.memory_size > kMaximumGuestMemory) {
    return Error{MachineError::kInvalidMemorySize, "guest memory must be between 4 MiB and 3 GiB"};
  }
  // The run's deadline is the steady clock's nanoseconds: past about 292
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

  const bool sync_registers =
      (static_cast<unsigned>(kvm.check_extension(KVM_CAP_SYNC_REGS)) & KVM_SYNC_X86_REGS) != 0;
  return std::unique_ptr<Machine>(
      new Machine(std::move(owned_vm), std::move(*memory), std::move(*board), std::move(*vcpu),
                  std::move(mode), config, sync_registers ? RegisterSync::On : RegisterSync::Off));
}

Machine::Machine(std::unique_ptr<Vm> vm, GuestMemory memory, std::unique_ptr<Board> board,
                 Vcpu vcpu, std::unique_ptr<CpuMode> mode, const MachineConfig& config,
                 RegisterSync sync)
    : m_vm(std::move(vm)),
      m_memory(std::move(memory)),
      m_board(std::move(board)),
      m_vcpu(std::move(vcpu)),
      m_mode(std::move(mode)),
      m_config(config),
      m_recorder(config.trace_capacity, config.event_observer),
      m_bound_mode(*m_mode, m_context),  // only bound here: called once the context is built
      m_run_loop(m_vcpu, m_bound_mode, *m_board, m_recorder, m_clock, sync),
      m_context{*m_vm, m_vcpu, m_memory, *m_board, m_recorder, m_run_loop.run_time()} {}

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

RunReport Machine::run() {
  RunReport report;
  report.tsc_khz = m_vcpu.tsc_khz();
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

  RunEnd end = m_run_loop.run(m_config.timeout);
  report.outcome = end.outcome;
  report.exit_value = end.exit_value;
  report.message = std::move(end.message);
  report.registers = std::move(end.registers);
  {
    std::lock_guard lock(m_board->device_lock());
    report.unmapped_port_accesses = m_board->port_bus().unmapped_accesses();
    report.unmapped_mmio_accesses = m_board->mmio_bus().unmapped_accesses();
  }
  report.wall_time = std::chrono::nanoseconds(m_run_loop.run_time().now_ns());
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

}  // namespace vmlab
