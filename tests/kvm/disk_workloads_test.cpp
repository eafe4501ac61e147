// Disks end to end: the built-in guest's disk workloads over the board's ATA
// and virtio-blk models, in every CPU mode. The oracle is the image file on
// the host: after disk-write it must hold exactly the pattern the guest
// documents (guest/kernel/disk_workloads.c), and nothing past it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

#include "../support/disk_runs.hpp"
#include "../support/kvm_available.hpp"
#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/runner.hpp"

namespace vmlab {
namespace {

using testing::Access;
using testing::describe;
using testing::disk_options;
using testing::image_is_zero;
using testing::kImageSize;
using testing::run_disk;
using testing::start_run;
using testing::status_of;
using testing::TemporaryImage;

constexpr std::uint64_t kSectorSize = 512;
constexpr std::uint64_t kSeed = 1;  // the guest's default disk-seed

// Quadword i of sector s with seed x, as guest/kernel/disk_workloads.c writes it.
std::uint64_t pattern_word(std::uint64_t sector, std::uint64_t seed, std::uint64_t index) {
  if (index == 0) return sector;
  if (index == 1) return seed;
  return ((seed * 0x9e3779b97f4a7c15ull) ^ (sector * 0xc2b2ae3d27d4eb4full)) +
         index * 0x0101010101010101ull;
}

std::uint64_t little_endian_at(const std::vector<std::uint8_t>& bytes, std::uint64_t offset) {
  std::uint64_t value = 0;
  for (unsigned byte = 0; byte < 8; ++byte)
    value |= std::uint64_t{bytes[offset + byte]} << (8 * byte);
  return value;
}

// Sectors [0, count) hold the pattern, and the image is zero after them.
::testing::AssertionResult image_holds_pattern(const TemporaryImage& image, std::uint64_t count) {
  const auto bytes = image.contents();
  if (bytes.size() != kImageSize) {
    return ::testing::AssertionFailure() << "the image is " << bytes.size() << " bytes";
  }
  for (std::uint64_t sector = 0; sector < count; ++sector) {
    for (std::uint64_t index = 0; index < kSectorSize / 8; ++index) {
      const std::uint64_t found = little_endian_at(bytes, sector * kSectorSize + index * 8);
      const std::uint64_t expected = pattern_word(sector, kSeed, index);
      if (found != expected) {
        return ::testing::AssertionFailure() << "sector " << sector << " quadword " << index << ": "
                                             << std::hex << found << ", expected " << expected;
      }
    }
  }
  for (std::uint64_t offset = count * kSectorSize; offset < bytes.size(); ++offset) {
    if (bytes[offset] != 0) {
      return ::testing::AssertionFailure()
             << "byte " << offset << " past the written sectors is " << unsigned{bytes[offset]};
    }
  }
  return ::testing::AssertionSuccess();
}

// Every monitor trap and hypercall is already one of the VM exits.
std::uint64_t vmm_entries(const GuestRun& run) {
  return run.vm_exits();
}

struct DiskCase {
  const char* cpu;
  const char* model;
};

void PrintTo(const DiskCase& disk, std::ostream* out) {
  *out << disk.cpu << "/" << disk.model;
}

class DiskWorkload : public ::testing::TestWithParam<DiskCase> {};

TEST_P(DiskWorkload, WritesThePatternReadsItBackAndVerifies) {
  VMLAB_REQUIRE_KVM();
  const auto& param = GetParam();
  TemporaryImage image;
  constexpr std::uint64_t kSectors = 64;

  // Completion by interrupt for the write, by polling for the read.
  const GuestRun write =
      run_disk(image, param.cpu, param.model, "disk-write", kSectors, "disk-irq=1");
  ASSERT_EQ(write.report.outcome, RunOutcome::GuestExited) << describe(write);
  ASSERT_EQ(status_of(write), "ok") << describe(write);
  EXPECT_TRUE(write.device_problems.empty()) << describe(write);
  EXPECT_TRUE(image_holds_pattern(image, kSectors));

  const GuestRun read =
      run_disk(image, param.cpu, param.model, "disk-read", kSectors, "disk-irq=0");
  ASSERT_EQ(status_of(read), "ok") << describe(read);
  EXPECT_EQ(read.result->field("check"), write.result->field("check"));
  EXPECT_TRUE(image_holds_pattern(image, kSectors));

  if (std::string(param.model) == "ata") {
    EXPECT_EQ(write.disk_statistics.at("ata.sectors_written"), kSectors);
    EXPECT_EQ(read.disk_statistics.at("ata.sectors_read"), kSectors);
  } else if (std::string(param.model) == "passthrough") {
    EXPECT_EQ(write.disk_statistics.at("passthrough.bytes_written"), kSectors * kSectorSize);
    EXPECT_GT(write.disk_statistics.at("passthrough.interrupts"), 0u);
    EXPECT_EQ(read.disk_statistics.at("passthrough.bytes_read"), kSectors * kSectorSize);
    EXPECT_EQ(read.disk_statistics.at("passthrough.interrupts"), 0u);  // polled
    EXPECT_EQ(read.disk_statistics.at("iommu.faults"), 0u);
    EXPECT_EQ(read.iommu_fault_events, 0u);
  } else {
    EXPECT_EQ(write.disk_statistics.at("virtio.bytes_written"), kSectors * kSectorSize);
    EXPECT_EQ(read.disk_statistics.at("virtio.bytes_read"), kSectors * kSectorSize);
    EXPECT_EQ(read.disk_statistics.at("virtio.problems"), 0u);
  }

  const GuestRun verify = run_disk(image, param.cpu, param.model, "disk-verify", 32);
  EXPECT_EQ(status_of(verify), "ok") << describe(verify);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, DiskWorkload,
    ::testing::Values(DiskCase{"hvm", "ata"}, DiskCase{"hvm", "virtio"}, DiskCase{"full", "ata"},
                      DiskCase{"full", "virtio"}, DiskCase{"bt", "ata"}, DiskCase{"bt", "virtio"},
                      DiskCase{"para", "ata"}, DiskCase{"para", "virtio"},
                      DiskCase{"hvm", "passthrough"}, DiskCase{"full", "passthrough"},
                      DiskCase{"bt", "passthrough"}, DiskCase{"para", "passthrough"}),
    [](const auto& test_info) {
      return std::string(test_info.param.cpu) + "_" + test_info.param.model;
    });

TEST(DiskWorkloads, AtaPolledAndInterruptWriteTheSameBytes) {
  VMLAB_REQUIRE_KVM();
  for (const char* keys : {"disk-irq=0", "disk-irq=1"}) {
    SCOPED_TRACE(keys);
    TemporaryImage image;
    const GuestRun run = run_disk(image, "hvm", "ata", "disk-write", 48, keys);
    ASSERT_EQ(status_of(run), "ok") << describe(run);
    EXPECT_TRUE(image_holds_pattern(image, 48));
  }
}

TEST(DiskWorkloads, ReadOnlyDiskRefusesWritesAndStaysUnchanged) {
  VMLAB_REQUIRE_KVM();
  for (const char* model : {"ata", "virtio"}) {
    SCOPED_TRACE(model);
    TemporaryImage image;
    const GuestRun run = run_disk(image, "hvm", model, "disk-write", 16, "", Access::ReadOnly);
    EXPECT_EQ(status_of(run), "error") << describe(run);
    EXPECT_TRUE(image_is_zero(image));
  }
}

TEST(DiskWorkloads, DiskWorkloadWithoutDiskIsAUsageError) {
  RunOptions options;
  options.workload = "disk-write";
  EXPECT_TRUE(
      testing::refused_naming(options, {"disk-write needs --disk PATH", "vmlab disk create"}));
}

TEST(DiskWorkloads, MissingImageIsAClearError) {
  RunOptions options;
  options.workload = "disk-read";
  options.disk_path = ::testing::TempDir() + "vmlab-no-such-image.img";
  EXPECT_TRUE(testing::refused_naming(options, {"vmlab-no-such-image.img"}));
}

// DESIGN.md 6: in hvm a QueueNotify write signals a KVM ioeventfd, served by
// a board thread, rather than exiting to the VMM; both paths move the same
// bytes, with completion by polling and by interrupt.
TEST(DiskWorkloads, VirtioNotificationsThroughIoeventfdInHvm) {
  VMLAB_REQUIRE_KVM();
  for (const bool ioeventfd : {true, false}) {
    for (const char* keys : {"disk-irq=0", "disk-irq=1"}) {
      SCOPED_TRACE(std::string(keys) + (ioeventfd ? " ioeventfd" : " exits"));
      TemporaryImage image;
      RunOptions options = disk_options(image, "hvm", "virtio", "disk-write", 64, keys);
      options.virtio_ioeventfd = ioeventfd;
      const GuestRun run = start_run(options);
      ASSERT_EQ(status_of(run), "ok") << describe(run);
      EXPECT_TRUE(image_holds_pattern(image, 64));
      const auto notifications = run.disk_statistics.at("virtio.notifications");
      EXPECT_GT(notifications, 0u);
      EXPECT_EQ(run.disk_statistics.at("virtio.ioeventfd_notifications"),
                ioeventfd ? notifications : 0u);
    }
  }
}

// VIRTIO_F_EVENT_IDX offered by the device and used by the driver: the
// guest asks for one interrupt per batch through used_event, the device
// writes avail_event; the data must be unaffected, in every CPU mode.
TEST(DiskWorkloads, EventIndexNotificationSuppressionKeepsTheData) {
  VMLAB_REQUIRE_KVM();
  for (const char* cpu : {"hvm", "full", "bt", "para"}) {
    SCOPED_TRACE(cpu);
    TemporaryImage image;
    RunOptions options =
        disk_options(image, cpu, "virtio", "disk-verify", 128, "virtio-event-idx=1 disk-irq=1");
    options.virtio_event_index = true;
    std::string console;
    options.console_output = [&](std::uint8_t byte) { console.push_back(static_cast<char>(byte)); };
    const GuestRun run = start_run(options);
    ASSERT_EQ(status_of(run), "ok") << describe(run);
    EXPECT_NE(console.find("event-idx on"), std::string::npos) << "the driver negotiated it";
    EXPECT_EQ(run.result->number("check"), 0u) << "no mismatched sectors";
    EXPECT_GT(run.disk_statistics.at("virtio.interrupts"), 0u);
    EXPECT_TRUE(run.device_problems.empty());
  }
}

// The VMM passes the TSC rate in boot_info (tsc_khz), so the guest can turn
// its cycles into MB/s.
TEST(DiskWorkloads, GuestReportsMegabytesPerSecond) {
  VMLAB_REQUIRE_KVM();
  TemporaryImage image;
  const GuestRun run = run_disk(image, "hvm", "virtio", "disk-write", 64);
  std::string disk_line;
  for (const auto& line : run.debug_lines) {
    if (line.rfind("VMLAB-DISK ", 0) == 0) disk_line = line;
  }
  ASSERT_FALSE(disk_line.empty());
  EXPECT_NE(disk_line.find(" bytes=32768 "), std::string::npos) << disk_line;
  EXPECT_EQ(disk_line.find("mbps=unknown"), std::string::npos) << disk_line;
}

// With KVM's in-kernel irqchip, used-buffer interrupts go through irqfd and
// never exit; with the VMM's 8259A they are raised by the VMM.
TEST(DiskWorkloads, VirtioInterruptsThroughIrqfdWithTheKernelIrqchip) {
  VMLAB_REQUIRE_KVM();
  for (const auto irqchip : {IrqchipModel::Kernel, IrqchipModel::Vmm}) {
    SCOPED_TRACE(irqchip == IrqchipModel::Kernel ? "kernel irqchip" : "vmm irqchip");
    TemporaryImage image;
    RunOptions options = disk_options(image, "hvm", "virtio", "disk-verify", 64, "disk-irq=1");
    options.irqchip = irqchip;
    const GuestRun run = start_run(options);
    ASSERT_EQ(status_of(run), "ok") << describe(run);
    EXPECT_GT(run.result->number("irqs"), 0u);
    const auto interrupts = run.disk_statistics.at("virtio.interrupts");
    EXPECT_GT(interrupts, 0u);
    // Every rising edge of the device's line is one irqfd write; a
    // completion while the line is still up (not yet acknowledged) is not.
    const auto through_irqfd = run.disk_statistics.at("virtio.irqfd_interrupts");
    if (irqchip == IrqchipModel::Kernel) {
      EXPECT_GT(through_irqfd, 0u);
      EXPECT_LE(through_irqfd, interrupts);
    } else {
      EXPECT_EQ(through_irqfd, 0u);
    }
  }
}

// DESIGN.md 6: every ATA register access is an exit; virtio needs one
// notification per batch of requests.
TEST(DiskWorkloads, VirtioNeedsTenTimesFewerVmmEntriesPerKibThanAta) {
  VMLAB_REQUIRE_KVM();
  constexpr std::uint64_t kSectors = 128;
  constexpr double kKib = static_cast<double>(kSectors * kSectorSize) / 1024.0;
  TemporaryImage ata_image;
  TemporaryImage virtio_image;
  const GuestRun ata = run_disk(ata_image, "hvm", "ata", "disk-write", kSectors);
  const GuestRun virtio = run_disk(virtio_image, "hvm", "virtio", "disk-write", kSectors);
  ASSERT_EQ(status_of(ata), "ok") << describe(ata);
  ASSERT_EQ(status_of(virtio), "ok") << describe(virtio);
  const double ata_per_kib = static_cast<double>(vmm_entries(ata)) / kKib;
  const double virtio_per_kib = static_cast<double>(vmm_entries(virtio)) / kKib;
  RecordProperty("ata_entries_per_kib", std::to_string(ata_per_kib));
  RecordProperty("virtio_entries_per_kib", std::to_string(virtio_per_kib));
  std::printf("VMM entries per KiB written (hvm, %llu sectors): ata %.1f, virtio %.1f\n",
              static_cast<unsigned long long>(kSectors), ata_per_kib, virtio_per_kib);
  EXPECT_GE(ata_per_kib, 10.0 * virtio_per_kib);
}

}  // namespace
}  // namespace vmlab
