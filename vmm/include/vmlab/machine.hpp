// One VM: KVM objects, guest RAM, a board, a CPU mode, and the vCPU run loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "vmlab/board.hpp"
#include "vmlab/cpu_mode.hpp"
#include "vmlab/events.hpp"
#include "vmlab/exit_handler.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/kvm_stats.hpp"
#include "vmlab/run_loop.hpp"

namespace vmlab {

// Why Machine::create refused its configuration.
enum class MachineError {
  kInvalidMemorySize = 1,  // guest memory outside [kMinimumGuestMemory, kMaximumGuestMemory]
  kInvalidTimeout,         // a timeout of 0 or less, or more than kMaximumTimeout
};
constexpr const char* error_domain(MachineError) {
  return "machine";
}

// What Machine::create accepts. Guest RAM ends below the VT-x pages it puts
// just under 4 GiB.
constexpr std::uint64_t kMinimumGuestMemory = 4 * MiB;
constexpr std::uint64_t kMaximumGuestMemory = 3 * GiB;
constexpr std::chrono::milliseconds kMaximumTimeout = std::chrono::hours(24);

// The CPUID hypervisor leaves (0x40000000 up) the VMM hands the guest.
enum class HypervisorLeaves {
  Vmlab,  // vmlab's (abi/vmlab/cpuid.h)
  // The host's own, as the VMM process reads them with `cpuid`: what a kernel
  // at CPL3 sees on a host without CPUID faulting (PLATFORM.md "Hosts
  // differ"). Tests use it to show nothing in the guest depends on vmlab's.
  Host,
};

struct MachineConfig {
  std::uint64_t memory_size = 64 * MiB;
  HypervisorLeaves hypervisor_leaves = HypervisorLeaves::Vmlab;
  std::string command_line;
  std::chrono::milliseconds timeout{30'000};  // more than 0, at most kMaximumTimeout
  std::size_t trace_capacity = 0;             // events kept in the ring; 0 = count only
  EventObserver* event_observer = nullptr;    // sees every event as it happens (--live)
};

struct RunReport {
  RunOutcome outcome = RunOutcome::VmmError;
  std::uint32_t exit_value = 0;  // what the guest wrote to the exit port
  std::string message;           // what happened, for anything but GuestExited
  std::string registers;         // register dump when the guest died
  std::chrono::nanoseconds wall_time{0};
  std::uint32_t tsc_khz = 0;  // the guest's TSC rate (KVM_GET_TSC_KHZ), 0 if KVM cannot say
  bool stats_available = false;
  std::string stats_error;
  StatsSnapshot kvm_stats;                         // delta of KVM's vCPU stats over the run
  std::optional<std::string> integrity_violation;  // from the mode, after the run
  std::uint64_t unmapped_port_accesses = 0;
  std::uint64_t unmapped_mmio_accesses = 0;
};

using BoardFactory = std::function<Result<std::unique_ptr<Board>>(Vm& vm)>;

class Machine {
 public:
  static Result<std::unique_ptr<Machine>> create(const Kvm& kvm, const MachineConfig& config,
                                                 const BoardFactory& make_board,
                                                 std::unique_ptr<CpuMode> mode);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Loads the guest ELF and writes the boot structures.
  Status load(std::span<const std::uint8_t> elf_image);
  // Runs until the guest exits, dies, or the timeout passes. Once per Machine.
  RunReport run();
  // Ends run() early and cleanly (RunOutcome::Stopped); thread-safe, not
  // from a signal handler.
  void request_stop() { m_run_loop.stop(); }

  const EventRecorder& recorder() const { return m_recorder; }
  GuestMemory& memory() { return m_memory; }
  Board& board() { return *m_board; }
  std::string_view mode_name() const { return m_mode->name(); }

 private:
  Machine(std::unique_ptr<Vm> vm, GuestMemory memory, std::unique_ptr<Board> board, Vcpu vcpu,
          std::unique_ptr<CpuMode> mode, const MachineConfig& config, RegisterSync sync);

  std::unique_ptr<Vm> m_vm;  // on the heap: the board refers to it from creation on
  GuestMemory m_memory;
  std::unique_ptr<Board> m_board;
  Vcpu m_vcpu;
  std::unique_ptr<CpuMode> m_mode;
  MachineConfig m_config;
  EventRecorder m_recorder;
  SteadyRunClock m_clock;
  // The loop calls the mode through m_bound_mode, bound to m_context, which
  // reads the loop's run time: each refers to the next.
  BoundCpuMode m_bound_mode;
  RunLoop m_run_loop;
  ModeContext m_context;
  LoadedImage m_image;
  bool m_loaded = false;
};

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::MachineError);
