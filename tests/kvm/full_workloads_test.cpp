// --cpu full end to end: the same guest kernel, deprivileged, must print the
// same result line as under hvm (cycles aside), and the monitor's trap counts
// must follow from what the workload does.
#include <gtest/gtest.h>

#include "../support/guest_runs.hpp"
#include "../support/kvm_available.hpp"
#include "vmlab/runner.hpp"

namespace vmlab {
namespace {

std::uint64_t traps(const GuestRun& run, const std::string& reason) {
  return testing::count_of(run.traps_by_reason, reason);
}

constexpr char kFull[] = "full";
using FullWorkload = testing::SameResultAsHvm<kFull>;

TEST_P(FullWorkload, MatchesHvm) {
  const auto& param = GetParam();
  EXPECT_GT(run.monitor_traps, 0u) << "a deprivileged kernel cannot boot without traps";
  EXPECT_EQ(hvm.monitor_traps, 0u) << "hvm has no monitor";

  const std::string workload = param.workload;
  const std::uint64_t n = param.count;
  if (workload == "cli-sti") {
    EXPECT_GE(traps(run, "privileged-instruction"), 2 * n) << "each cli and each sti traps";
  } else if (workload == "pio" || workload == "pio-out") {
    EXPECT_GE(traps(run, "privileged-instruction"), n) << "each inb or outb traps";
  } else if (workload == "cr8-write") {
    EXPECT_GE(traps(run, "privileged-instruction"), n) << "each mov to CR8 traps and is emulated";
  } else if (workload == "call-ret") {
    EXPECT_LT(run.monitor_traps, n / 10) << "call and ret run at CPL3 without traps";
  }
  testing::expect_monitor_sees_workload(run, workload, n);
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
