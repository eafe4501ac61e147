// The run loop without KVM (STYLE.md 7): a vCPU that returns a scripted list
// of exits, a mode that records what it is offered, the fake board, and a
// clock the test advances by hand, so a timeout fires without sleeping.
#include "vmlab/run_loop.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "fake_board.hpp"

namespace vmlab {
namespace {

using testing::FakeBoard;

constexpr std::uint64_t kGuestRip = 0x101234;

// Returns its script's exits one per entry; past the end, a VMM error.
class ScriptedVcpu final : public VirtualCpu {
 public:
  void prepare_thread() override {}
  Result<VcpuExit> run() override {
    ++entries;
    if (entries > script.size()) return Error{KvmError::kIoctlFailed, "the script has ended"};
    return script[entries - 1];
  }
  void kick() override { kicks.fetch_add(1); }
  kvm_run& run_state() override { return state; }
  Result<kvm_regs> registers() const override {
    kvm_regs registers{};
    registers.rip = kGuestRip;
    return registers;
  }
  Result<kvm_sregs> special_registers() const override { return kvm_sregs{}; }

  // The script: one step per entry, an exit or the error run() returns.
  template <typename... Steps>
  void play(Steps... steps) {
    (script.push_back(step_of(std::move(steps))), ...);
  }

  std::vector<Result<VcpuExit>> script;
  std::size_t entries = 0;
  std::atomic<int> kicks{0};
  kvm_run state{};

 private:
  static Result<VcpuExit> step_of(Error error) { return error; }
  template <typename Exit>
  static Result<VcpuExit> step_of(Exit exit) {
    return VcpuExit(std::move(exit));
  }
};

// Records what the loop asks of it. It claims the exits `claim` says it
// does, and injects what the board's controller raised.
class FakeMode final : public RunLoopMode {
 public:
  explicit FakeMode(FakeBoard& board) : m_board(board) {}

  Result<Injection> deliver_interrupts() override {
    ++deliveries;
    if (delivery_error) return *delivery_error;
    std::lock_guard lock(m_board.device_lock());
    if (!m_board.controller.pending.load() || !interrupts_on) return kNoInjection;
    injected.push_back(m_board.controller.acknowledge());
    return Injection{injected.back()};
  }
  PrivilegeLevel level_at_exit(const kvm_run&) const override { return PrivilegeLevel::GuestUser; }
  bool interrupts_enabled() const override { return interrupts_on; }
  ExitDisposition handle_exit(const VcpuExit& exit) override {
    // What the board's device had seen when the mode was offered the exit.
    offered.push_back({exit, m_board.port_device.accesses.size()});
    return claim(exit);
  }

  struct Offer {
    VcpuExit exit;
    std::size_t port_accesses_before;
  };
  std::vector<Offer> offered;
  std::vector<std::uint8_t> injected;
  int deliveries = 0;
  bool interrupts_on = true;
  std::optional<Error> delivery_error;
  std::function<ExitDisposition(const VcpuExit&)> claim = [](const VcpuExit&) {
    return ExitDisposition::not_mine();
  };

 private:
  FakeBoard& m_board;
};

// Time moves only when the test says.
class ManualClock final : public RunClock {
 public:
  std::uint64_t now_ns() const override {
    std::lock_guard lock(m_lock);
    return m_now_ns;
  }
  void advance(std::chrono::nanoseconds by) {
    {
      std::lock_guard lock(m_lock);
      m_now_ns += static_cast<std::uint64_t>(by.count());
    }
    m_changed.notify_all();
  }
  bool wait_until(std::uint64_t deadline_ns, const std::function<bool()>& finished) override {
    std::unique_lock lock(m_lock);
    m_changed.wait(lock, [&] { return finished() || m_now_ns >= deadline_ns; });
    return finished();
  }
  void wake_waiters() override {
    { std::lock_guard lock(m_lock); }
    m_changed.notify_all();
  }

