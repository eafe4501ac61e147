// --cpu full end to end: the same guest kernel, deprivileged, must print the
// same result line as under hvm (cycles aside), and the monitor's trap counts
// must follow from what the workload does.
#include <gtest/gtest.h>

#include "../support/guest_runs.hpp"
#include "../support/kvm_available.hpp"
#include "../support/result_lines.hpp"
#include "vmlab/runner.hpp"

namespace vmlab {
namespace {

using testing::without_cycles;

using testing::run_in;

std::uint64_t traps(const GuestRun& run, const std::string& reason) {
  return testing::count_of(run.traps_by_reason, reason);
}

using testing::WorkloadCase;

class FullWorkload : public ::testing::TestWithParam<WorkloadCase> {};

TEST_P(FullWorkload, MatchesHvm) {
  VMLAB_REQUIRE_KVM();
  const auto& param = GetParam();
  const GuestRun full = run_in("full", param.workload, param.count);
  const GuestRun hvm = run_in("hvm", param.workload, param.count);
  ASSERT_EQ(full.report.outcome, RunOutcome::GuestExited) << full.report.message << "\n"
                                                          << full.report.registers;
  EXPECT_EQ(full.report.exit_value, param.exit_status);
  ASSERT_TRUE(full.result.has_value()) << "no result line in full mode";
  ASSERT_TRUE(hvm.result.has_value());
  EXPECT_EQ(without_cycles(full.result->line), without_cycles(hvm.result->line));
  EXPECT_GT(full.monitor_traps, 0u) << "a deprivileged kernel cannot boot without traps";
  EXPECT_EQ(hvm.monitor_traps, 0u) << "hvm has no monitor";

  const std::string workload = param.workload;
  const std::uint64_t n = param.count;
  if (workload == "cli-sti") {
    EXPECT_GE(traps(full, "privileged-instruction"), 2 * n) << "each cli and each sti traps";
  } else if (workload == "syscalls") {
    EXPECT_GE(traps(full, "system-call"), n) << "each user syscall enters the monitor";
  } else if (workload == "pio") {
    EXPECT_GE(traps(full, "privileged-instruction"), n) << "each inb traps";
  } else if (workload == "pagefaults") {
    EXPECT_GE(traps(full, "guest-page-fault"), n) << "each demand fault is reflected";
  } else if (workload == "timer") {
    EXPECT_GE(full.interrupts_injected, n) << "the monitor injects every tick the guest counts";
    EXPECT_EQ(full.result->number("irqs"), n);
  }
}

INSTANTIATE_TEST_SUITE_P(Workloads, FullWorkload, ::testing::ValuesIn(testing::kEveryWorkload),
                         testing::workload_case_name);

TEST(FullRun, InterruptDrivenConsoleMatchesHvm) {
  VMLAB_REQUIRE_KVM();
  RunOptions options;
  options.cpu = "full";
  options.workload = "hello";
  options.extra_command_line = "console=irq";
  std::string console;
  options.console_output = [&](std::uint8_t byte) { console.push_back(static_cast<char>(byte)); };
  auto run = run_guest(options);
  ASSERT_TRUE(run.ok()) << run.error().message;
  ASSERT_TRUE(run->result.has_value());
  EXPECT_EQ(run->result->field("status"), "ok");
  EXPECT_EQ(run->result->number("irqs"), 2u) << "two THRE interrupts, as in QEMU and hvm";
  EXPECT_NE(console.find("Hello from user mode"), std::string::npos);
}

TEST(FullRun, RefusesTheInKernelIrqchip) {
  VMLAB_REQUIRE_KVM();
  RunOptions options;
  options.cpu = "full";
  options.irqchip = IrqchipModel::Kernel;
  auto run = run_guest(options);
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.error().message.find("--irqchip vmm"), std::string::npos);
}

}  // namespace
}  // namespace vmlab
