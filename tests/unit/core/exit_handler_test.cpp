// The run loop's generic exits without KVM (STYLE.md 7): a fake board with a
// recording device on each bus, and exits built by hand as KVM would report
// them.
#include "vmlab/exit_handler.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

namespace vmlab {
namespace {

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

class FakeBoard final : public Board {
 public:
  FakeBoard() {
    EXPECT_TRUE(m_ports.add({0x60, 4}, port_device).ok());
    EXPECT_TRUE(m_mmio.add({0xfeb00000, 0x200}, mmio_device).ok());
  }
  IoBus& port_bus() override { return m_ports; }
  IoBus& mmio_bus() override { return m_mmio; }
  std::mutex& device_lock() override { return m_lock; }
  InterruptController* interrupt_controller() override { return nullptr; }
  std::vector<vmlab_device> device_table() const override { return {}; }
  void start(std::function<void()>) override {}
  void stop() override {}
  std::optional<std::uint32_t> exit_request() const override { return std::nullopt; }
  void write_console(std::string_view) override {}

  RecordingDevice port_device;
  RecordingDevice mmio_device;

 private:
  IoBus m_ports{"ports"};
  IoBus m_mmio{"mmio"};
  std::mutex m_lock;
};

TEST(ExitHandler, StringOutputWritesEachElementAtItsPort) {
  FakeBoard board;
  const std::array<std::uint8_t, 6> data{1, 2, 3, 4, 5, 6};
  auto action = handle_core_exit(board, exits::PortOut{IoPort(0x61), 2, 3, data});
  EXPECT_EQ(action.kind, ExitAction::Kind::Continue);
  ASSERT_EQ(board.port_device.accesses.size(), 3u);
  for (std::size_t index = 0; index < 3; ++index) {
    EXPECT_TRUE(board.port_device.accesses[index].write);
    EXPECT_EQ(board.port_device.accesses[index].offset, 1u) << "an offset, not the port";
    EXPECT_EQ(board.port_device.accesses[index].data,
              (std::vector<std::uint8_t>{data[2 * index], data[2 * index + 1]}));
  }
}

TEST(ExitHandler, InputFillsTheExitsDataAndUnclaimedPortsReadAllOnes) {
  FakeBoard board;
  std::array<std::uint8_t, 4> data{};
  auto action = handle_core_exit(board, exits::PortIn{IoPort(0x62), 1, 1, data});
  EXPECT_EQ(action.kind, ExitAction::Kind::Continue);
  EXPECT_EQ(data[0], 2u);
  std::array<std::uint8_t, 2> floating{};
  (void)handle_core_exit(board, exits::PortIn{IoPort(0x80), 2, 1, floating});
  EXPECT_EQ(floating, (std::array<std::uint8_t, 2>{0xff, 0xff}));
  EXPECT_EQ(board.port_bus().unmapped_accesses(), 1u);
}

TEST(ExitHandler, MmioReadsAndWritesReachTheDeviceAtItsOffset) {
  FakeBoard board;
  std::array<std::uint8_t, 4> read{};
  (void)handle_core_exit(board, exits::MmioRead{GuestPhysAddr(0xfeb00070), read});
  EXPECT_EQ(read, (std::array<std::uint8_t, 4>{0x70, 0x70, 0x70, 0x70}));
  const std::array<std::uint8_t, 4> written{9, 8, 7, 6};
  (void)handle_core_exit(board, exits::MmioWrite{GuestPhysAddr(0xfeb00050), written});
  ASSERT_EQ(board.mmio_device.accesses.size(), 2u);
  EXPECT_TRUE(board.mmio_device.accesses[1].write);
  EXPECT_EQ(board.mmio_device.accesses[1].offset, 0x50u);
}

TEST(ExitHandler, HaltSleepsAndKicksRunOn) {
  FakeBoard board;
  EXPECT_EQ(handle_core_exit(board, exits::Halt{}).kind, ExitAction::Kind::Halt);
  EXPECT_EQ(handle_core_exit(board, exits::Interrupted{}).kind, ExitAction::Kind::Continue);
  EXPECT_EQ(handle_core_exit(board, exits::InterruptWindowOpen{}).kind, ExitAction::Kind::Continue);
}

TEST(ExitHandler, ExitsThatEndTheRunSayWhyAndWhoseFaultItIs) {
  FakeBoard board;
  struct Case {
    VcpuExit exit;
    RunOutcome outcome;
    const char* says;
  };
  const Case cases[] = {
      {exits::Shutdown{}, RunOutcome::GuestCrashed, "triple-faulted"},
      {exits::FailEntry{7}, RunOutcome::GuestCrashed, "hardware reason 7"},
      {exits::InternalError{KVM_INTERNAL_ERROR_EMULATION}, RunOutcome::GuestCrashed,
       "emulation failure"},
      {exits::InternalError{99}, RunOutcome::GuestCrashed, "suberror 99"},
      {exits::SystemEvent{1}, RunOutcome::GuestCrashed, "instead of using the exit port"},
      {exits::Debug{1, 0}, RunOutcome::VmmError, "no debugging was requested"},
      {exits::Unknown{KVM_EXIT_HYPERCALL}, RunOutcome::VmmError, "unexpected VM exit"},
  };
  for (const auto& each : cases) {
    const auto action = handle_core_exit(board, each.exit);
    EXPECT_EQ(action.kind, ExitAction::Kind::End) << each.says;
    EXPECT_EQ(action.outcome, each.outcome) << each.says;
    EXPECT_NE(action.message.find(each.says), std::string::npos) << action.message;
  }
}

}  // namespace
}  // namespace vmlab
