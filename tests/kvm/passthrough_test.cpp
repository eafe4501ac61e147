// The passthrough disk end to end (DESIGN.md 6, issue 6): the guest's native
// driver against the controller thread, DMA through the IOMMU model, the
// dma-attack workload in every CPU mode, --iommu off, one VM per device, and
// the device thread's lifecycle as a VM sees it.
#include <gtest/gtest.h>

#include <dirent.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "../support/disk_runs.hpp"
#include "../support/kvm_available.hpp"
#include "vmlab/devices/passthrough_controller.hpp"
#include "vmlab/runner.hpp"

namespace vmlab {
namespace {

using testing::describe;
using testing::disk_options;
using testing::run_disk;
using testing::start_run;
using testing::status_of;
using testing::TemporaryImage;

// target -> the VMLAB-DMA line's fields, from the guest's dma-attack.
std::map<std::string, std::map<std::string, std::string>> dma_lines(const GuestRun& run) {
  std::map<std::string, std::map<std::string, std::string>> targets;
  for (const auto& line : run.debug_lines) {
    if (auto fields = parse_debug_line_fields(line, "VMLAB-DMA ")) {
      targets[(*fields)["target"]] = std::move(*fields);
    }
  }
  return targets;
}

std::size_t entries_in(const char* directory) {
  std::size_t count = 0;
  if (DIR* listing = ::opendir(directory)) {
    while (::readdir(listing) != nullptr)
      ++count;
    ::closedir(listing);
  }
  return count;
}

class DmaAttack : public ::testing::TestWithParam<const char*> {};

TEST_P(DmaAttack, TheIommuBlocksMemoryTheGuestDoesNotOwn) {
  VMLAB_REQUIRE_KVM();
  const std::string cpu = GetParam();
  TemporaryImage image;
  const GuestRun run = run_disk(image, cpu, "passthrough", "dma-attack", 1);
  ASSERT_EQ(run.report.outcome, RunOutcome::GuestExited) << describe(run);
  ASSERT_EQ(status_of(run), "ok") << describe(run);

  const auto targets = dma_lines(run);
  ASSERT_EQ(targets.size(), 5u) << describe(run);
  EXPECT_EQ(targets.at("control").at("outcome"), "reached");
  for (const char* foreign : {"monitor", "past-ram", "reserved"}) {
    SCOPED_TRACE(foreign);
    EXPECT_EQ(targets.at(foreign).at("outcome"), "blocked");
    EXPECT_EQ(targets.at(foreign).at("status"), "dma");
    // The device reports the first byte it was refused.
    EXPECT_EQ(targets.at(foreign).at("fault"), targets.at(foreign).at("iova"));
  }
  EXPECT_EQ(targets.at("monitor").at("iova"), "0xd0000000");
  // Only para's monitor relies on validated page tables, so only there does
  // the IOMMU keep the device from writing them (as Xen does for PV guests).
  EXPECT_EQ(targets.at("page-table").at("outcome"), cpu == "para" ? "blocked" : "reached");

  const std::uint64_t blocked = cpu == "para" ? 4 : 3;
  EXPECT_EQ(run.result->number("check"), blocked);
  EXPECT_EQ(run.iommu_fault_events, blocked);  // one remapping-fault event each
  EXPECT_EQ(run.disk_statistics.at("iommu.faults"), blocked);
  EXPECT_EQ(run.disk_statistics.at("passthrough.dma_faults"), blocked);
  ASSERT_EQ(run.device_problems.size(), blocked);
  EXPECT_NE(run.device_problems[0].find("0xd0000000"), std::string::npos) << describe(run);
  if (cpu == "para") {
    EXPECT_GT(run.disk_statistics.at("iommu.protected_frames"), 0u);
  }
  EXPECT_FALSE(run.iommu_off);
  EXPECT_EQ(run.platform_line.find("UNSAFE"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Modes, DmaAttack, ::testing::Values("hvm", "full", "bt", "para"));

TEST(Passthrough, IommuOffLetsTheDeviceIntoAllOfGuestRamButNoFurtherAndSaysUnsafe) {
  VMLAB_REQUIRE_KVM();
  for (const char* cpu : {"hvm", "para"}) {
    SCOPED_TRACE(cpu);
    TemporaryImage image;
    RunOptions options = disk_options(image, cpu, "passthrough", "dma-attack", std::nullopt);
    options.iommu = false;
    const GuestRun run = start_run(options);
    ASSERT_EQ(status_of(run), "ok") << describe(run);
    const auto targets = dma_lines(run);
    ASSERT_EQ(targets.size(), 5u) << describe(run);
    EXPECT_EQ(targets.at("reserved").at("outcome"), "reached");
    EXPECT_EQ(targets.at("page-table").at("outcome"), "reached");
    EXPECT_EQ(targets.at("monitor").at("outcome"), "blocked");  // outside guest RAM
    EXPECT_EQ(targets.at("past-ram").at("outcome"), "blocked");
    EXPECT_EQ(run.iommu_fault_events, 2u);
    EXPECT_TRUE(run.iommu_off);
    EXPECT_NE(run.platform_line.find("UNSAFE: --iommu off"), std::string::npos);
  }
}

TEST(Passthrough, IommuOffWithoutAPassthroughDiskIsRefused) {
  TemporaryImage image;
  RunOptions options;
  options.workload = "disk-write";
  options.disk_path = image.path();
  options.disk_model = "virtio";
  options.iommu = false;
  EXPECT_TRUE(testing::refused_naming(options, {"--iommu off applies to a passthrough disk"}));

  options.workload = "dma-attack";
  options.iommu = true;
  EXPECT_TRUE(testing::refused_naming(options, {"dma-attack needs the passthrough disk"}));
}

TEST(Passthrough, ASecondVmAskingForTheSameDeviceIsRefused) {
  VMLAB_REQUIRE_KVM();
  TemporaryImage image;
  {
    // Another VM of this process owns the device, under any name of the image.
    const std::filesystem::path path(image.path());
    const std::string other_name = (path.parent_path() / "." / path.filename()).string();
    auto claim = devices::PassthroughController::claim(passthrough_device_name(other_name));
    ASSERT_TRUE(claim.ok()) << claim.error().message;
    RunOptions options;
    options.workload = "disk-write";
    options.count = 8;
    options.disk_path = image.path();
    options.disk_model = "passthrough";
    EXPECT_TRUE(testing::refused_naming(
        options, {"already belongs to another VM", "cannot be shared or migrated"}));
    EXPECT_TRUE(testing::image_is_zero(image));  // nothing touched the disk
  }
  // Released with the other VM: now it is this one's.
  const GuestRun run = run_disk(image, "hvm", "passthrough", "disk-write", 8);
  EXPECT_EQ(status_of(run), "ok") << describe(run);
  EXPECT_TRUE(run.passthrough);
}

// The register window is memory in its own KVM slot: the driver's register
// accesses never leave the guest, in any mode.
TEST(Passthrough, RegisterAccessesCauseNoExits) {
  VMLAB_REQUIRE_KVM();
  for (const char* cpu : {"hvm", "full", "bt", "para"}) {
    SCOPED_TRACE(cpu);
    TemporaryImage image;
    const GuestRun run = run_disk(image, cpu, "passthrough", "disk-verify", 256, "disk-irq=0");
    ASSERT_EQ(status_of(run), "ok") << describe(run);
    EXPECT_GT(run.disk_statistics.at("passthrough.commands"), 8u);
    EXPECT_EQ(run.exits_by_reason.count("mmio-read"), 0u);
    EXPECT_EQ(run.exits_by_reason.count("mmio-write"), 0u);
  }
}

TEST(Passthrough, InterruptsGoThroughIrqfdWithTheKernelIrqchip) {
  VMLAB_REQUIRE_KVM();
  TemporaryImage image;
  RunOptions options = disk_options(image, "hvm", "passthrough", "disk-verify", 64, "disk-irq=1");
  options.irqchip = IrqchipModel::Kernel;
  const GuestRun run = start_run(options);
  ASSERT_EQ(status_of(run), "ok") << describe(run);
  const auto interrupts = run.disk_statistics.at("passthrough.interrupts");
  EXPECT_GT(interrupts, 0u);
  EXPECT_EQ(run.disk_statistics.at("passthrough.irqfd_interrupts"), interrupts);
  EXPECT_EQ(run.interrupts_injected, 0u);  // KVM delivered them, not the VMM
}

// A VM stopped while the guest keeps the device busy (one sector per
// command, thousands of them) tears the device thread down with commands in
// flight; afterwards the process has the threads and descriptors it had
// before, and the image still opens.
TEST(Passthrough, TeardownWithCommandsInFlightLeaksNoThreadsOrDescriptors) {
  VMLAB_REQUIRE_KVM();
  TemporaryImage image;
  // One run first: whatever the first VM sets up once per process (KVM's own
  // threads, cached descriptors) is then in the baseline.
  const GuestRun warm_up = run_disk(image, "hvm", "passthrough", "disk-write", 8);
  ASSERT_EQ(status_of(warm_up), "ok") << describe(warm_up);
  const std::size_t threads_before = entries_in("/proc/self/task");
  const std::size_t descriptors_before = entries_in("/proc/self/fd");

  for (const char* cpu : {"hvm", "para"}) {
    SCOPED_TRACE(cpu);
    // How long the whole read would take depends on the host (kvm_pvm
    // emulates kernel code; VT-x and AMD-V run it at full speed): time a
    // short read first and stop the long one well before it could end.
    constexpr std::uint64_t kProbeSectors = 256;
    const GuestRun probe = run_disk(image, cpu, "passthrough", "disk-read", kProbeSectors,
                                    "disk-request=1 disk-batch=1");
    ASSERT_EQ(status_of(probe), "ok") << describe(probe);
    const double probe_seconds = std::chrono::duration<double>(probe.report.wall_time).count();
    // disk-read starts issuing commands at once (disk-write first fills its
    // buffer, which takes a while in hvm's emulated kernel mode).
    RunOptions options = disk_options(image, cpu, "passthrough", "disk-read",
                                      testing::kImageSize / 512, "disk-request=1 disk-batch=1");
    // The probe's time covers boot and 256 commands; the whole read needs
    // boot and 32 times as many. A quarter of that ends it midway, with
    // commands in flight, on a fast host or a slow one.
    options.timeout_seconds =
        probe_seconds * (static_cast<double>(*options.count) / static_cast<double>(kProbeSectors)) /
        4.0;
    auto run = run_guest(options);
    ASSERT_TRUE(run.ok()) << run.error().message;
    EXPECT_EQ(run->report.outcome, RunOutcome::Timeout) << describe(*run);
    const auto commands = run->disk_statistics.at("passthrough.commands");
    EXPECT_GT(commands, 0u);  // the device was at work when the VM stopped
    EXPECT_LT(commands, *options.count);
    EXPECT_EQ(entries_in("/proc/self/task"), threads_before);
    EXPECT_EQ(entries_in("/proc/self/fd"), descriptors_before);
  }
  const GuestRun after = run_disk(image, "hvm", "passthrough", "disk-verify", 16);
  EXPECT_EQ(status_of(after), "ok") << describe(after);
}

}  // namespace
}  // namespace vmlab
