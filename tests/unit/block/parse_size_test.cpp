#include <vmlab/devices/raw_image_file.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace vmlab::devices {
namespace {

std::uint64_t parsed(const std::string& text) {
  auto size = parse_size(text);
  EXPECT_TRUE(size) << text << ": " << size.error().message;
  return size ? *size : 0;
}

TEST(ParseSizeTest, AcceptsBytesAndBinaryUnits) {
  EXPECT_EQ(parsed("512"), 512u);
  EXPECT_EQ(parsed("64K"), 64u * 1024);
  EXPECT_EQ(parsed("16M"), 16u * 1024 * 1024);
  EXPECT_EQ(parsed("2G"), 2ull * 1024 * 1024 * 1024);
  EXPECT_EQ(parsed("1T"), 1ull << 40);
}

TEST(ParseSizeTest, UnitsIgnoreCaseAndTakeAnOptionalBOrIB) {
  EXPECT_EQ(parsed("64k"), 64u * 1024);
  EXPECT_EQ(parsed("64KiB"), 64u * 1024);
  EXPECT_EQ(parsed("64kib"), 64u * 1024);
  EXPECT_EQ(parsed("64KB"), 64u * 1024);  // binary, whatever the spelling
  EXPECT_EQ(parsed("16mb"), 16u * 1024 * 1024);
  EXPECT_EQ(parsed("2GIB"), 2ull << 30);
  EXPECT_EQ(parsed("512B"), 512u);
  EXPECT_EQ(parsed("512b"), 512u);
  EXPECT_EQ(parsed("0064M"), 64ull << 20);
}

TEST(ParseSizeTest, RejectsGarbageWithAnExample) {
  for (const char* text : {"", "abc", "M", "B", "-1", "+1", "1.5G", " 64M", "64M ", "64X", "64KiBB",
                           "64 K", "512iB", "64Kb2", "0x100", "1e6"}) {
    auto size = parse_size(text);
    ASSERT_FALSE(size) << "'" << text << "' parsed as " << *size;
    EXPECT_NE(size.error().message.find("e.g. 64M"), std::string::npos) << text;
  }
}

TEST(ParseSizeTest, RejectsZero) {
  for (const char* text : {"0", "0K", "000", "0GiB"}) {
    auto size = parse_size(text);
    ASSERT_FALSE(size) << text;
    EXPECT_NE(size.error().message.find("zero"), std::string::npos) << text;
  }
}

TEST(ParseSizeTest, RejectsOverflow) {
  EXPECT_EQ(parsed("18446744073709551615"), UINT64_MAX);
  for (const char* text : {"18446744073709551616", "99999999999999999999999", "16777216T",
                           "17179869184G", "18014398509481984K"}) {
    auto size = parse_size(text);
    ASSERT_FALSE(size) << text;
    EXPECT_NE(size.error().message.find("too large"), std::string::npos) << text;
  }
  EXPECT_EQ(parsed("16777215T"), 16777215ull << 40);
}

}  // namespace
}  // namespace vmlab::devices
