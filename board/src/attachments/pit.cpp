// The 8254 interval timer: the VMM's model, driven by a host timer thread
// that fires when counter 0's next edge falls due, or KVM's in-kernel PIT
// (--irqchip kernel, KVM_CREATE_PIT2).
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <thread>

#include "../attachment.hpp"
#include "vmlab/devices/pit8254.hpp"

namespace vmlab::board {
namespace {

// Like KVM's in-kernel PIT (min_timer_period_us), no faster than one tick
// per 200 us: a guest programming a count of 2 would otherwise keep the
// timer thread, and the device lock, busy. The model coalesces the ticks in
// between.
constexpr std::chrono::microseconds kMinimumTimerPeriod{200};

// Forwards the 8254's ports and wakes the timer thread after every write, so
// a newly programmed period takes effect at once.
class PitPorts final : public IoDevice {
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

class PitAttachment final : public IntervalTimerAttachment {
 public:
  ~PitAttachment() override { stop(); }

  Status attach(const AttachmentContext& context) override {
    if (context.config.irqchip == IrqchipModel::Kernel) return context.vm.create_pit2();
    m_device_lock = &context.device_lock;
    m_interrupts = &context.interrupts;
    m_clock = &context.clock;
    m_pit = std::make_unique<devices::Pit8254>(context.clock, context.interrupts.line(pc::kPitIrq));
    m_ports = std::make_unique<PitPorts>(*m_pit, m_wakeup);
    return add_ports(context, pc::kPitPorts, *m_ports);
  }

  void describe(std::vector<vmlab_device>& table) const override {
    table.push_back(port_entry(VMLAB_DEVICE_PIT8254, pc::kPitIrq, pc::kPitPorts));
  }

  void start() override {
    if (!m_pit || m_thread.joinable()) return;
    {
      std::lock_guard lock(*m_device_lock);
      m_stop = false;
    }
    m_thread = std::thread([this] { run(); });
  }

  void stop() override {
    if (!m_thread.joinable()) return;
    {
      std::lock_guard lock(*m_device_lock);
      m_stop = true;
    }
    m_wakeup.notify_all();
    m_thread.join();
  }

  std::uint64_t ticks() const override { return m_pit ? m_pit->ticks() : 0; }
  std::uint64_t missed_ticks() const override { return m_pit ? m_pit->missed_ticks() : 0; }

 private:
  void run() {
    std::unique_lock lock(*m_device_lock);
    while (!m_stop) {
      if (auto next = m_pit->next_event_ns()) {
        const auto earliest = std::chrono::steady_clock::now() + kMinimumTimerPeriod;
        const auto deadline = std::max(
            earliest, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(*next)));
        m_wakeup.wait_until(lock, deadline);
      } else {
        m_wakeup.wait(lock);
      }
      if (m_stop) break;
      m_interrupts->from_device_thread(lock, [this] { m_pit->update(m_clock->now_ns()); });
    }
  }

  std::mutex* m_device_lock = nullptr;
  InterruptRouter* m_interrupts = nullptr;
  const Clock* m_clock = nullptr;
  std::unique_ptr<devices::Pit8254> m_pit;  // null with the in-kernel PIT
  std::unique_ptr<PitPorts> m_ports;
  std::condition_variable m_wakeup;  // PIT reprogrammed, or stop
  bool m_stop = false;               // guarded by the device lock
  std::thread m_thread;
};

}  // namespace

std::unique_ptr<IntervalTimerAttachment> make_pit_attachment() {
  return std::make_unique<PitAttachment>();
}

}  // namespace vmlab::board
