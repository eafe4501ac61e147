#include "vmlab/boot.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "vmlab/x86.hpp"

namespace vmlab {

namespace {

using page_entry::kLargePage;  // PS: a PD entry maps 2 MiB
using page_entry::kPresent;
using page_entry::kWritable;

constexpr std::uint64_t kIdentityMappedBytes = 4 * GiB;

Status write_page_tables(GuestMemoryAccess& memory) {
  std::array<std::uint64_t, 512> table{};
  table[0] = VMLAB_BOOT_PDPT_ADDR | kPresent | kWritable;
  if (auto status = memory.write_object(GuestPhysAddr(VMLAB_BOOT_PML4_ADDR), table); !status) {
    return status;
  }
  table.fill(0);
  constexpr std::uint64_t kDirectories = kIdentityMappedBytes / GiB;
  for (std::uint64_t index = 0; index < kDirectories; ++index) {
    table[index] = (VMLAB_BOOT_PD_ADDR + index * kPageSize) | kPresent | kWritable;
  }
  if (auto status = memory.write_object(GuestPhysAddr(VMLAB_BOOT_PDPT_ADDR), table); !status) {
    return status;
  }
  for (std::uint64_t directory = 0; directory < kDirectories; ++directory) {
    for (std::uint64_t index = 0; index < 512; ++index) {
      const std::uint64_t physical = (directory * 512 + index) * 2 * MiB;
      table[index] = physical | kPresent | kWritable | kLargePage;
    }
    const GuestPhysAddr where(VMLAB_BOOT_PD_ADDR + directory * kPageSize);
    if (auto status = memory.write_object(where, table); !status) return status;
  }
  return {};
}

}  // namespace

std::vector<ReservedRange> boot_reserved_ranges(const std::vector<ReservedRange>& extra) {
  std::vector<ReservedRange> ranges{
      {GuestPhysAddr(0), VMLAB_BOOT_LOW_RESERVED, "boot area below 1 MiB"}};
  ranges.insert(ranges.end(), extra.begin(), extra.end());
  return ranges;
}

Status write_boot_structures(GuestMemoryAccess& memory, const BootParameters& parameters) {
  if (memory.size() < 2 * VMLAB_BOOT_LOW_RESERVED) {
    return Error{BootError::kMemoryTooSmall,
                 "guest memory is too small to boot (need at least 2 MiB)"};
  }
  if (parameters.command_line.size() >= VMLAB_BOOT_CMDLINE_MAX) {
    return Error{BootError::kCommandLineTooLong, "guest command line is longer than " +
                                                     std::to_string(VMLAB_BOOT_CMDLINE_MAX - 1) +
                                                     " bytes"};
  }
  if (parameters.devices.size() > VMLAB_MAX_DEVICES) {
    return Error{BootError::kTooManyDevices, "too many devices for boot_info"};
  }

  const std::array<std::uint64_t, 3> gdt{0, kBootGdtCode64, kBootGdtData};
  if (auto status = memory.write_object(GuestPhysAddr(VMLAB_BOOT_GDT_ADDR), gdt); !status) {
    return status;
  }
  if (auto status = write_page_tables(memory); !status) return status;

  std::vector<std::uint8_t> command_line(parameters.command_line.begin(),
                                         parameters.command_line.end());
  command_line.push_back(0);
  if (auto status = memory.write(GuestPhysAddr(VMLAB_BOOT_CMDLINE_ADDR), command_line); !status) {
    return status;
  }

  vmlab_boot_info info{};
  info.magic = VMLAB_BOOT_MAGIC;
  info.version = VMLAB_BOOT_VERSION;
  info.size = sizeof info;
  info.cmdline_addr = VMLAB_BOOT_CMDLINE_ADDR;
  info.cmdline_length = static_cast<std::uint32_t>(parameters.command_line.size());

  // The memory map: RAM above 1 MiB, minus the reserved ranges, in order.
  auto reserved = boot_reserved_ranges(parameters.reserved);
  std::sort(reserved.begin(), reserved.end(),
            [](const ReservedRange& a, const ReservedRange& b) { return a.base < b.base; });
  std::uint64_t cursor = 0;
  auto add_region = [&](std::uint64_t base, std::uint64_t length, std::uint32_t type) -> Status {
    if (length == 0) return {};
    if (info.mem_region_count == VMLAB_MAX_MEM_REGIONS) {
      return Error{BootError::kTooManyMemoryRegions, "memory map has too many regions"};
    }
    info.mem_regions[info.mem_region_count++] = vmlab_mem_region{base, length, type, 0};
    return {};
  };
  for (const auto& range : reserved) {
    const std::uint64_t start = std::min(range.base.value(), memory.size());
    const std::uint64_t end = std::min(range.base.value() + range.size, memory.size());
    if (start > cursor) {
      if (auto status = add_region(cursor, start - cursor, VMLAB_MEM_RAM); !status) return status;
    }
    if (end > std::max(start, cursor)) {
      const std::uint64_t from = std::max(start, cursor);
      if (auto status = add_region(from, end - from, VMLAB_MEM_RESERVED); !status) return status;
    }
    cursor = std::max(cursor, end);
  }
  if (auto status = add_region(cursor, memory.size() - cursor, VMLAB_MEM_RAM); !status) {
    return status;
  }

  info.paravirtual_abi = parameters.paravirtual_abi;
  info.tsc_khz = parameters.tsc_khz;
  info.device_count = static_cast<std::uint32_t>(parameters.devices.size());
  std::copy(parameters.devices.begin(), parameters.devices.end(), info.devices);
  return memory.write_object(GuestPhysAddr(VMLAB_BOOT_INFO_ADDR), info);
}

void set_long_mode_entry_state(kvm_sregs& special, kvm_regs& registers, GuestPhysAddr entry) {
  // Intel SDM vol. 3, 9.8.5 "Initializing IA-32e Mode": PAE, LME, then PG.

  kvm_segment code{};
  code.base = 0;
  code.limit = 0xffffffff;
  code.selector = kBootCodeSelector;
  code.type = 0xb;  // execute/read, accessed
  code.present = 1;
  code.dpl = 0;
  code.db = 0;  // must be 0 when L=1
  code.s = 1;
  code.l = 1;
  code.g = 1;
  kvm_segment data = code;
  data.selector = kBootDataSelector;
  data.type = 0x3;  // read/write, accessed
  data.db = 1;
  data.l = 0;

  special.cs = code;
  special.ds = special.es = special.fs = special.gs = special.ss = data;
  special.gdt.base = VMLAB_BOOT_GDT_ADDR;
  special.gdt.limit = 3 * 8 - 1;
  special.cr3 = VMLAB_BOOT_PML4_ADDR;
  special.cr4 = kCr4PhysicalAddressExtension;
  special.cr0 = kCr0ProtectionEnable | kCr0MonitorCoprocessor | kCr0ExtensionType |
                kCr0NumericError | kCr0WriteProtect | kCr0Paging;
  special.efer = kEferLongModeEnable | kEferLongModeActive;

  registers = kvm_regs{};
  registers.rip = entry.value();
  registers.rdi = VMLAB_BOOT_INFO_ADDR;
  registers.rsp = VMLAB_BOOT_STACK_TOP;
  registers.rflags = 0x2;  // bit 1 is reserved and reads as 1; IF clear
}

}  // namespace vmlab
