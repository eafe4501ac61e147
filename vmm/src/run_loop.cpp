#include "vmlab/run_loop.hpp"

#include <cstdio>
#include <span>
#include <thread>
#include <utility>

#include "vmlab/little_endian.hpp"

namespace vmlab {

namespace {

// What the vCPU thread says when it ends because it was told to: the time
// limit or stop() then gives the run's real message.
constexpr const char* kStoppedMessage = "stopped";

// The exit, into the event that records it: its reason and, for I/O, the
// port or address, the width and the data.
void describe_exit(const VcpuExit& exit, Event& event) {
  auto access = [&](EventReason reason, std::uint64_t address, std::size_t size,
                    std::span<const std::uint8_t> data) {
    event.reason = reason;
    event.address = address;
    event.size = static_cast<std::uint16_t>(size);
    event.value = load_little_endian(data);
  };
  auto reason = [&](EventReason why) { event.reason = why; };
  std::visit(
      Overloaded{
          [&](const exits::PortIn& in) {
            access(EventReason::IoIn, in.port.value(), in.size, in.data);
          },
          [&](const exits::PortOut& out) {
            access(EventReason::IoOut, out.port.value(), out.size, out.data);
          },
          [&](const exits::MmioRead& read) {
            access(EventReason::MmioRead, read.address.value(), read.data.size(), read.data);
          },
          [&](const exits::MmioWrite& write) {
            access(EventReason::MmioWrite, write.address.value(), write.data.size(), write.data);
          },
          [&](const exits::Halt&) { reason(EventReason::Halt); },
          [&](const exits::Shutdown&) { reason(EventReason::Shutdown); },
          [&](const exits::Interrupted&) { reason(EventReason::Interrupted); },
          [&](const exits::InterruptWindowOpen&) { reason(EventReason::InterruptWindowOpen); },
          [&](const exits::FailEntry&) { reason(EventReason::FailEntry); },
          [&](const exits::InternalError&) { reason(EventReason::InternalError); },
          [&](const exits::SystemEvent&) { reason(EventReason::SystemEvent); },
          [&](const exits::Debug&) { reason(EventReason::Debug); },
          [&](const exits::Unknown&) { reason(EventReason::Unknown); },
      },
      exit);
}

}  // namespace

RunLoop::RunLoop(VirtualCpu& vcpu, RunLoopMode& mode, Board& board, EventRecorder& recorder,
                 RunClock& clock, RegisterSync sync)
    : m_vcpu(vcpu),
      m_mode(mode),
      m_board(board),
      m_recorder(recorder),
      m_clock(clock),
      m_sync(sync),
      m_run_time(clock) {}

RunEnd RunLoop::run(std::chrono::milliseconds time_limit) {
  m_run_time.start();
  m_board.start([this] { on_interrupt_raised(); });

  RunEnd end;
  std::thread vcpu_thread([&] {
    vcpu_thread_main(end);
    {
      std::lock_guard lock(m_finish_lock);
      m_finished.store(true);
    }
    m_clock.wake_waiters();
  });
  const auto deadline = m_run_time.start_ns() +
                        static_cast<std::uint64_t>(std::chrono::nanoseconds(time_limit).count());
  const bool timed_out = !m_clock.wait_until(deadline, [this] { return m_finished.load(); });
  if (timed_out) request_stop();
  // The board's timer thread kicks the vCPU thread: stop it before that
  // thread is joined, so no signal can target a finished thread.
  m_board.stop();
  vcpu_thread.join();
  record_device_events();  // what the devices did after the last exit
  if (m_stop_requested.load() && !timed_out && end.message == kStoppedMessage) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.3f", static_cast<double>(m_run_time.now_ns()) / 1e9);
    end_run(end, RunOutcome::Stopped, std::string("stopped on request after ") + seconds + " s");
  } else if (timed_out && end.outcome != RunOutcome::GuestExited) {
    // Milliseconds are the limit's unit: 0.001 s must not read "0.0 s".
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", std::chrono::duration<double>(time_limit).count());
    end_run(end, RunOutcome::Timeout,
            std::string("the guest was still running after the ") + seconds +
                " s timeout; raise --timeout, or check the guest for a hang");
  }
  return end;
}

void RunLoop::end_run(RunEnd& end, RunOutcome outcome, std::string message) {
  end.outcome = outcome;
  end.message = std::move(message);
  end.registers = describe_registers(m_vcpu);
}

void RunLoop::stop() {
  std::lock_guard lock(m_finish_lock);
  if (m_finished.load()) return;
  m_stop_requested.store(true);
  request_stop();
}

void RunLoop::request_stop() {
  m_stop.store(true);
  {
    // Taking the lock orders the store before a waiter's predicate check.
    std::lock_guard lock(m_board.device_lock());
  }
  m_interrupt_wakeup.notify_all();
  m_vcpu.kick();
}

void RunLoop::on_interrupt_raised() {
  // Called by the board's device threads (the PIT's timer), never with the
  // device lock held and never on the vCPU thread.
  { std::lock_guard lock(m_board.device_lock()); }
  m_interrupt_wakeup.notify_all();
  m_vcpu.kick();
}

