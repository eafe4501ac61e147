// QEMU as the reference "real machine" (PLATFORM.md): the same guest ELF
// booted through its PVH entry under software emulation (-accel tcg), with
// the debug console and isa-debug-exit where the guest expects them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmlab/result.hpp"

namespace vmlab {

struct ReferenceRun {
  int exit_status = -1;  // QEMU's: (guest status << 1) | 1 through isa-debug-exit
  std::vector<std::string> debug_lines;
};

// Whether qemu-system-x86_64 is on PATH.
bool reference_machine_available();

// Boots `guest` (an ELF image) in QEMU with `command_line`; fails if QEMU is
// missing, cannot start, or runs past `timeout_seconds`.
Result<ReferenceRun> run_reference_machine(std::span<const std::uint8_t> guest,
                                           const std::string& command_line,
                                           double timeout_seconds = 60);

}  // namespace vmlab
