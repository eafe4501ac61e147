#include <gtest/gtest.h>

#include "vmlab/runner.hpp"

namespace vmlab {
namespace {

TEST(ResultLine, ParsesFields) {
  auto result = parse_result_line(
      "VMLAB-RESULT workload=pio n=10 status=ok cycles=12345 syscalls=0 irqs=0 pagefaults=0 "
      "check=0x384");
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->field("workload"), "pio");
  EXPECT_EQ(result->number("n"), 10u);
  EXPECT_EQ(result->number("cycles"), 12345u);
  EXPECT_EQ(result->number("check"), 0x384u);
  EXPECT_EQ(result->field("missing"), "");
  EXPECT_EQ(result->number("workload"), 0u) << "not a number";
}

TEST(ResultLine, IgnoresOtherLines) {
  EXPECT_FALSE(parse_result_line("VMLAB-BOOT entry=vmlab mem=1 devices=6").has_value());
  EXPECT_FALSE(parse_result_line("").has_value());
}

TEST(RunOptions, CommandLine) {
  RunOptions options;
  options.workload = "syscalls";
  options.count = 5;
  options.extra_command_line = "console=irq";
  EXPECT_EQ(command_line_for(options), "workload=syscalls n=5 console=irq");
  EXPECT_NE(find_workload("timer"), nullptr);
  EXPECT_EQ(find_workload("nope"), nullptr);
}

}  // namespace
}  // namespace vmlab
