// The grammars of vmlab's option values (vmlab/options.hpp): the one size
// grammar and the two ranges on it, timeouts, counts, workload selections and
// the enumerations. Every value refused is a CliError::kInvalidValue.
#include "vmlab/options.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
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

// A value the grammar refuses: an invalid value, whose message names `part`.
template <typename Value>
void expect_invalid(const Result<Value>& result, const std::string& part) {
  ASSERT_FALSE(result.ok()) << "accepted; expected an error naming " << part;
  EXPECT_EQ(result.error().kind, CliError::kInvalidValue) << result.error().message;
  EXPECT_TRUE(contains(result.error().message, part)) << result.error().message;
}

TEST(SizeGrammar, MemorySizesNameTheirRule) {
  expect_invalid(parse_memory_size("64X"), "'64X' is not a size: give one between 4M and 3G");
  for (const char* text : {"4G", "1T", "3073M", "99999999999999999999G", "18446744073709551615"})
    expect_invalid(parse_memory_size(text), "maximum, 3G");
  expect_invalid(parse_memory_size("2M"), "minimum, 4M");
  expect_invalid(parse_memory_size("65M"), "2M steps");
  for (const char* text : {"lots", "64MX"})
    expect_invalid(parse_memory_size(text), "not a size");
  // A size already parsed is judged by the same rules.
  for (const auto& [bytes, rule] :
       {std::pair{4 * GiB, "maximum, 3G"}, std::pair{2 * MiB, "minimum, 4M"},
        std::pair{65 * MiB, "2M steps"}})
    expect_invalid(check_memory_size(bytes), rule);
  EXPECT_EQ(*parse_memory_size("3G"), 3 * GiB);
  EXPECT_EQ(*parse_memory_size("4096k"), 4 * MiB);
}

TEST(SizeGrammar, DiskSizesNameTheirRule) {
  expect_invalid(parse_disk_size("64X"), "'64X' is not a size");
  for (const char* text : {"2T", "99999999999999999999999"})
    expect_invalid(parse_disk_size(text), "maximum, 1T");
  expect_invalid(parse_disk_size("0"), "no sectors");
  expect_invalid(parse_disk_size("1000"), "512-byte sectors");
  EXPECT_EQ(*parse_disk_size("512"), 512u);
  EXPECT_EQ(*parse_disk_size("1T"), std::uint64_t{1} << 40);
}

TEST(TimeoutOption, OverflowingAndNonFiniteValuesAreRefused) {
  for (const char* text : {"inf", "infinity", "nan", "1e300", "1e10", "86401", "-1", "0", "0.0", "",
                           " 5", "+5", "0x10", "5s", "1e400"}) {
    expect_invalid(parse_timeout_seconds(text), "86400");  // names the maximum
  }
  for (const double seconds : {1e300, std::numeric_limits<double>::infinity(),
                               std::numeric_limits<double>::quiet_NaN(), 0.0, -1.0}) {
    expect_invalid(timeout_duration(seconds), "86400");
  }
}

TEST(TimeoutOption, SaneValuesAreAcceptedAndRoundedUpToAMillisecond) {
  auto seconds = parse_timeout_seconds("0.0001");
  ASSERT_TRUE(seconds.ok()) << seconds.error().message;
  auto tiny = timeout_duration(*seconds);
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(*tiny, std::chrono::milliseconds(1)) << "a 0.1 ms timeout must not become 0 ms";
  EXPECT_EQ(*timeout_duration(0.0015), std::chrono::milliseconds(2));
  EXPECT_EQ(*timeout_duration(30), std::chrono::milliseconds(30'000));
  auto longest = parse_timeout_seconds("86400");
  ASSERT_TRUE(longest.ok());
  EXPECT_EQ(*timeout_duration(*longest), std::chrono::hours(24));
  EXPECT_TRUE(parse_timeout_seconds("2e3").ok());
  // What Machine's wait_for gets fits steady_clock's nanoseconds with room.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout_duration(86400)).count(),
            std::chrono::nanoseconds::max().count() / 1000);
}

TEST(Counts, WholeDecimalNumbersOnly) {
  EXPECT_EQ(*parse_count("0"), 0u);
  EXPECT_EQ(*parse_count("1000"), 1000u);
  EXPECT_EQ(*parse_count("18446744073709551615"), std::numeric_limits<std::uint64_t>::max());
  for (const char* text : {"", "-1", "+5", "0x10", "1e3", "1,000", " 5", "5 ", "x"}) {
    expect_invalid(parse_count(text), "is not a count");
  }
  expect_invalid(parse_count("18446744073709551616"), "largest count");
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
  expect_invalid(parse_workload_selection("syscalls:x"), "bad count in 'syscalls:x': ");
  expect_invalid(parse_workload_selection(":5"), "names no workload");
  EXPECT_TRUE(check_workload_name("timer").ok());
  expect_invalid(check_workload_name("warp"), "compute");  // lists the workloads
}

TEST(Choices, OneTablePerOption) {
  EXPECT_EQ(*parse_choice(irqchip_choices(), "kernel"), IrqchipModel::Kernel);
  EXPECT_EQ(*parse_choice(disk_model_choices(), "ata"), DiskModel::Ata);
  EXPECT_FALSE(*parse_choice(iommu_choices(), "off"));
  EXPECT_EQ(*parse_choice(cpu_mode_choices(), "para"), "para");
  EXPECT_EQ(*parse_choice(cpu_mode_choices(), "bt"), "bt");
  auto bad = parse_choice(cpu_mode_choices(), "tcg");
  expect_invalid(bad, "'tcg'");
  EXPECT_EQ(bad.error().message, "'tcg' is not one of hvm, full, bt, para");
  // Names only: not the enum's number, not another case.
  expect_invalid(parse_choice(irqchip_choices(), "1"), "'1'");
  expect_invalid(parse_choice(irqchip_choices(), "Kernel"), "'Kernel'");
  for (const auto& choice : cpu_mode_choices())
    EXPECT_FALSE(choice.meaning.empty()) << choice.name << " needs a line of help";
}

TEST(Choices, CommaSeparatedLists) {
  auto both = parse_choice_list(irqchip_choices(), "vmm,,kernel");
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ(*both, (std::vector<IrqchipModel>{IrqchipModel::Vmm, IrqchipModel::Kernel}));
  expect_invalid(parse_choice_list(irqchip_choices(), "vmm,pic"), "'pic'");
  expect_invalid(parse_choice_list(irqchip_choices(), ","), "the list is empty");
}

// How the CLI passes an error on: the context in front, the kind kept.
TEST(ErrorContext, KeepsTheKindAndTheErrno) {
  const Error inner{CliError::kGuestUnreadable, "cannot open guest 'g.elf': No such file", ENOENT};
  const Error outer = with_context("--guest", inner);
  EXPECT_EQ(outer.kind, CliError::kGuestUnreadable);
  EXPECT_EQ(outer.system_errno, ENOENT);
  EXPECT_EQ(outer.message, "--guest: cannot open guest 'g.elf': No such file");
  EXPECT_STREQ(outer.kind.category().name(), "cli");
  EXPECT_EQ(outer.kind.message(), "kGuestUnreadable");
}

}  // namespace
}  // namespace vmlab
