// Builds a guest's 4-level page tables in guest memory for the page walker and
// shadow pager tests, the way a guest kernel would: plain stores into frames
// handed out by a bump allocator (SDM vol. 3A, 4.5).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "entry_bits.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/monitor/page_walker.hpp"

namespace vmlab::monitor::testing {

class GuestPageTables {
 public:
  GuestPageTables(GuestMemoryAccess& memory, std::uint64_t first_frame)
      : m_memory(memory), m_next_frame(first_frame) {
    m_root = allocate();
  }

  std::uint64_t root() const { return m_root; }
  void set_root(std::uint64_t root) { m_root = root; }

  // A zeroed frame.
  std::uint64_t allocate() {
    const std::uint64_t frame = m_next_frame;
    m_next_frame += kPageSize;
    EXPECT_TRUE(m_memory.fill(GuestPhysAddr(frame), 0, kPageSize).ok());
    return frame;
  }

  // Where the entry that maps `address` at `level` lives, creating missing
  // tables above it with `table_flags`.
  GuestPhysAddr entry_address(GuestVirtAddr address, unsigned level,
                              std::uint64_t table_flags = kTableFlags) {
    std::uint64_t table = m_root;
    for (unsigned current = 4; current > level; --current) {
      const GuestPhysAddr slot(table + table_index(address, current) * 8);
      std::uint64_t value = read(slot);
      if ((value & page_entry::kPresent) == 0) {
        value = allocate() | table_flags;
        write(slot, value);
      }
      table = value & page_entry::kAddressMask;
    }
    return GuestPhysAddr(table + table_index(address, level) * 8);
  }

  // Maps the page of `address` at `level` (1: 4 KiB, 2: 2 MiB, 3: 1 GiB).
  GuestPhysAddr map(GuestVirtAddr address, std::uint64_t frame, std::uint64_t flags,
                    unsigned level = 1, std::uint64_t table_flags = kTableFlags) {
    const GuestPhysAddr slot = entry_address(address, level, table_flags);
    const std::uint64_t large = level > 1 ? page_entry::kLargePage : 0;
    write(slot, frame | flags | large);
    return slot;
  }

  std::uint64_t get(GuestVirtAddr address, unsigned level) {
    return read(entry_address(address, level));
  }
  void set(GuestVirtAddr address, unsigned level, std::uint64_t value) {
    write(entry_address(address, level), value);
  }

  std::uint64_t read(GuestPhysAddr address) const {
    auto value = m_memory.read_object<std::uint64_t>(address);
    EXPECT_TRUE(value.ok());
    return value.ok() ? *value : 0;
  }
  void write(GuestPhysAddr address, std::uint64_t value) {
    EXPECT_TRUE(m_memory.write_object(address, value).ok());
  }

 private:
  GuestMemoryAccess& m_memory;
  std::uint64_t m_next_frame;
  std::uint64_t m_root = 0;
};

}  // namespace vmlab::monitor::testing
