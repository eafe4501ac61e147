// Guest RAM in a plain buffer (a GuestMemoryAccess), with direct access for
// setting up and checking: the fake memory of the para monitor's tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <system_error>
#include <type_traits>
#include <vector>

#include "vmlab/guest_memory.hpp"

namespace vmlab::para::testing {

constexpr std::uint64_t slot_address(std::uint64_t table, unsigned index) {
  return table + std::uint64_t{index} * 8;
}

class VectorGuestMemory final : public GuestMemoryAccess {
 public:
  explicit VectorGuestMemory(std::uint64_t size) : m_bytes(size, 0) {}

  std::uint64_t size() const override { return m_bytes.size(); }
  Status read(GuestPhysAddr address, std::span<std::uint8_t> out) const override {
    if (!contains(address, out.size())) {
      return Error{std::make_error_code(std::errc::bad_address),  // EFAULT
                   "read outside guest memory: " + describe_range(address, out.size())};
    }
    if (!out.empty()) std::memcpy(out.data(), m_bytes.data() + address.value(), out.size());
    return {};
  }
  Status write(GuestPhysAddr address, std::span<const std::uint8_t> in) override {
    if (!contains(address, in.size())) {
      return Error{std::make_error_code(std::errc::bad_address),  // EFAULT
                   "write outside guest memory: " + describe_range(address, in.size())};
    }
    if (!in.empty()) std::memcpy(m_bytes.data() + address.value(), in.data(), in.size());
    return {};
  }

  // One 8-byte page-table entry.
  std::uint64_t get(std::uint64_t address) const { return get_object<std::uint64_t>(address); }
  void put(std::uint64_t address, std::uint64_t value) { put_object(address, value); }

  template <typename T>
  T get_object(std::uint64_t address) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T object{};
    std::memcpy(&object, m_bytes.data() + address, sizeof object);
    return object;
  }
  template <typename T>
  void put_object(std::uint64_t address, const T& object) {
    static_assert(std::is_trivially_copyable_v<T>);
    std::memcpy(m_bytes.data() + address, &object, sizeof object);
  }
  std::uint8_t get_u8(std::uint64_t address) const { return m_bytes.at(address); }
  void fill(std::uint64_t address, std::uint8_t value, std::uint64_t length) {
    std::memset(m_bytes.data() + address, value, length);
  }

 private:
  std::vector<std::uint8_t> m_bytes;
};

}  // namespace vmlab::para::testing
