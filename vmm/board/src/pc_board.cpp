#include "vmlab/pc_board.hpp"

#include <algorithm>

#include "vmlab/devices/debug_console.hpp"
#include "vmlab/devices/exit_port.hpp"
#include "vmlab/devices/pic8259.hpp"
#include "vmlab/devices/pit8254.hpp"
#include "vmlab/devices/uart16550.hpp"

namespace vmlab {

// Forwards the 8254's ports and wakes the timer thread after every write, so
// a newly programmed period takes effect at once.
class PcBoard::PitPorts final : public IoDevice {
 public:
  PitPorts(devices::Pit8254& pit, std::condition_variable& wakeup) : m_pit(pit), m_wakeup(wakeup) {}
  std::string_view name() const override { return "i8254 PIT"; }
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override {
    m_pit.read(offset, data);
  }
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    m_pit.write(offset, data);
    m_wakeup.notify_all();
  }

 private:
  devices::Pit8254& m_pit;
  std::condition_variable& m_wakeup;
};

class PcBoard::PicController final : public InterruptController {
 public:
  explicit PicController(devices::Pic8259Pair& pic) : m_pic(pic) {}
  bool interrupt_pending() const override { return m_pic.interrupt_pending(); }
  std::uint8_t acknowledge() override { return m_pic.acknowledge(); }

 private:
  devices::Pic8259Pair& m_pic;
};

PcBoard::PcBoard(Vm& vm, PcBoardConfig config) : m_vm(vm), m_config(std::move(config)) {}

PcBoard::~PcBoard() {
  stop();
}

InterruptController* PcBoard::interrupt_controller() {
  return m_controller.get();
}

Result<std::unique_ptr<PcBoard>> PcBoard::create(Vm& vm, PcBoardConfig config) {
  std::unique_ptr<PcBoard> board(new PcBoard(vm, std::move(config)));
  if (auto status = board->wire(); !status) return status.error();
  return board;
}

void PcBoard::raise_irq(std::uint32_t line, bool level) {
  // Called from device code with the device lock held.
  if (m_pic) {
    m_pic->set_irq(line, level);
  } else {
    // KVM_IRQ_LINE cannot fail for a valid ISA line once the irqchip exists;
    // there is nobody to tell from inside a device callback if it did.
    (void)m_vm.set_irq_line(line, level);
  }
}

void PcBoard::on_debug_byte(std::uint8_t byte) {
  if (byte != '\n') {
    // A guest cannot grow a line, or the list of lines, without bound.
    if (m_debug_partial_line.size() < kMaximumDebugLineLength) {
      m_debug_partial_line.push_back(static_cast<char>(byte));
    }
    return;
  }
  if (m_config.debug_line) m_config.debug_line(m_debug_partial_line);
  // Result lines (VMLAB-...) are what the host parses: keep those, up to a
  // limit; of the rest keep only a short tail for error messages.
  const bool machine_readable = m_debug_partial_line.rfind("VMLAB-", 0) == 0;
  if (machine_readable && m_debug_machine_lines < kMaximumDebugLines) {
    ++m_debug_machine_lines;
    m_debug_lines.push_back(std::move(m_debug_partial_line));
  } else if (!machine_readable && m_debug_other_lines.size() < kMaximumOtherDebugLines) {
    m_debug_other_lines.push_back(std::move(m_debug_partial_line));
  } else {
    ++m_debug_lines_dropped;
  }
  m_debug_partial_line.clear();
}

Status PcBoard::wire() {
  if (m_config.irqchip == IrqchipModel::Kernel) {
    if (auto status = m_vm.create_irqchip(); !status) {
      return Error{status.error().message +
                   " (this KVM cannot model the interrupt controller; "
                   "use --irqchip vmm)"};
    }
    if (auto status = m_vm.create_pit2(); !status) return status;
  } else {
    m_pic = std::make_unique<devices::Pic8259Pair>();
    m_pit = std::make_unique<devices::Pit8254>(
        m_clock, [this](bool level) { m_pic->set_irq(pc::kPitIrq, level); });
    m_pit_ports = std::make_unique<PitPorts>(*m_pit, m_timer_wakeup);
    m_controller = std::make_unique<PicController>(*m_pic);
    if (auto status = m_ports.add({pc::kPicMasterPort, 2}, m_pic->master_ports()); !status) {
      return status;
    }
    if (auto status = m_ports.add({pc::kPicSlavePort, 2}, m_pic->slave_ports()); !status) {
      return status;
    }
    if (auto status = m_ports.add({pc::kPitPort, 4}, *m_pit_ports); !status) return status;
  }
  auto console_output = m_config.console_output ? m_config.console_output : [](std::uint8_t) {};
  m_uart = std::make_unique<devices::Uart16550>(
      [this](bool level) { raise_irq(pc::kUartIrq, level); }, console_output);
  m_debug_console =
      std::make_unique<devices::DebugConsole>([this](std::uint8_t byte) { on_debug_byte(byte); });
  m_exit_port = std::make_unique<devices::ExitPort>([this](std::uint32_t value) {
    std::int64_t none = -1;
    m_exit_value.compare_exchange_strong(none, std::int64_t{value});
  });
  if (auto status = m_ports.add({pc::kUartPort, 8}, *m_uart); !status) return status;
  if (auto status = m_ports.add({pc::kDebugConsolePort, 1}, *m_debug_console); !status) {
    return status;
  }
  return m_ports.add({pc::kExitPort, 4}, *m_exit_port);
}

