// The instruction census (RunOptions::instruction_census): every instruction
// the guest retires is one single step, counted by the level it ran at. The
// guest's user program is the same under every technique, so its count must
// be too; stepping must not change what the guest computes.
#include <gtest/gtest.h>

#include "../support/kvm_available.hpp"
#include "../support/result_lines.hpp"
#include "vmlab/runner.hpp"

namespace vmlab {
namespace {

GuestRun counted(const std::string& cpu, const std::string& workload, std::uint64_t count,
                 bool census = true) {
  RunOptions options;
  options.cpu = cpu;
  options.workload = workload;
  options.count = count;
  options.instruction_census = census;
  options.timeout_seconds = 120;
  auto run = run_guest(options);
  EXPECT_TRUE(run.ok()) << run.error().message;
  if (!run.ok()) return GuestRun{};
  EXPECT_EQ(run->report.outcome, RunOutcome::GuestExited) << run->report.message;
  EXPECT_TRUE(run->result.has_value());
  return std::move(*run);
}

TEST(InstructionCensus, AbsentUnlessAsked) {
  VMLAB_REQUIRE_KVM();
  EXPECT_FALSE(counted("hvm", "hello", 1, false).census.has_value());
  EXPECT_FALSE(counted("full", "hello", 1, false).census.has_value());
}

// One user program, one count, whoever steps it; under hvm only where KVM
// steps CPL3 (not kvm_pvm, whose emulated iretq drops KVM's TF).
TEST(InstructionCensus, TheUserProgramCountsTheSameUnderEveryTechnique) {
  VMLAB_REQUIRE_KVM();
  const GuestRun full = counted("full", "syscalls", 20);
  ASSERT_TRUE(full.census.has_value());
  EXPECT_GT(full.census->user_steps, 20u) << "each system call is an instruction at least";
  EXPECT_GT(full.census->kernel_steps, full.census->user_steps) << "the boot is kernel code";
  EXPECT_EQ(full.census->translated_steps, 0u);
  for (const char* cpu : {"bt", "para", "hvm"}) {
    SCOPED_TRACE(cpu);
    const GuestRun run = counted(cpu, "syscalls", 20);
    ASSERT_TRUE(run.census.has_value());
    EXPECT_GT(run.census->kernel_steps + run.census->translated_steps, 1000u);
    if (run.census->user_mode_counted) {
      EXPECT_EQ(run.census->user_steps, full.census->user_steps);
    } else {
      EXPECT_EQ(std::string(cpu), "hvm");
      EXPECT_EQ(run.census->user_steps, 0u);
    }
  }
}

// bt's kernel never runs at its own addresses: every kernel-mode step is in
// the translation cache.
TEST(InstructionCensus, BtKernelStepsAreTranslated) {
  VMLAB_REQUIRE_KVM();
  const GuestRun run = counted("bt", "syscalls", 20);
  ASSERT_TRUE(run.census.has_value());
  EXPECT_EQ(run.census->kernel_steps, 0u);
  EXPECT_GT(run.census->translated_steps, 1000u);
}

// compute's loop is user code of a fixed length per round: doubling the
// rounds adds a whole number of instructions per round, and stepping leaves
// the checksum as an unstepped run computes it.
TEST(InstructionCensus, CountsGrowWithTheWorkAndChangeNoResult) {
  VMLAB_REQUIRE_KVM();
  for (const char* cpu : {"full", "para"}) {
    SCOPED_TRACE(cpu);
    const GuestRun small = counted(cpu, "compute", 1000);
    const GuestRun large = counted(cpu, "compute", 2000);
    ASSERT_TRUE(small.census && large.census);
    const std::uint64_t added = large.census->user_steps - small.census->user_steps;
    EXPECT_GT(added, 1000u);
    EXPECT_EQ(added % 1000, 0u) << added;
    const GuestRun plain = counted(cpu, "compute", 2000, false);
    ASSERT_TRUE(plain.result && large.result);
    EXPECT_EQ(testing::without_cycles(large.result->line),
              testing::without_cycles(plain.result->line));
  }
}

}  // namespace
}  // namespace vmlab
