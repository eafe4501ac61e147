// The PC board: wires the emulated devices to their ISA ports and IRQ lines,
// owns the timer thread that drives the 8254, and chooses who models the
// interrupt controller (the VMM's 8259A pair, or KVM's in-kernel irqchip).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vmlab/board.hpp"
#include "vmlab/clock.hpp"
#include "vmlab/kvm.hpp"

namespace vmlab::devices {
class Uart16550;
class Pic8259Pair;
class Pit8254;
class DebugConsole;
class ExitPort;
}  // namespace vmlab::devices

namespace vmlab {

enum class IrqchipModel {
  Vmm,     // the VMM's 8259A/8254 models, interrupts injected with KVM_INTERRUPT
  Kernel,  // KVM_CREATE_IRQCHIP + KVM_CREATE_PIT2, lines raised with KVM_IRQ_LINE
};

struct PcBoardConfig {
  IrqchipModel irqchip = IrqchipModel::Vmm;
  std::function<void(std::uint8_t)> console_output;    // bytes the guest sends to the UART
  std::function<void(const std::string&)> debug_line;  // each line on port 0xE9 (optional)
};

// The standard PC assignments the guest's device table reports.
namespace pc {
constexpr std::uint16_t kUartPort = 0x3f8;
constexpr std::uint32_t kUartIrq = 4;
constexpr std::uint16_t kPicMasterPort = 0x20;
constexpr std::uint16_t kPicSlavePort = 0xa0;
constexpr std::uint16_t kPitPort = 0x40;
constexpr std::uint32_t kPitIrq = 0;
constexpr std::uint16_t kDebugConsolePort = 0xe9;
constexpr std::uint16_t kExitPort = 0xf4;
}  // namespace pc

class PcBoard final : public Board {
 public:
  static Result<std::unique_ptr<PcBoard>> create(Vm& vm, PcBoardConfig config);
  ~PcBoard() override;

  IoBus& port_bus() override { return m_ports; }
  IoBus& mmio_bus() override { return m_mmio; }
  std::mutex& device_lock() override { return m_device_lock; }
  InterruptController* interrupt_controller() override;
  std::vector<vmlab_device> device_table() const override;
  void start(std::function<void()> interrupt_raised) override;
  void stop() override;
  std::optional<std::uint32_t> exit_request() const override;
  void write_console(std::string_view text) override;

  // Lines the guest wrote to the debug console: the machine-readable
  // (VMLAB-...) ones in order, then the first few others; bounded, so a guest
  // cannot make the VMM keep unbounded output.
  std::vector<std::string> debug_lines() const;
  std::uint64_t debug_lines_dropped() const;
  IrqchipModel irqchip() const { return m_config.irqchip; }
  std::uint64_t timer_ticks() const;
  std::uint64_t missed_timer_ticks() const;

 private:
  PcBoard(Vm& vm, PcBoardConfig config);
  Status wire();
  void timer_thread_main();
  void raise_irq(std::uint32_t line, bool level);
  void on_debug_byte(std::uint8_t byte);

  class PitPorts;
  class PicController;

  Vm& m_vm;
  PcBoardConfig m_config;
  MonotonicClock m_clock;
  IoBus m_ports{"port bus"};
  IoBus m_mmio{"MMIO bus"};
  mutable std::mutex m_device_lock;  // serializes every device model (io_device.hpp)

  std::unique_ptr<devices::Uart16550> m_uart;
  std::unique_ptr<devices::Pic8259Pair> m_pic;  // null with the in-kernel irqchip
  std::unique_ptr<devices::Pit8254> m_pit;      // null with the in-kernel irqchip
  std::unique_ptr<PitPorts> m_pit_ports;
  std::unique_ptr<PicController> m_controller;
  std::unique_ptr<devices::DebugConsole> m_debug_console;
  std::unique_ptr<devices::ExitPort> m_exit_port;

  // Guarded by m_device_lock.
  static constexpr std::size_t kMaximumDebugLineLength = 4096;
  static constexpr std::size_t kMaximumDebugLines = 16384;     // VMLAB-* lines
  static constexpr std::size_t kMaximumOtherDebugLines = 256;  // anything else
  static constexpr std::chrono::microseconds kMinimumTimerPeriod{200};
  std::string m_debug_partial_line;
  std::vector<std::string> m_debug_lines;  // the machine-readable ones
  std::vector<std::string> m_debug_other_lines;
  std::size_t m_debug_machine_lines = 0;
  std::uint64_t m_debug_lines_dropped = 0;
  // Read without the lock by the run loop after every exit: -1 until the guest
  // writes the exit port.
  std::atomic<std::int64_t> m_exit_value{-1};

  std::function<void()> m_interrupt_raised;
  std::condition_variable m_timer_wakeup;  // PIT reprogrammed, or stop
  bool m_timer_stop = false;               // guarded by m_device_lock
  std::thread m_timer_thread;
};

}  // namespace vmlab
