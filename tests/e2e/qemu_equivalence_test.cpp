// QEMU (software emulation, PVH boot) is the stand-in for "the real machine":
// the same guest ELF must print the same result lines there and under vmlab,
// cycle counts aside (PLATFORM.md).
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <iterator>

#include "../support/kvm_available.hpp"
#include "../support/result_lines.hpp"
#include "vmlab/devices/raw_image_file.hpp"
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
                      EquivalenceCase{"kernel-compute", 100000},
                      EquivalenceCase{"kernel-smc", 1000}, EquivalenceCase{"cli-sti", 300},
                      EquivalenceCase{"pio", 300}, EquivalenceCase{"timer", 5},
                      EquivalenceCase{"rtc", 3}, EquivalenceCase{"pio-out", 300},
                      EquivalenceCase{"cr8-write", 300}, EquivalenceCase{"call-ret", 10000},
                      EquivalenceCase{"divide-error", 300}, EquivalenceCase{"pte-update", 600},
                      EquivalenceCase{"interrupts", 5},
                      // Refused natively, on QEMU as under hvm (status=error).
                      EquivalenceCase{"hypercall", 10}),
    [](const auto& test_case) {
      std::string name = test_case.param.workload;
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

// A pattern written by vmlab through virtio-blk reads back the same through
// QEMU's virtio-blk on microvm (polled: microvm gives the 8259 no way to the
// CPU with an APIC) and through vmlab again.
// vmlab writes a pattern through `model`; QEMU (pc with IDE for ATA, microvm
// with a virtio-blk-device for virtio) and vmlab then read the same image.
void expect_disk_read_matches_qemu(const std::string& model, ReferenceDiskModel reference_model) {
  std::string path = ::testing::TempDir() + "vmlab-qemu-disk-XXXXXX";
  const int descriptor = ::mkstemp(path.data());
  ASSERT_GE(descriptor, 0);
  ::close(descriptor);
  struct Remove {
    std::string path;
    ~Remove() { ::unlink(path.c_str()); }
  } remove{path};
  auto created = devices::create_raw_image(path, 4 * MiB, /*overwrite=*/true);
  ASSERT_TRUE(created.ok()) << created.error().message;

  RunOptions options;
  options.disk_path = path;
  options.disk_model = model;
  options.count = 64;
  options.timeout_seconds = 60;
  options.workload = "disk-write";
  auto write = run_guest(options);
  ASSERT_TRUE(write.ok()) << write.error().message;
  ASSERT_TRUE(write->result.has_value());
  ASSERT_EQ(write->result->field("status"), "ok") << write->result->line;

  options.workload = "disk-read";
  options.extra_command_line = "disk-irq=0";
  auto read = run_guest(options);
  ASSERT_TRUE(read.ok()) << read.error().message;
  ASSERT_TRUE(read->result.has_value());
  ASSERT_EQ(read->result->field("status"), "ok") << read->result->line;

  auto reference = run_reference_machine(builtin_guest_image(), read->command_line, 60,
                                         ReferenceDisk{path, reference_model});
  ASSERT_TRUE(reference.ok()) << reference.error().message;
  std::optional<WorkloadResult> qemu_result;
  for (const auto& line : reference->debug_lines) {
    if (auto parsed = parse_result_line(line)) qemu_result = parsed;
  }
  ASSERT_TRUE(qemu_result.has_value()) << "QEMU run printed no result line";
  EXPECT_EQ(reference->exit_status, 1) << "isa-debug-exit status";
  EXPECT_EQ(without_cycles(qemu_result->line), without_cycles(read->result->line));
}

TEST(QemuDiskEquivalence, VirtioDiskReadMatchesQemu) {
  VMLAB_REQUIRE_KVM();
  if (!reference_machine_available()) {
    GTEST_SKIP() << "needs qemu-system-x86_64 (apt-get install qemu-system-x86)";
  }
  expect_disk_read_matches_qemu("virtio", ReferenceDiskModel::Virtio);
}

TEST(QemuDiskEquivalence, AtaDiskReadMatchesQemu) {
  VMLAB_REQUIRE_KVM();
  if (!reference_machine_available()) {
    GTEST_SKIP() << "needs qemu-system-x86_64 (apt-get install qemu-system-x86)";
  }
  expect_disk_read_matches_qemu("ata", ReferenceDiskModel::Ata);
}

}  // namespace
}  // namespace vmlab
