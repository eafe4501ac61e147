// The vCPU run loop (STYLE.md 2): deliver interrupts, enter the guest, offer
// the decoded exit to the CPU mode first and to the core second
// (exit_handler.hpp), sleep in hlt until an interrupt the guest can take is
// due, and stop the run at its time limit. It is written against narrow
// interfaces (STYLE.md 7): a VirtualCpu (kvm.hpp), the mode's per-exit calls
// (RunLoopMode), a Board and a RunClock (clock.hpp), so unit tests drive it
// with a scripted vCPU, fakes and a clock they advance by hand, without KVM
// or sleeping.
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "vmlab/board.hpp"
#include "vmlab/clock.hpp"
#include "vmlab/cpu_mode.hpp"
#include "vmlab/events.hpp"
#include "vmlab/exit_handler.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

// The CPU mode as the run loop calls it: CpuMode's per-exit calls with their
// ModeContext bound (a context needs a KVM Vm and Vcpu, which the loop's
// tests do not have). BoundCpuMode is the production one.
class RunLoopMode {
 public:
  virtual ~RunLoopMode() = default;
  virtual Result<Injection> deliver_interrupts() = 0;
  virtual PrivilegeLevel level_at_exit(const kvm_run& run) const = 0;
  virtual bool interrupts_enabled() const = 0;
  virtual ExitDisposition handle_exit(const VcpuExit& exit) = 0;
};

class BoundCpuMode final : public RunLoopMode {
 public:
  BoundCpuMode(CpuMode& mode, ModeContext& context) : m_mode(mode), m_context(context) {}
  Result<Injection> deliver_interrupts() override { return m_mode.deliver_interrupts(m_context); }
  PrivilegeLevel level_at_exit(const kvm_run& run) const override {
    return m_mode.level_at_exit(run);
  }
  bool interrupts_enabled() const override { return m_mode.interrupts_enabled(m_context); }
  ExitDisposition handle_exit(const VcpuExit& exit) override {
    return m_mode.handle_exit(m_context, exit);
  }

 private:
  CpuMode& m_mode;
  ModeContext& m_context;
};

// How a run ended.
struct RunEnd {
  RunOutcome outcome = RunOutcome::VmmError;
  std::uint32_t exit_value = 0;  // what the guest wrote to the exit port
  std::string message;           // what happened, for anything but GuestExited
  std::string registers;         // register dump when the guest died or the VMM failed
};

// Whether KVM copies the guest's registers into kvm_run at every exit
// (KVM_CAP_SYNC_REGS): then events carry the guest's RIP and the level it
// ran at, without an ioctl.
enum class RegisterSync { Off, On };

class RunLoop {
 public:
  RunLoop(VirtualCpu& vcpu, RunLoopMode& mode, Board& board, EventRecorder& recorder,
          RunClock& clock, RegisterSync sync);
  RunLoop(const RunLoop&) = delete;
  RunLoop& operator=(const RunLoop&) = delete;

  // Starts the board, runs the vCPU on a thread of its own until the guest
  // exits or dies or `time_limit` has passed on the clock, and stops the
  // board. Once per loop.
  RunEnd run(std::chrono::milliseconds time_limit);

  // Ends the run as soon as the vCPU thread is out of the guest
  // (RunOutcome::Stopped), from any thread but a signal handler; before
  // run(), the run ends as it starts; after it, does nothing.
  void stop();

  // Nanoseconds since run() started, on the loop's clock: what event times
  // are (ModeContext reads it too).
  const Clock& run_time() const { return m_run_time; }

 private:
  class RunTime final : public Clock {
   public:
    explicit RunTime(const Clock& clock) : m_clock(clock) {}
    void start() {
      m_start_ns = m_clock.now_ns();
      m_started = true;
    }
    std::uint64_t start_ns() const { return m_start_ns; }
    // 0 before the run starts: what a mode records while it prepares the
    // vCPU (bt translates the first block then) happens at the run's start.
    std::uint64_t now_ns() const override { return m_started ? m_clock.now_ns() - m_start_ns : 0; }

   private:
    const Clock& m_clock;
    std::uint64_t m_start_ns = 0;
    bool m_started = false;
  };

  void vcpu_thread_main(RunEnd& end);
  // The core's half of an exit the mode did not claim; false ends the run.
  bool handle_core(const VcpuExit& exit, RunEnd& end);
  // Ends the run as `outcome`, with the vCPU's registers.
  void end_run(RunEnd& end, RunOutcome outcome, std::string message);
  void record_exit(const VcpuExit& exit, std::uint64_t exit_time, PrivilegeLevel guest_level,
                   std::uint64_t guest_rip);
  // Records the events the board's device threads produced (IOMMU faults);
  // on the vCPU thread, or after it has ended.
  void record_device_events();
  void wait_for_interrupt();
  void request_stop();
  void on_interrupt_raised();

  VirtualCpu& m_vcpu;
  RunLoopMode& m_mode;
  Board& m_board;
  EventRecorder& m_recorder;
  RunClock& m_clock;
  RegisterSync m_sync;
  RunTime m_run_time;

  std::atomic<bool> m_stop{false};
  std::atomic<bool> m_stop_requested{false};  // stop() asked, not the time limit
  // Held while the vCPU thread is marked finished and while stop() kicks it,
  // so a kick never targets a thread that has ended.
  std::mutex m_finish_lock;
  std::atomic<bool> m_finished{false};         // the vCPU thread has returned
  std::condition_variable m_interrupt_wakeup;  // waited on with the device lock, in hlt
};

}  // namespace vmlab
