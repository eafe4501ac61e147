// The vmlab boot protocol (DESIGN.md section 3): the VMM enters 64-bit long
// mode itself (PLATFORM.md: a guest cannot set EFER.LME here), the way
// Firecracker and kvmtool start a 64-bit kernel.
#pragma once

#include <linux/kvm.h>

#include <string>
#include <vector>

#include "vmlab/abi/boot_info.hpp"
#include "vmlab/address.hpp"
#include "vmlab/elf_loader.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

// Why the boot structures could not be written.
enum class BootError {
  kMemoryTooSmall = 1,    // guest RAM cannot hold the boot area and a kernel
  kCommandLineTooLong,    // the guest command line does not fit its page
  kTooManyDevices,        // more devices than boot_info's table holds
  kTooManyMemoryRegions,  // the reserved ranges split RAM into more regions than boot_info holds
};
constexpr const char* error_domain(BootError) {
  return "boot";
}

struct BootParameters {
  std::string command_line;
  std::vector<vmlab_device> devices;
  // Guest-physical ranges inside RAM the guest must not use (beyond the low
  // boot area, which is always reserved).
  std::vector<ReservedRange> reserved;
  // boot_info.paravirtual_abi: nonzero only for a paravirtualized start.
  std::uint32_t paravirtual_abi = 0;
  // boot_info.tsc_khz: the guest's TSC rate, 0 if unknown.
  std::uint32_t tsc_khz = 0;
};

// What the loader must keep clear: the low boot area and `extra`.
std::vector<ReservedRange> boot_reserved_ranges(const std::vector<ReservedRange>& extra = {});

// Writes the boot GDT, the identity page tables, boot_info and the command
// line into guest memory.
Status write_boot_structures(GuestMemoryAccess& memory, const BootParameters& parameters);

// The vCPU state at the vmlab entry: long mode, CPL0, paging on, RDI =
// boot_info. `special` is updated in place so fields KVM set at vCPU creation
// (APIC base, etc.) are kept.
void set_long_mode_entry_state(kvm_sregs& special, kvm_regs& registers, GuestPhysAddr entry);

// Segment descriptors of the boot GDT (Intel SDM vol. 3, 3.4.5 and 5.2.1).
constexpr std::uint64_t kBootGdtCode64 = 0x00af9a000000ffffULL;  // L=1, DPL0, execute/read
constexpr std::uint64_t kBootGdtData = 0x00cf92000000ffffULL;    // DPL0, read/write
constexpr std::uint16_t kBootCodeSelector = 0x08;
constexpr std::uint16_t kBootDataSelector = 0x10;

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::BootError);
