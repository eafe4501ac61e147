// A board for the core's unit tests (STYLE.md 7): a recording device on each
// bus, an exit port, an interrupt controller the test raises by hand, and the
// interrupt_raised callback the run loop hands the board's start().
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "vmlab/board.hpp"
#include "vmlab/little_endian.hpp"

namespace vmlab::testing {

// Remembers every access; a read returns the offset's low byte.
class RecordingDevice final : public IoDevice {
 public:
  struct Access {
    bool write;
    std::uint64_t offset;
    std::vector<std::uint8_t> data;
  };
  std::string_view name() const override { return "recording"; }
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override {
    for (auto& byte : data)
      byte = static_cast<std::uint8_t>(offset);
    accesses.push_back({false, offset, {data.begin(), data.end()}});
  }
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    accesses.push_back({true, offset, {data.begin(), data.end()}});
  }
  std::vector<Access> accesses;
};

// The INTR pin as a test drives it. `on_poll` runs (with the device lock
// held, as every caller holds it) each time someone asks whether an
// interrupt is pending: a halted run loop asks.
class FakeInterruptController final : public InterruptController {
 public:
  bool interrupt_pending() const override {
    if (on_poll) on_poll();
    return pending.load();
  }
  std::uint8_t acknowledge() override {
    pending.store(false);
    return vector;
  }
  std::atomic<bool> pending{false};
  std::uint8_t vector = 0x20;
  std::function<void()> on_poll;
};

// A write of the guest's status ends the run, as the debug exit port does.
class FakeExitPort final : public IoDevice {
 public:
  std::string_view name() const override { return "exit port"; }
  void read(std::uint64_t, std::span<std::uint8_t>) override {}
  void write(std::uint64_t, std::span<const std::uint8_t> data) override {
    status.store(static_cast<std::uint32_t>(load_little_endian(data)));
    written.store(true);
  }
  std::atomic<bool> written{false};
  std::atomic<std::uint32_t> status{0};
};

class FakeBoard final : public Board {
 public:
  static constexpr std::uint16_t kExitPort = 0xf4;

  FakeBoard() {
    EXPECT_TRUE(m_ports.add({0x60, 4}, port_device).ok());
    EXPECT_TRUE(m_ports.add({kExitPort, 4}, exit_port).ok());
    EXPECT_TRUE(m_mmio.add({0xfeb00000, 0x200}, mmio_device).ok());
  }
  IoBus& port_bus() override { return m_ports; }
  IoBus& mmio_bus() override { return m_mmio; }
  std::mutex& device_lock() override { return m_lock; }
  InterruptController* interrupt_controller() override { return &controller; }
  std::vector<vmlab_device> device_table() const override { return {}; }
  void start(std::function<void()> interrupt_raised) override {
    m_interrupt_raised = std::move(interrupt_raised);
  }
  void stop() override {}
  std::optional<std::uint32_t> exit_request() const override {
    if (!exit_port.written.load()) return std::nullopt;
    return exit_port.status.load();
  }
  void write_console(std::string_view) override {}

  // As a device thread does: asserts INTR under the device lock, then tells
  // the run loop (without the lock).
  void raise_interrupt() {
    {
      std::lock_guard lock(m_lock);
      controller.pending.store(true);
    }
    if (m_interrupt_raised) m_interrupt_raised();
  }

  RecordingDevice port_device;
  RecordingDevice mmio_device;
  FakeExitPort exit_port;
  FakeInterruptController controller;

 private:
  IoBus m_ports{"ports"};
  IoBus m_mmio{"mmio"};
  std::mutex m_lock;
  std::function<void()> m_interrupt_raised;
};

}  // namespace vmlab::testing
