#include <vmlab/devices/debug_console.hpp>
#include <vmlab/devices/exit_port.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vmlab::devices {
namespace {

TEST(DebugConsoleTest, WritesDeliverBytesInOrder) {
  std::string output;
  DebugConsole console([&output](std::uint8_t byte) { output.push_back(static_cast<char>(byte)); });
  for (char character : std::string("result ok\n")) {
    const auto byte = static_cast<std::uint8_t>(character);
    console.write(0, std::span<const std::uint8_t>(&byte, 1));
  }
  EXPECT_EQ(output, "result ok\n");
  EXPECT_EQ(console.bytes_written(), 10u);
}

TEST(DebugConsoleTest, WideWriteDeliversItsLowByte) {
  std::string output;
  DebugConsole console([&output](std::uint8_t byte) { output.push_back(static_cast<char>(byte)); });
  const std::uint8_t word[2] = {'A', 'B'};
  console.write(0, word);
  EXPECT_EQ(output, "A");
}

TEST(DebugConsoleTest, ReadsReturnTheQemuReadbackValue) {
  DebugConsole console({});
  std::uint8_t value = 0;
  console.read(0, std::span<std::uint8_t>(&value, 1));
  EXPECT_EQ(value, 0xe9);
  std::uint8_t wide[4] = {};
  console.read(0, wide);
  EXPECT_EQ(wide[0], 0xe9);
  EXPECT_EQ(wide[1], 0x00);
}

TEST(DebugConsoleTest, WorksWithoutAnOutput) {
  DebugConsole console({});
  const std::uint8_t byte = 'x';
  console.write(0, std::span<const std::uint8_t>(&byte, 1));
  EXPECT_EQ(console.bytes_written(), 1u);
}

TEST(ExitPortTest, WritesOfEveryWidthReportTheZeroExtendedValue) {
  std::vector<std::uint32_t> values;
  ExitPort port([&values](std::uint32_t value) { values.push_back(value); });
  const std::uint8_t byte[1] = {0x10};
  const std::uint8_t word[2] = {0x34, 0x12};
  const std::uint8_t dword[4] = {0x78, 0x56, 0x34, 0x12};
  const std::uint8_t qword[8] = {0x01, 0x00, 0x00, 0x80, 0xff, 0xff, 0xff, 0xff};
  port.write(0, byte);
  port.write(0, word);
  port.write(0, dword);
  port.write(0, qword);  // only the low four bytes count
  ASSERT_EQ(values.size(), 4u);
  EXPECT_EQ(values[0], 0x10u);
  EXPECT_EQ(values[1], 0x1234u);
  EXPECT_EQ(values[2], 0x12345678u);
  EXPECT_EQ(values[3], 0x80000001u);
  EXPECT_TRUE(port.exit_requested());
  EXPECT_EQ(port.last_value(), 0x80000001u);
}

TEST(ExitPortTest, AnyPortOfTheRangeExits) {
  std::vector<std::uint32_t> values;
  ExitPort port([&values](std::uint32_t value) { values.push_back(value); });
  const std::uint8_t byte[1] = {0x07};
  port.write(3, byte);
  port.write(4, byte);  // outside the 4-port range
  ASSERT_EQ(values.size(), 1u);
  EXPECT_EQ(values[0], 0x07u);
}

TEST(ExitPortTest, ReadsReturnZero) {
  ExitPort port({});
  std::uint8_t wide[4] = {0xaa, 0xaa, 0xaa, 0xaa};
  port.read(0, wide);
  for (std::uint8_t byte : wide)
    EXPECT_EQ(byte, 0x00);
  EXPECT_FALSE(port.exit_requested());
}

TEST(ExitPortTest, QemuExitStatusIsValueShiftedOrOne) {
  EXPECT_EQ(ExitPort::qemu_exit_status(0x00), 1);
  EXPECT_EQ(ExitPort::qemu_exit_status(0x10), 33);
  EXPECT_EQ(ExitPort::qemu_exit_status(0x11), 35);
  EXPECT_EQ(ExitPort::qemu_exit_status(0x7f), 255);
  EXPECT_EQ(ExitPort::qemu_exit_status(0x80), 1);  // a process status keeps 8 bits
}

}  // namespace
}  // namespace vmlab::devices
