// QEMU as the reference "real machine" (PLATFORM.md): the same guest ELF
// booted through its PVH entry under software emulation (-accel tcg), with
// the debug console and isa-debug-exit where the guest expects them.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmlab/cli_error.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

struct ReferenceRun {
  int exit_status = -1;  // QEMU's: (guest status << 1) | 1 through isa-debug-exit
  std::vector<std::string> debug_lines;
};

// Whether qemu-system-x86_64 is on PATH.
bool reference_machine_available();

enum class ReferenceDiskModel {
  Ata,     // -M pc, the image on the primary IDE channel
  Virtio,  // -M microvm with the 8259 and 8254 and no local APIC, virtio-blk-device
};

struct ReferenceDisk {
  std::string image_path;  // a raw image
  ReferenceDiskModel model = ReferenceDiskModel::Virtio;
};

// Boots `guest` (an ELF image) in QEMU with `command_line`, and `disk` as its
// disk if given; fails if QEMU is missing or cannot start
// (kReferenceUnavailable), fails before the guest says anything
// (kReferenceFailed), or runs past `timeout_seconds` (kTimeout). Under microvm there is no usable
// local APIC LINT0 for the 8259, so a virtio disk run must poll (disk-irq=0, guest/README.md).
Result<ReferenceRun> run_reference_machine(std::span<const std::uint8_t> guest,
                                           const std::string& command_line,
                                           double timeout_seconds = 60,
                                           const std::optional<ReferenceDisk>& disk = std::nullopt);

}  // namespace vmlab
