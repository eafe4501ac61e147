// ELF64 loader for the guest kernel: validates every header field it relies on
// before touching guest memory, so a malformed image is a clear error, never a
// host fault or a half-loaded guest.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmlab/address.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

// Why a guest image was refused. Each message names the header or segment.
enum class ElfError {
  kUnreadable = 1,    // the file could not be opened or read (system_errno)
  kTruncated,         // the file ends before data its headers describe
  kNotElf,            // no ELF magic number
  kUnsupported,       // an ELF vmlab does not run: not little-endian x86-64 ET_EXEC, PN_XNUM
  kMalformed,         // headers that contradict themselves or the boot protocol
  kOutsideRam,        // a segment lies beyond guest RAM: raise --mem or relink
  kOverlapsReserved,  // a segment lands on a range the VMM keeps for itself
};
constexpr const char* error_domain(ElfError) {
  return "elf";
}

struct ReservedRange {
  GuestPhysAddr base;
  std::uint64_t size = 0;
  std::string purpose;  // named in the error when a segment lands on it
};

struct LoadedSegment {
  GuestPhysAddr base;
  std::uint64_t file_size = 0;
  std::uint64_t memory_size = 0;
  bool executable = false;
  bool writable = false;
};

struct LoadedImage {
  GuestPhysAddr entry;
  std::vector<LoadedSegment> segments;
  GuestPhysAddr lowest;   // first byte of the lowest segment
  GuestPhysAddr highest;  // one past the last byte of the highest segment
};

// Checks the image without loading it.
Result<LoadedImage> inspect_elf(std::span<const std::uint8_t> image, std::uint64_t ram_size,
                                std::span<const ReservedRange> reserved);

// Checks, then copies each PT_LOAD segment to its physical address and zeroes
// its BSS. On error guest memory is untouched.
Result<LoadedImage> load_elf(std::span<const std::uint8_t> image, GuestMemoryAccess& memory,
                             std::span<const ReservedRange> reserved);

Result<std::vector<std::uint8_t>> read_file(const std::string& path);

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::ElfError);