void RunLoop::vcpu_thread_main(RunEnd& end) {
  m_vcpu.prepare_thread();
  kvm_run& run = m_vcpu.run_state();
  while (true) {
    if (m_stop.load()) {
      end.outcome = RunOutcome::Timeout;
      end.message = kStoppedMessage;
      return;
    }
    auto injected = m_mode.deliver_interrupts();
    if (!injected) {
      end_run(end,
              injected.error().kind == ModeError::kGuestTripleFault ? RunOutcome::GuestCrashed
                                                                    : RunOutcome::VmmError,
              injected.error().message);
      return;
    }
    if (const Injection vector = *injected) {
      m_recorder.record({.time_ns = m_run_time.now_ns(),
                         .address = *vector,
                         .kind = EventKind::InterruptInjection,
                         .reason = EventReason::ExternalInterrupt,
                         .from = PrivilegeLevel::Vmm,
                         .to = PrivilegeLevel::GuestKernel});
    }
    // With KVM_CAP_SYNC_REGS, KVM copies the registers into kvm_run at every
    // exit for free, which tells the level the guest was at (for the time
    // shares) and its RIP (for trace events).
    if (m_sync == RegisterSync::On) run.kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;

    const std::uint64_t entry_time = m_run_time.now_ns();
    auto exit = m_vcpu.run();
    const std::uint64_t exit_time = m_run_time.now_ns();
    // Read before the mode rewrites kvm_run's registers to resume the guest.
    PrivilegeLevel guest_level = PrivilegeLevel::Unknown;
    std::uint64_t guest_rip = 0;
    if (m_sync == RegisterSync::On) {
      guest_level = m_mode.level_at_exit(run);
      guest_rip = run.s.regs.regs.rip;
    }
    m_recorder.add_time(guest_level, exit_time - entry_time);
    if (!exit) {
      end_run(end, RunOutcome::VmmError, exit.error().message);
      return;
    }
    // The mode first, then the core (STYLE.md 2).
    bool keep_running = true;
    const ExitDisposition disposition = m_mode.handle_exit(*exit);
    switch (disposition.kind()) {
      case ExitDisposition::Kind::NotMine:
        keep_running = handle_core(*exit, end);
        break;
      case ExitDisposition::Kind::Handled:
        break;
      case ExitDisposition::Kind::WaitForInterrupt:
        wait_for_interrupt();
        break;
      case ExitDisposition::Kind::Stop:
        end_run(end, RunOutcome::GuestCrashed, disposition.stop_reason());
        keep_running = false;
        break;
    }
    record_exit(*exit, exit_time, guest_level, guest_rip);
    record_device_events();
    if (!keep_running) return;
    if (auto value = m_board.exit_request()) {
      end.outcome = RunOutcome::GuestExited;
      end.exit_value = *value;
      return;
    }
  }
}

bool RunLoop::handle_core(const VcpuExit& exit, RunEnd& end) {
  const ExitAction action = handle_core_exit(m_board, exit);
  switch (action.kind) {
    case ExitAction::Kind::Continue:
      return true;
    case ExitAction::Kind::Halt:
      wait_for_interrupt();
      return true;
    case ExitAction::Kind::End:
      end_run(end, action.outcome, action.message);
      return false;
  }
  return false;
}

void RunLoop::record_exit(const VcpuExit& exit, std::uint64_t exit_time, PrivilegeLevel guest_level,
                          std::uint64_t guest_rip) {
  Event event{.time_ns = exit_time,
              .duration_ns = m_run_time.now_ns() - exit_time,
              .guest_rip = guest_rip,
              .kind = EventKind::VmExit,
              .from = guest_level,
              .to = PrivilegeLevel::Vmm};
  describe_exit(exit, event);
  m_recorder.record(event);
}

void RunLoop::record_device_events() {
  if (!m_board.device_events_pending()) return;
  for (const Event& event : m_board.take_device_events(m_run_time.now_ns()))
    m_recorder.record(event);
}

void RunLoop::wait_for_interrupt() {
  // hlt: the vCPU thread sleeps until an interrupt is due (DESIGN.md 5).
  const std::uint64_t start = m_run_time.now_ns();
  std::unique_lock lock(m_board.device_lock());
  InterruptController* controller = m_board.interrupt_controller();
  // Only an interrupt the guest can take ends hlt: with IF clear, a real CPU
  // stays halted (until NMI or reset), and so does this one.
  m_interrupt_wakeup.wait(lock, [&] {
    return m_stop.load() || m_board.exit_request().has_value() ||
           (controller != nullptr && controller->interrupt_pending() &&
            m_mode.interrupts_enabled());
  });
  // Kicks that arrived while asleep set immediate_exit; the loop top checks
  // everything they were for, so the next KVM_RUN need not return at once.
  m_vcpu.run_state().immediate_exit = 0;
  const std::uint64_t duration = m_run_time.now_ns() - start;
  m_recorder.record({.time_ns = start,
                     .duration_ns = duration,
                     .kind = EventKind::GuestHalt,
                     .reason = EventReason::Halt,
                     .from = PrivilegeLevel::GuestKernel,
                     .to = PrivilegeLevel::Vmm});
  m_recorder.add_halted_time(duration);
}

}  // namespace vmlab