 private:
  mutable std::mutex m_lock;
  std::condition_variable m_changed;
  std::uint64_t m_now_ns = 5'000'000'000;
};

constexpr std::chrono::milliseconds kTimeLimit{30'000};
constexpr auto kTimeLimitNs =
    static_cast<std::uint64_t>(std::chrono::nanoseconds(kTimeLimit).count());

// Does `action` on a thread of its own, as a board's timer thread would, once
// the halted loop has asked whether an interrupt is pending and gone to
// sleep: it waits for the device lock, which the loop holds until then.
class WhenHalted {
 public:
  WhenHalted(FakeBoard& board, std::function<void()> action)
      : m_thread([this, &board, action = std::move(action)] {
          std::unique_lock guard(m_lock);
          m_changed.wait(guard, [this] { return m_halted || m_finished; });
          if (!m_halted) return;
          guard.unlock();
          { std::lock_guard device(board.device_lock()); }
          action();
        }) {
    board.controller.on_poll = [this] {
      {
        std::lock_guard guard(m_lock);
        m_halted = true;
      }
      m_changed.notify_all();
    };
  }
  WhenHalted(const WhenHalted&) = delete;
  WhenHalted& operator=(const WhenHalted&) = delete;
  ~WhenHalted() {
    {
      std::lock_guard guard(m_lock);
      m_finished = true;
    }
    m_changed.notify_all();
    m_thread.join();
  }

 private:
  std::mutex m_lock;
  std::condition_variable m_changed;
  bool m_halted = false;
  bool m_finished = false;  // the test is over, halted or not
  std::thread m_thread;
};

class RunLoopTest : public ::testing::Test {
 protected:
  RunEnd run(RegisterSync sync = RegisterSync::Off) {
    RunLoop loop(vcpu, mode, board, recorder, clock, sync);
    return loop.run(kTimeLimit);
  }
  VcpuExit exit_with_status(std::uint8_t status) {
    exit_port_data = {status, 0, 0, 0};
    return exits::PortOut{IoPort(FakeBoard::kExitPort), 4, 1, exit_port_data};
  }
  // While the guest is halted, the clock runs past the run's time limit.
  WhenHalted time_runs_out() {
    return WhenHalted(board, [this] { clock.advance(kTimeLimit + std::chrono::milliseconds(1)); });
  }
  // How long the guest was halted, on the test's clock.
  std::optional<std::uint64_t> halted_ns() const {
    for (const Event& event : recorder.events()) {
      if (event.kind == EventKind::GuestHalt) return event.duration_ns;
    }
    return std::nullopt;
  }
  std::size_t index_of(EventKind kind) const {
    const auto events = recorder.events();
    for (std::size_t index = 0; index < events.size(); ++index) {
      if (events[index].kind == kind) return index;
    }
    return events.size();
  }

  FakeBoard board;
  FakeMode mode{board};
  ScriptedVcpu vcpu;
  EventRecorder recorder{64};
  ManualClock clock;
  std::array<std::uint8_t, 1> out_data{0x41};
  std::array<std::uint8_t, 2> in_data{};
  std::array<std::uint8_t, 4> mmio_data{1, 2, 3, 4};
  std::array<std::uint8_t, 4> exit_port_data{};
};

TEST_F(RunLoopTest, OffersEveryExitToTheModeBeforeTheCore) {
  vcpu.state.s.regs.regs.rip = 0x400010;
  vcpu.play(exits::PortOut{IoPort(0x61), 1, 1, out_data},
            exits::MmioWrite{GuestPhysAddr(0xfeb00010), mmio_data},
            exits::PortIn{IoPort(0x62), 2, 1, in_data}, exit_with_status(7));
  mode.claim = [](const VcpuExit& exit) {
    return std::holds_alternative<exits::MmioWrite>(exit) ? ExitDisposition::handled()
                                                          : ExitDisposition::not_mine();
  };
  const RunEnd end = run(RegisterSync::On);

  EXPECT_EQ(end.outcome, RunOutcome::GuestExited) << end.message;
  EXPECT_EQ(end.exit_value, 7u);
  ASSERT_EQ(mode.offered.size(), 4u);
  EXPECT_TRUE(std::holds_alternative<exits::PortOut>(mode.offered[0].exit));
  EXPECT_TRUE(std::holds_alternative<exits::MmioWrite>(mode.offered[1].exit));
  EXPECT_TRUE(std::holds_alternative<exits::PortIn>(mode.offered[2].exit));
  EXPECT_TRUE(std::holds_alternative<exits::PortOut>(mode.offered[3].exit));
  // When the mode is offered an exit, the board's device has not seen it yet.
  const std::size_t seen_before[] = {0, 1, 1, 2};
  for (std::size_t index = 0; index < 4; ++index) {
    EXPECT_EQ(mode.offered[index].port_accesses_before, seen_before[index]) << "exit " << index;
  }
  EXPECT_TRUE(board.mmio_device.accesses.empty()) << "the mode handled the MMIO write";
  ASSERT_EQ(board.port_device.accesses.size(), 2u);
  EXPECT_TRUE(board.port_device.accesses[0].write);
  EXPECT_EQ(board.port_device.accesses[1].offset, 2u);
  EXPECT_EQ(in_data, (std::array<std::uint8_t, 2>{2, 2})) << "the core filled the input";
  EXPECT_EQ(mode.deliveries, 4) << "interrupts are delivered before every entry";

  // Each exit is an event with the guest's RIP and level, which KVM synced.
  EXPECT_EQ(vcpu.state.kvm_valid_regs, KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS);
  const auto events = recorder.events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].reason, EventReason::IoOut);
  EXPECT_EQ(events[0].address, 0x61u);
  EXPECT_EQ(events[0].value, 0x41u);
  EXPECT_EQ(events[0].guest_rip, 0x400010u);
  EXPECT_EQ(events[0].from, PrivilegeLevel::GuestUser);
  EXPECT_EQ(events[1].reason, EventReason::MmioWrite);
  EXPECT_EQ(events[1].value, 0x04030201u);
}

// Who decides the guest halted: the core for a hlt exit, or the mode (a
// deprivileged kernel's hlt traps and the mode emulates it).
enum class HaltedBy { Core, Mode };

class RunLoopHaltTest : public RunLoopTest, public ::testing::WithParamInterface<HaltedBy> {
 protected:
  VcpuExit halt() {
    if (GetParam() == HaltedBy::Core) return exits::Halt{};
    mode.claim = [](const VcpuExit& exit) {
      return std::holds_alternative<exits::Debug>(exit) ? ExitDisposition::wait_for_interrupt()
                                                        : ExitDisposition::not_mine();
    };
    return exits::Debug{};
  }
};

TEST_P(RunLoopHaltTest, SleepsUntilTheBoardRaisesAnInterrupt) {
  vcpu.play(halt(), exit_with_status(0));
  RunEnd end;
  {
    WhenHalted timer(board, [this] { board.raise_interrupt(); });
    end = run();
  }

  EXPECT_EQ(end.outcome, RunOutcome::GuestExited) << end.message;
  EXPECT_EQ(mode.injected, std::vector<std::uint8_t>{0x20});
  EXPECT_EQ(vcpu.entries, 2u) << "resumed after the halt";
  EXPECT_GE(vcpu.kicks.load(), 1) << "the raised interrupt kicks the vCPU";
  EXPECT_EQ(recorder.count(EventKind::GuestHalt, EventReason::Halt), 1u);
  EXPECT_LT(index_of(EventKind::GuestHalt), index_of(EventKind::InterruptInjection))
      << "the interrupt was injected after the halt";
}

TEST_P(RunLoopHaltTest, WithNothingPendingSleepsUntilTheTimeout) {
  vcpu.play(halt());
  RunEnd end;
  {
    auto timer = time_runs_out();
    end = run();
  }

  EXPECT_EQ(end.outcome, RunOutcome::Timeout);
  EXPECT_NE(end.message.find("timeout"), std::string::npos) << end.message;
  EXPECT_NE(end.registers.find("rip=0000000000101234"), std::string::npos) << end.registers;
  EXPECT_EQ(vcpu.entries, 1u) << "the halted guest was not entered again";
  EXPECT_GE(vcpu.kicks.load(), 1) << "the stop kicks the vCPU";
  EXPECT_EQ(recorder.count(EventKind::GuestHalt, EventReason::Halt), 1u);
  EXPECT_GT(halted_ns(), kTimeLimitNs) << "halted until the time ran out";
}

TEST_P(RunLoopHaltTest, WithInterruptsOffAPendingInterruptDoesNotWakeIt) {
  vcpu.play(halt(), exit_with_status(0));
  board.controller.pending.store(true);
  mode.interrupts_on = false;  // IF clear: a real CPU stays halted too
  RunEnd end;
  {
    auto timer = time_runs_out();
    end = run();
  }

  EXPECT_EQ(end.outcome, RunOutcome::Timeout);
  EXPECT_TRUE(mode.injected.empty());
  EXPECT_EQ(vcpu.entries, 1u);
  EXPECT_GT(halted_ns(), kTimeLimitNs) << "halted until the time ran out";
}

TEST_P(RunLoopHaltTest, AStopFromAnotherThreadEndsTheRunAsStopped) {
  vcpu.play(halt(), exit_with_status(0));
  RunLoop loop(vcpu, mode, board, recorder, clock, RegisterSync::Off);
  RunEnd end;
  {
    // As vmlab run's signal watcher does, while the guest sleeps in hlt.
    WhenHalted stop(board, [&loop] { loop.stop(); });
    end = loop.run(kTimeLimit);
  }

  EXPECT_EQ(end.outcome, RunOutcome::Stopped) << end.message;
  EXPECT_NE(end.message.find("stopped on request"), std::string::npos) << end.message;
  EXPECT_EQ(vcpu.entries, 1u) << "the guest was not entered again";
  EXPECT_GE(vcpu.kicks.load(), 1) << "the stop kicks the vCPU";
}

INSTANTIATE_TEST_SUITE_P(RunLoop, RunLoopHaltTest,
                         ::testing::Values(HaltedBy::Core, HaltedBy::Mode),
                         [](const ::testing::TestParamInfo<HaltedBy>& halted_by) {
                           return halted_by.param == HaltedBy::Core ? "HaltExit" : "ModeHalt";
                         });

TEST_F(RunLoopTest, ADeliveryFailureEndsTheRunByItsKind) {
  struct Case {
    Error error;
    RunOutcome outcome;
  };
  const Case cases[] = {
      {Error{ModeError::kGuestTripleFault, "the guest's IDT has no handler for vector 13"},
       RunOutcome::GuestCrashed},
      {Error{KvmError::kIoctlFailed, "KVM_INTERRUPT: Invalid argument"}, RunOutcome::VmmError},
  };
  for (const auto& each : cases) {
    ScriptedVcpu fresh;
    FakeMode failing(board);
    failing.delivery_error = each.error;
    RunLoop loop(fresh, failing, board, recorder, clock, RegisterSync::Off);
    const RunEnd end = loop.run(kTimeLimit);
    EXPECT_EQ(end.outcome, each.outcome) << each.error.message;
    EXPECT_EQ(end.message, each.error.message);
    EXPECT_NE(end.registers.find("rip=0000000000101234"), std::string::npos) << end.registers;
    EXPECT_EQ(fresh.entries, 0u) << "the guest is not entered after a failed delivery";
  }
}

TEST_F(RunLoopTest, AFailedEntryIsAVmmErrorWithTheRegisters) {
  vcpu.play(exits::PortOut{IoPort(0x61), 1, 1, out_data},
            Error{KvmError::kIoctlFailed, "KVM_RUN: Bad address", EFAULT});
  const RunEnd end = run();

  EXPECT_EQ(end.outcome, RunOutcome::VmmError);
  EXPECT_EQ(end.message, "KVM_RUN: Bad address");
  EXPECT_NE(end.registers.find("rip=0000000000101234"), std::string::npos) << end.registers;
}

TEST_F(RunLoopTest, TheModeOrTheCoreCanEndTheRunAsACrash) {
  vcpu.play(exits::Debug{});
  mode.claim = [](const VcpuExit&) { return ExitDisposition::stop("the monitor region changed"); };
  RunEnd end = run();
  EXPECT_EQ(end.outcome, RunOutcome::GuestCrashed);
  EXPECT_EQ(end.message, "the monitor region changed");
  EXPECT_EQ(recorder.count(EventKind::VmExit, EventReason::Debug), 1u) << "the exit is recorded";

  ScriptedVcpu shut_down;
  shut_down.play(exits::Shutdown{});
  FakeMode not_mine(board);
  RunLoop loop(shut_down, not_mine, board, recorder, clock, RegisterSync::Off);
  end = loop.run(kTimeLimit);
  EXPECT_EQ(end.outcome, RunOutcome::GuestCrashed);
  EXPECT_NE(end.registers.find("rip="), std::string::npos);
}

TEST_F(RunLoopTest, AStopBeforeTheRunEndsItAsItStarts) {
  vcpu.play(exit_with_status(0));
  RunLoop loop(vcpu, mode, board, recorder, clock, RegisterSync::Off);
  loop.stop();
  const RunEnd end = loop.run(kTimeLimit);

  EXPECT_EQ(end.outcome, RunOutcome::Stopped) << end.message;
  EXPECT_EQ(vcpu.entries, 0u) << "a run stopped before it started never enters the guest";
}

TEST_F(RunLoopTest, AStopAfterTheRunDoesNothing) {
  vcpu.play(exit_with_status(3));
  RunLoop loop(vcpu, mode, board, recorder, clock, RegisterSync::Off);
  const RunEnd end = loop.run(kTimeLimit);
  const int kicks = vcpu.kicks.load();
  loop.stop();

  EXPECT_EQ(end.outcome, RunOutcome::GuestExited);
  EXPECT_EQ(end.exit_value, 3u);
  EXPECT_EQ(vcpu.kicks.load(), kicks) << "no kick for a vCPU thread that has ended";
}

}  // namespace
}  // namespace vmlab
