// A GuestVirtualMemory for unit tests: a flat, identity-mapped byte buffer
// starting at guest-virtual 0, with pages that can be made unmapped,
// read-only or supervisor-only to produce the page faults the guest's own
// tables would (Intel SDM vol. 3A, 4.7, for the error code).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <vector>

#include "vmlab/little_endian.hpp"
#include "vmlab/monitor/guest_context.hpp"

namespace vmlab::monitor::fakes {

class FakeGuestMemory final : public GuestVirtualMemory {
 public:
  static constexpr std::uint64_t kPageSize = 4096;

  explicit FakeGuestMemory(std::uint64_t size = 1 << 20) : m_bytes(size, 0) {}

  void unmap_page(std::uint64_t address) { m_unmapped.insert(page_of(address)); }
  void make_read_only(std::uint64_t address) { m_read_only.insert(page_of(address)); }
  void make_supervisor_only(std::uint64_t address) { m_supervisor_only.insert(page_of(address)); }

  // Direct access for setting up and checking, bypassing every protection.
  void put_bytes(std::uint64_t address, std::span<const std::uint8_t> bytes) {
    std::memcpy(m_bytes.data() + address, bytes.data(), bytes.size());
  }
  void put_bytes(std::uint64_t address, std::initializer_list<std::uint8_t> bytes) {
    put_bytes(address, std::span(bytes.begin(), bytes.size()));
  }
  void put_u16(std::uint64_t address, std::uint16_t value) { put_le(address, value, 2); }
  void put_u32(std::uint64_t address, std::uint32_t value) { put_le(address, value, 4); }
  void put_u64(std::uint64_t address, std::uint64_t value) { put_le(address, value, 8); }
  std::uint8_t get_u8(std::uint64_t address) const { return m_bytes.at(address); }
  std::uint16_t get_u16(std::uint64_t address) const {
    return static_cast<std::uint16_t>(get_le(address, 2));
  }
  std::uint64_t get_u64(std::uint64_t address) const { return get_le(address, 8); }
  std::uint64_t size() const { return m_bytes.size(); }

  std::size_t write_count() const { return m_write_count; }

  std::optional<Fault> read(GuestVirtAddr address, std::span<std::uint8_t> out,
                            AccessPrivilege privilege) override {
    if (auto fault = check(address.value(), out.size(), privilege, Access::Read)) return fault;
    std::memcpy(out.data(), m_bytes.data() + address.value(), out.size());
    return std::nullopt;
  }

  std::optional<Fault> write(GuestVirtAddr address, std::span<const std::uint8_t> in,
                             AccessPrivilege privilege) override {
    if (auto fault = check(address.value(), in.size(), privilege, Access::Write)) return fault;
    std::memcpy(m_bytes.data() + address.value(), in.data(), in.size());
    ++m_write_count;
    return std::nullopt;
  }

  std::optional<Fault> fetch(GuestVirtAddr address, std::span<std::uint8_t> out,
                             AccessPrivilege privilege) override {
    if (auto fault = check(address.value(), out.size(), privilege, Access::Fetch)) return fault;
    std::memcpy(out.data(), m_bytes.data() + address.value(), out.size());
    return std::nullopt;
  }

 private:
  enum class Access { Read, Write, Fetch };

  static std::uint64_t page_of(std::uint64_t address) { return address & ~(kPageSize - 1); }

  // The first page of [address, address + length) the access may not touch
  // gives the fault; its address is the first byte on that page.
  std::optional<Fault> check(std::uint64_t address, std::size_t length, AccessPrivilege privilege,
                             Access access) const {
    if (length == 0) return std::nullopt;
    const bool user = privilege == AccessPrivilege::User;
    std::uint32_t code = 0;
    if (access == Access::Write) code |= kPageFaultWrite;
    if (access == Access::Fetch) code |= kPageFaultFetch;
    if (user) code |= kPageFaultUser;
    const std::uint64_t last = address + (length - 1);
    if (last < address) return Fault{GuestVirtAddr(address), code};  // wraps around
    for (std::uint64_t page = page_of(address);; page += kPageSize) {
      const std::uint64_t first_byte = page < address ? address : page;
      if (page >= m_bytes.size() || m_unmapped.count(page) != 0) {
        return Fault{GuestVirtAddr(first_byte), code};
      }
      const bool denied = (user && m_supervisor_only.count(page) != 0) ||
                          (access == Access::Write && m_read_only.count(page) != 0);
      if (denied) return Fault{GuestVirtAddr(first_byte), code | kPageFaultPresent};
      if (page >= page_of(last)) break;
    }
    if (last >= m_bytes.size()) return Fault{GuestVirtAddr(m_bytes.size()), code};
    return std::nullopt;
  }

  void put_le(std::uint64_t address, std::uint64_t value, unsigned size) {
    check_range(address, size);
    store_little_endian(std::span(m_bytes).subspan(address, size), value);
  }
  std::uint64_t get_le(std::uint64_t address, unsigned size) const {
    check_range(address, size);
    return load_little_endian(std::span(m_bytes).subspan(address, size));
  }
  // Setting up outside the buffer is a broken test: throw, as vector::at does.
  void check_range(std::uint64_t address, unsigned size) const {
    if (address > m_bytes.size() || size > m_bytes.size() - address) {
      throw std::out_of_range("outside the fake guest memory");
    }
  }

  std::vector<std::uint8_t> m_bytes;
  std::set<std::uint64_t> m_unmapped;
  std::set<std::uint64_t> m_read_only;
  std::set<std::uint64_t> m_supervisor_only;
  std::size_t m_write_count = 0;
};

// The vmlab guest's GDT (guest/kernel/cpu.c): null, kernel code 0x08, kernel
// data 0x10, user data 0x18 (0x1b), user code 0x20 (0x23), and an available
// 64-bit TSS at 0x28 (Intel SDM vol. 3A, 8.2.3). Returns the GDT limit.
constexpr std::uint16_t kKernelCodeSelector = 0x08;
constexpr std::uint16_t kKernelDataSelector = 0x10;
constexpr std::uint16_t kUserDataSelector = 0x1b;
constexpr std::uint16_t kUserCodeSelector = 0x23;
constexpr std::uint16_t kTssSelector = 0x28;
constexpr std::uint32_t kTssLimit = 103;

inline std::uint16_t install_vmlab_gdt(FakeGuestMemory& memory, std::uint64_t gdt_base,
                                       std::uint64_t tss_base) {
  memory.put_u64(gdt_base + 0x00, 0);
  memory.put_u64(gdt_base + 0x08, 0x00af9a000000ffffull);
  memory.put_u64(gdt_base + 0x10, 0x00cf92000000ffffull);
  memory.put_u64(gdt_base + 0x18, 0x00cff2000000ffffull);
  memory.put_u64(gdt_base + 0x20, 0x00affa000000ffffull);
  memory.put_u64(gdt_base + 0x28, (kTssLimit & 0xffff) | ((tss_base & 0xffffff) << 16) |
                                      (0x89ull << 40) | (((tss_base >> 24) & 0xff) << 56));
  memory.put_u64(gdt_base + 0x30, tss_base >> 32);
  return 7 * 8 - 1;
}

}  // namespace vmlab::monitor::fakes
