#include "vmlab/bus.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace vmlab {
namespace {

class RecordingDevice final : public IoDevice {
 public:
  explicit RecordingDevice(std::string name) : m_name(std::move(name)) {}
  std::string_view name() const override { return m_name; }
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override {
    reads.push_back(offset);
    zero_filled_on_entry = std::all_of(data.begin(), data.end(), [](auto b) { return b == 0; });
    for (auto& byte : data)
      byte = 0xab;
  }
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    writes.emplace_back(offset, data.empty() ? 0 : data[0]);
  }
  std::vector<std::uint64_t> reads;
  std::vector<std::pair<std::uint64_t, std::uint8_t>> writes;
  bool zero_filled_on_entry = false;

 private:
  std::string m_name;
};

TEST(IoBus, DispatchesWithOffsets) {
  IoBus bus("port bus");
  RecordingDevice uart("uart");
  ASSERT_TRUE(bus.add({0x3f8, 8}, uart).ok());
  const std::uint8_t value = 0x41;
  EXPECT_EQ(bus.write(0x3f8 + 3, std::span(&value, 1)), IoBus::Access::Handled);
  ASSERT_EQ(uart.writes.size(), 1u);
  EXPECT_EQ(uart.writes[0].first, 3u);
  EXPECT_EQ(uart.writes[0].second, 0x41);
  std::uint8_t data[2] = {0x55, 0x55};
  EXPECT_EQ(bus.read(0x3f8 + 5, data), IoBus::Access::Handled);
  EXPECT_TRUE(uart.zero_filled_on_entry);
  EXPECT_EQ(uart.reads.back(), 5u);
  EXPECT_EQ(data[1], 0xab);
}

TEST(IoBus, RejectsOverlapsOnEitherSide) {
  IoBus bus("port bus");
  RecordingDevice a("a"), b("b"), c("c"), d("d");
  ASSERT_TRUE(bus.add({0x100, 0x10}, a).ok());
  auto refusal = [&](BusRange range, IoDevice& device) {
    auto status = bus.add(range, device);
    return status.ok() ? std::error_code() : status.error().kind;
  };
  auto below = bus.add({0xf8, 0x9}, b);  // ends inside a
  ASSERT_FALSE(below.ok());
  EXPECT_EQ(below.error().kind, BusError::kOverlap);
  EXPECT_NE(below.error().message.find("overlaps a"), std::string::npos)
      << "names the other device";
  EXPECT_EQ(refusal({0x10f, 1}, c), BusError::kOverlap);     // last byte of a
  EXPECT_EQ(refusal({0x0, 0x1000}, c), BusError::kOverlap);  // covers a
  EXPECT_TRUE(bus.add({0x110, 0x10}, c).ok());               // adjacent is fine
  EXPECT_TRUE(bus.add({0xf0, 0x10}, d).ok());
  EXPECT_EQ(refusal({0x200, 0}, d), BusError::kEmptyRange);
  EXPECT_EQ(refusal({~0ULL - 1, 4}, d), BusError::kEmptyRange);  // wraps around
}

TEST(IoBus, UnmappedAndStraddlingAccesses) {
  IoBus bus("port bus");
  RecordingDevice device("dev");
  ASSERT_TRUE(bus.add({0x40, 4}, device).ok());
  std::uint8_t data[4] = {1, 2, 3, 4};
  EXPECT_EQ(bus.read(0x3f, std::span(data, 1)), IoBus::Access::Unmapped);
  EXPECT_EQ(data[0], 0xff) << "an unclaimed address reads all ones, as a floating bus does";
  EXPECT_EQ(bus.read(0x42, std::span(data, 4)), IoBus::Access::Unmapped);  // straddles the end
  EXPECT_EQ(bus.write(0x44, std::span(data, 1)), IoBus::Access::Unmapped);
  EXPECT_TRUE(device.reads.empty());
  EXPECT_EQ(bus.unmapped_accesses(), 3u);
  EXPECT_EQ(bus.device_at(0x43), &device);
  EXPECT_EQ(bus.device_at(0x44), nullptr);
}

}  // namespace
}  // namespace vmlab
