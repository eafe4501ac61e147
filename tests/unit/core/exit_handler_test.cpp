// The run loop's generic exits without KVM (STYLE.md 7): a fake board with a
// recording device on each bus, and exits built by hand as KVM would report
// them.
#include "vmlab/exit_handler.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "fake_board.hpp"

namespace vmlab {
namespace {

using testing::FakeBoard;

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
