#include "vmlab/boot.hpp"

#include <gtest/gtest.h>

namespace vmlab {
namespace {

TEST(Boot, WritesBootInfoMemoryMapAndCommandLine) {
  auto memory = GuestMemory::create(64 * MiB);
  ASSERT_TRUE(memory.ok());
  BootParameters parameters;
  parameters.command_line = "workload=hello n=1";
  parameters.devices = {{VMLAB_DEVICE_UART16550, 4, 0x3f8, 8, 0, 0}};
  parameters.reserved = {{GuestPhysAddr(32 * MiB), 2 * MiB, "test hole"}};
  ASSERT_TRUE(write_boot_structures(*memory, parameters).ok());

  auto info = memory->read_object<vmlab_boot_info>(GuestPhysAddr(VMLAB_BOOT_INFO_ADDR));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->magic, VMLAB_BOOT_MAGIC);
  EXPECT_EQ(info->version, VMLAB_BOOT_VERSION);
  EXPECT_EQ(info->size, sizeof(vmlab_boot_info));
  EXPECT_EQ(info->cmdline_length, parameters.command_line.size());
  std::string command_line(parameters.command_line.size() + 1, '?');
  ASSERT_TRUE(memory
                  ->read(GuestPhysAddr(info->cmdline_addr),
                         std::span(reinterpret_cast<std::uint8_t*>(command_line.data()),
                                   command_line.size()))
                  .ok());
  EXPECT_EQ(command_line, parameters.command_line + '\0');

  ASSERT_EQ(info->mem_region_count, 4u);
  EXPECT_EQ(info->mem_regions[0].type, VMLAB_MEM_RESERVED);
  EXPECT_EQ(info->mem_regions[0].base, 0u);
  EXPECT_EQ(info->mem_regions[0].length, 1 * MiB);
  EXPECT_EQ(info->mem_regions[1].type, VMLAB_MEM_RAM);
  EXPECT_EQ(info->mem_regions[1].base, 1 * MiB);
  EXPECT_EQ(info->mem_regions[1].length, 31 * MiB);
  EXPECT_EQ(info->mem_regions[2].type, VMLAB_MEM_RESERVED);
  EXPECT_EQ(info->mem_regions[3].base, 34 * MiB);
  EXPECT_EQ(info->mem_regions[3].length, 30 * MiB);
  ASSERT_EQ(info->device_count, 1u);
  EXPECT_EQ(info->devices[0].base, 0x3f8u);
}

TEST(Boot, IdentityMapsFirstFourGigabytesWithLargePages) {
  auto memory = GuestMemory::create(8 * MiB);
  ASSERT_TRUE(memory.ok());
  ASSERT_TRUE(write_boot_structures(*memory, {}).ok());
  auto pml4 = memory->read_object<std::uint64_t>(GuestPhysAddr(VMLAB_BOOT_PML4_ADDR));
  EXPECT_EQ(*pml4 & ~0xfffULL, VMLAB_BOOT_PDPT_ADDR);
  EXPECT_EQ(*pml4 & 3, 3u);  // present, writable
  auto pdpt3 = memory->read_object<std::uint64_t>(GuestPhysAddr(VMLAB_BOOT_PDPT_ADDR + 3 * 8));
  EXPECT_EQ(*pdpt3 & ~0xfffULL, VMLAB_BOOT_PD_ADDR + 3 * kPageSize);
  // The PD entry for 0xfee00000: directory 3, index 0x1f7.
  auto entry = memory->read_object<std::uint64_t>(
      GuestPhysAddr(VMLAB_BOOT_PD_ADDR + 3 * kPageSize + 0x1f7 * 8));
  EXPECT_EQ(*entry & ~0xfffULL, 0xfee00000u);
  EXPECT_EQ(*entry & 0x83, 0x83u);  // present, writable, 2 MiB page
  auto gdt_code = memory->read_object<std::uint64_t>(GuestPhysAddr(VMLAB_BOOT_GDT_ADDR + 8));
  EXPECT_EQ(*gdt_code, kBootGdtCode64);
}

TEST(Boot, RejectsOversizedCommandLine) {
  auto memory = GuestMemory::create(8 * MiB);
  ASSERT_TRUE(memory.ok());
  BootParameters parameters;
  parameters.command_line.assign(VMLAB_BOOT_CMDLINE_MAX, 'x');
  auto status = write_boot_structures(*memory, parameters);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, BootError::kCommandLineTooLong);
}

// Less RAM than any GuestMemory has (2 MiB): only its size is ever asked.
class OneMebibyte final : public GuestMemoryAccess {
 public:
  std::uint64_t size() const override { return 1 * MiB; }
  Status read(GuestPhysAddr, std::span<std::uint8_t>) const override { return {}; }
  Status write(GuestPhysAddr, std::span<const std::uint8_t>) override { return {}; }
};

TEST(Boot, RejectsMemoryTooSmallAndTooManyDevices) {
  OneMebibyte memory;
  auto small = write_boot_structures(memory, {});
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.error().kind, BootError::kMemoryTooSmall);

  auto enough = GuestMemory::create(8 * MiB);
  ASSERT_TRUE(enough.ok());
  BootParameters parameters;
  parameters.devices.resize(VMLAB_MAX_DEVICES + 1);
  auto crowded = write_boot_structures(*enough, parameters);
  ASSERT_FALSE(crowded.ok());
  EXPECT_EQ(crowded.error().kind, BootError::kTooManyDevices);
}

TEST(Boot, LongModeEntryState) {
  kvm_sregs special{};
  special.apic_base = 0xfee00900;
  kvm_regs registers{};
  set_long_mode_entry_state(special, registers, GuestPhysAddr(0x100040));
  EXPECT_EQ(registers.rip, 0x100040u);
  EXPECT_EQ(registers.rdi, VMLAB_BOOT_INFO_ADDR);
  EXPECT_EQ(registers.rflags & (1u << 9), 0u) << "interrupts must start disabled";
  EXPECT_EQ(special.efer & 0x501, 0x500u);    // LME and LMA; the guest sets SCE itself
  EXPECT_NE(special.cr0 & (1ULL << 31), 0u);  // paging
  EXPECT_NE(special.cr4 & (1ULL << 5), 0u);   // PAE
  EXPECT_EQ(special.cs.l, 1);
  EXPECT_EQ(special.cs.db, 0);
  EXPECT_EQ(special.cs.dpl, 0);
  EXPECT_EQ(special.apic_base, 0xfee00900u) << "fields KVM set must be kept";
}

}  // namespace
}  // namespace vmlab
