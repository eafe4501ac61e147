// QEMU (software emulation, PVH boot) is the stand-in for "the real machine":
// the same guest ELF must print the same result lines there and under vmlab,
// cycle counts aside (PLATFORM.md).
#include <gtest/gtest.h>

#include "../support/kvm_available.hpp"
#include "../support/result_lines.hpp"
#include "vmlab/reference.hpp"
#include "vmlab/runner.hpp"

namespace vmlab {
namespace {

using testing::without_cycles;

struct EquivalenceCase {
  const char* workload;
  std::uint64_t count;
};

class QemuEquivalence : public ::testing::TestWithParam<EquivalenceCase> {};

TEST_P(QemuEquivalence, SameResultLineAsHvm) {
  VMLAB_REQUIRE_KVM();
  if (!reference_machine_available()) {
    GTEST_SKIP() << "needs qemu-system-x86_64 (apt-get install qemu-system-x86)";
  }
  RunOptions options;
  options.workload = GetParam().workload;
  options.count = GetParam().count;
  options.timeout_seconds = 60;
  auto vmlab_run = run_guest(options);
  ASSERT_TRUE(vmlab_run.ok()) << vmlab_run.error().message;
  ASSERT_TRUE(vmlab_run->result.has_value()) << "vmlab run printed no result line";

  auto reference = run_reference_machine(builtin_guest_image(), vmlab_run->command_line);
  ASSERT_TRUE(reference.ok()) << reference.error().message;
  const ReferenceRun& qemu = *reference;
  EXPECT_EQ(qemu.exit_status, static_cast<int>((vmlab_run->report.exit_value << 1) | 1))
      << "isa-debug-exit status";
  std::optional<WorkloadResult> qemu_result;
  bool pvh_boot = false;
  for (const auto& line : qemu.debug_lines) {
    if (auto parsed = parse_result_line(line)) qemu_result = parsed;
    if (line.find("VMLAB-BOOT entry=pvh") == 0) pvh_boot = true;
  }
  EXPECT_TRUE(pvh_boot) << "QEMU should boot the guest through its PVH entry";
  ASSERT_TRUE(qemu_result.has_value()) << "QEMU run printed no result line";
  EXPECT_EQ(without_cycles(qemu_result->line), without_cycles(vmlab_run->result->line));
}

INSTANTIATE_TEST_SUITE_P(
    Workloads, QemuEquivalence,
    ::testing::Values(EquivalenceCase{"hello", 1}, EquivalenceCase{"syscalls", 500},
                      EquivalenceCase{"pagefaults", 100}, EquivalenceCase{"compute", 100000},
                      EquivalenceCase{"cli-sti", 300}, EquivalenceCase{"pio", 300},
                      EquivalenceCase{"timer", 5}),
    [](const auto& test_case) {
      std::string name = test_case.param.workload;
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

}  // namespace
}  // namespace vmlab
