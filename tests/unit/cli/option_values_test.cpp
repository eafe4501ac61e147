// The grammars of vmlab's option values (vmlab/options.hpp): the one size
// grammar and the two ranges on it, counts, workload selections and the
// enumerations.
#include "vmlab/options.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace vmlab {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(SizeGrammar, BytesAndBinaryUnitsWithAnOptionalBOrIB) {
  EXPECT_EQ(parse_byte_size("512"), 512u);
  EXPECT_EQ(parse_byte_size("512B"), 512u);
  EXPECT_EQ(parse_byte_size("64K"), 64u * KiB);
  EXPECT_EQ(parse_byte_size("64KiB"), 64u * KiB);
  EXPECT_EQ(parse_byte_size("64kb"), 64u * KiB);  // binary, whatever the spelling
  EXPECT_EQ(parse_byte_size("16M"), 16 * MiB);
  EXPECT_EQ(parse_byte_size("16mib"), 16 * MiB);
  EXPECT_EQ(parse_byte_size("2G"), 2 * GiB);
  EXPECT_EQ(parse_byte_size("2GIB"), 2 * GiB);
  EXPECT_EQ(parse_byte_size("1T"), std::uint64_t{1} << 40);
  EXPECT_EQ(parse_byte_size("0064M"), 64 * MiB);
  EXPECT_EQ(parse_byte_size("0"), 0u) << "a size; the ranges refuse it";
}

TEST(SizeGrammar, AnythingElseIsNoSize) {
  for (const char* text : {"", "abc", "M", "B", "-1", "+1", "1.5G", " 64M", "64M ", "64X", "64KiBB",
                           "64 K", "512iB", "64Kb2", "0x100", "1e6"}) {
    EXPECT_FALSE(parse_byte_size(text).has_value()) << "'" << text << "'";
  }
}

TEST(SizeGrammar, PastTwoToTheSixtyFourIsTheLargestSize) {
  constexpr auto kLargest = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(parse_byte_size("18446744073709551615"), kLargest) << "exactly 2^64 - 1";
  for (const char* text : {"18446744073709551616", "99999999999999999999999", "16777216T",
                           "17179869184G", "18014398509481984K"}) {
    EXPECT_EQ(parse_byte_size(text), kLargest) << text;
  }
  EXPECT_EQ(parse_byte_size("16777215T"), std::uint64_t{16777215} << 40);
}

// --mem and disk create: one grammar, two ranges.
TEST(SizeGrammar, MemoryAndDiskSizesAcceptTheSameSpellings) {
  for (const char* text : {"64M", "64MiB", "64MB", "64m", "65536K", "65536KiB", "67108864"}) {
    auto memory = parse_memory_size(text);
    ASSERT_TRUE(memory.ok()) << text << ": " << memory.error().message;
    EXPECT_EQ(*memory, 64 * MiB) << text;
    auto disk = parse_disk_size(text);
    ASSERT_TRUE(disk.ok()) << text << ": " << disk.error().message;
    EXPECT_EQ(*disk, 64 * MiB) << text;
  }
  for (const char* text : {"1G", "1GiB", "1gb", "1024M"}) {
    EXPECT_EQ(*parse_memory_size(text), GiB) << text;
    EXPECT_EQ(*parse_disk_size(text), GiB) << text;
  }
}

TEST(SizeGrammar, EachRangeNamesItsRule) {
  auto no_size = parse_memory_size("64X");
  ASSERT_FALSE(no_size.ok());
  EXPECT_TRUE(contains(no_size.error().message, "'64X' is not a size")) << no_size.error().message;
  EXPECT_TRUE(contains(no_size.error().message, "between 4M and 3G"));
  EXPECT_TRUE(contains(parse_memory_size("4G").error().message, "maximum, 3G"));
  EXPECT_TRUE(contains(parse_memory_size("2M").error().message, "minimum, 4M"));
  EXPECT_TRUE(contains(parse_memory_size("65M").error().message, "2M steps"));

  EXPECT_TRUE(contains(parse_disk_size("64X").error().message, "'64X' is not a size"));
  EXPECT_TRUE(contains(parse_disk_size("2T").error().message, "maximum, 1T"));
  EXPECT_TRUE(contains(parse_disk_size("99999999999999999999999").error().message, "maximum"));
  EXPECT_TRUE(contains(parse_disk_size("0").error().message, "no sectors"));
  EXPECT_TRUE(contains(parse_disk_size("1000").error().message, "512-byte sectors"));
  EXPECT_EQ(*parse_disk_size("512"), 512u);
  EXPECT_EQ(*parse_disk_size("1T"), std::uint64_t{1} << 40);
}

TEST(Counts, WholeDecimalNumbersOnly) {
  EXPECT_EQ(*parse_count("0"), 0u);
  EXPECT_EQ(*parse_count("1000"), 1000u);
  EXPECT_EQ(*parse_count("18446744073709551615"), std::numeric_limits<std::uint64_t>::max());
  for (const char* text : {"", "-1", "+5", "0x10", "1e3", "1,000", " 5", "5 ", "x"}) {
    auto count = parse_count(text);
    ASSERT_FALSE(count.ok()) << "'" << text << "'";
    EXPECT_TRUE(contains(count.error().message, "is not a count")) << count.error().message;
  }
  EXPECT_TRUE(contains(parse_count("18446744073709551616").error().message, "largest count"));
}

TEST(Workloads, NameAndAnOptionalCount) {
  auto plain = parse_workload_selection("pio");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->name, "pio");
  EXPECT_FALSE(plain->count.has_value());
  auto counted = parse_workload_selection("syscalls:100");
  ASSERT_TRUE(counted.ok());
  EXPECT_EQ(counted->name, "syscalls");
  EXPECT_EQ(counted->count, std::uint64_t{100});
  EXPECT_TRUE(contains(parse_workload_selection("syscalls:x").error().message, "bad count"));
  EXPECT_TRUE(contains(parse_workload_selection(":5").error().message, "names no workload"));
  EXPECT_TRUE(check_workload_name("timer").ok());
  auto unknown = check_workload_name("warp");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(contains(unknown.error().message, "compute")) << "lists the workloads";
}

TEST(Choices, OneTablePerOption) {
  EXPECT_EQ(*parse_choice(irqchip_choices(), "kernel"), IrqchipModel::Kernel);
  EXPECT_EQ(*parse_choice(disk_model_choices(), "ata"), DiskModel::Ata);
  EXPECT_FALSE(*parse_choice(iommu_choices(), "off"));
  EXPECT_EQ(*parse_choice(cpu_mode_choices(), "para"), "para");
  auto bad = parse_choice(cpu_mode_choices(), "bt");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "'bt' is not one of hvm, full, para");
  // Names only: not the enum's number, not another case.
  EXPECT_FALSE(parse_choice(irqchip_choices(), "1").ok());
  EXPECT_FALSE(parse_choice(irqchip_choices(), "Kernel").ok());
  for (const auto& choice : cpu_mode_choices())
    EXPECT_FALSE(choice.meaning.empty()) << choice.name << " needs a line of help";
}

TEST(Choices, CommaSeparatedLists) {
  auto both = parse_choice_list(irqchip_choices(), "vmm,,kernel");
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ(*both, (std::vector<IrqchipModel>{IrqchipModel::Vmm, IrqchipModel::Kernel}));
  EXPECT_TRUE(contains(parse_choice_list(irqchip_choices(), "vmm,pic").error().message, "'pic'"));
  EXPECT_TRUE(
      contains(parse_choice_list(irqchip_choices(), ",").error().message, "the list is empty"));
}

}  // namespace
}  // namespace vmlab
