// How the translator reads guest-kernel code: through the guest's own view of
// its address space (its page tables, as the virtual CPU fetches at CPL0), so
// that a block is the code the guest would execute at that address.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vmlab/address.hpp"
#include "vmlab/result.hpp"

namespace vmlab::bt {

// One guest page the bytes came from: its guest-virtual page and the
// guest-physical frame it maps to. Blocks remember the frames, so that a
// write to a frame (whatever virtual address it came through) invalidates
// them.
struct PageFrame {
  GuestVirtAddr virtual_page;
  GuestPhysAddr physical_page;
};

struct CodeBytes {
  std::vector<std::uint8_t> bytes;  // from the requested address on, as far as it is fetchable
  std::vector<PageFrame> pages;     // one per page the bytes touch, in address order
};

class CodeReader {
 public:
  virtual ~CodeReader() = default;
  // Up to `length` bytes of guest code at `address`. Stops at the first byte
  // the guest could not fetch (not present, not executable, not canonical):
  // fewer bytes, or none, is not an error; the translator turns a shortfall
  // that cuts an instruction into TranslationError::kCodeNotMapped at the
  // right address. An Error is for a failure of the VMM itself (a guest
  // page table pointing outside guest RAM, say) and is passed on unchanged.
  virtual Result<CodeBytes> read(GuestVirtAddr address, std::size_t length) = 0;
};

}  // namespace vmlab::bt