std::vector<vmlab_device> PcBoard::device_table() const {
  return {
      {VMLAB_DEVICE_UART16550, pc::kUartIrq, pc::kUartPort, 8, 0, 0},
      {VMLAB_DEVICE_PIC8259, VMLAB_NO_IRQ, pc::kPicMasterPort, 2, 0, 0},
      {VMLAB_DEVICE_PIC8259, VMLAB_NO_IRQ, pc::kPicSlavePort, 2, 0, 0},
      {VMLAB_DEVICE_PIT8254, pc::kPitIrq, pc::kPitPort, 4, 0, 0},
      {VMLAB_DEVICE_DEBUGCON, VMLAB_NO_IRQ, pc::kDebugConsolePort, 1, 0, 0},
      {VMLAB_DEVICE_EXIT_PORT, VMLAB_NO_IRQ, pc::kExitPort, 4, 0, 0},
  };
}

void PcBoard::start(std::function<void()> interrupt_raised) {
  m_interrupt_raised = std::move(interrupt_raised);
  if (!m_pit || m_timer_thread.joinable()) return;
  {
    std::lock_guard lock(m_device_lock);
    m_timer_stop = false;
  }
  m_timer_thread = std::thread([this] { timer_thread_main(); });
}

void PcBoard::stop() {
  {
    std::lock_guard lock(m_device_lock);
    m_timer_stop = true;
  }
  m_timer_wakeup.notify_all();
  if (m_timer_thread.joinable()) m_timer_thread.join();
}

void PcBoard::timer_thread_main() {
  std::unique_lock lock(m_device_lock);
  while (!m_timer_stop) {
    if (auto next = m_pit->next_event_ns()) {
      // Like KVM's in-kernel PIT (min_timer_period_us), no faster than one
      // tick per kMinimumTimerPeriod: a guest programming a count of 2 would
      // otherwise keep this thread, and the device lock, busy. The PIT model
      // coalesces the ticks in between.
      const auto earliest = std::chrono::steady_clock::now() + kMinimumTimerPeriod;
      const auto deadline = std::max(
          earliest, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(*next)));
      m_timer_wakeup.wait_until(lock, deadline);
    } else {
      m_timer_wakeup.wait(lock);
    }
    if (m_timer_stop) break;
    const bool was_pending = m_pic->interrupt_pending();
    m_pit->update(m_clock.now_ns());
    if (!was_pending && m_pic->interrupt_pending() && m_interrupt_raised) {
      lock.unlock();
      m_interrupt_raised();
      lock.lock();
    }
  }
}

void PcBoard::write_console(std::string_view text) {
  if (!m_config.console_output) return;
  std::lock_guard lock(m_device_lock);  // the UART's bytes go out under it too
  for (const char character : text)
    m_config.console_output(static_cast<std::uint8_t>(character));
}

std::optional<std::uint32_t> PcBoard::exit_request() const {
  const auto value = m_exit_value.load();
  if (value < 0) return std::nullopt;
  return static_cast<std::uint32_t>(value);
}

std::vector<std::string> PcBoard::debug_lines() const {
  std::lock_guard lock(m_device_lock);
  std::vector<std::string> lines = m_debug_lines;
  lines.insert(lines.end(), m_debug_other_lines.begin(), m_debug_other_lines.end());
  return lines;
}

std::uint64_t PcBoard::debug_lines_dropped() const {
  std::lock_guard lock(m_device_lock);
  return m_debug_lines_dropped;
}

std::uint64_t PcBoard::timer_ticks() const {
  std::lock_guard lock(m_device_lock);
  return m_pit ? m_pit->ticks() : 0;
}

std::uint64_t PcBoard::missed_timer_ticks() const {
  std::lock_guard lock(m_device_lock);
  return m_pit ? m_pit->missed_ticks() : 0;
}

}  // namespace vmlab
