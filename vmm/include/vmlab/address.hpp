// Distinct types for the address spaces a VMM juggles (STYLE.md 5), so that a
// guest-physical address cannot be passed where a port or a host pointer is
// expected. Conversions are explicit.
#pragma once

#include <compare>
#include <cstdint>

namespace vmlab {

template <typename Tag>
class TypedAddress {
 public:
  constexpr TypedAddress() = default;
  constexpr explicit TypedAddress(std::uint64_t value) : m_value(value) {}

  constexpr std::uint64_t value() const { return m_value; }
  constexpr TypedAddress operator+(std::uint64_t offset) const {
    return TypedAddress(m_value + offset);
  }
  constexpr std::uint64_t operator-(TypedAddress other) const { return m_value - other.m_value; }
  // clang-tidy 14 misreads a defaulted <=> as a literal 0 pointer.
  constexpr auto operator<=>(const TypedAddress&) const = default;  // NOLINT(modernize-use-nullptr)

 private:
  std::uint64_t m_value = 0;
};

struct GuestPhysTag {};
struct GuestVirtTag {};
using GuestPhysAddr = TypedAddress<GuestPhysTag>;
using GuestVirtAddr = TypedAddress<GuestVirtTag>;

class IoPort {
 public:
  constexpr IoPort() = default;
  constexpr explicit IoPort(std::uint16_t value) : m_value(value) {}
  constexpr std::uint16_t value() const { return m_value; }
  constexpr auto operator<=>(const IoPort&) const = default;  // NOLINT(modernize-use-nullptr)

 private:
  std::uint16_t m_value = 0;
};

constexpr std::uint64_t kPageSize = 4096;
constexpr std::uint64_t KiB = 1024;
constexpr std::uint64_t MiB = 1024 * KiB;
constexpr std::uint64_t GiB = 1024 * MiB;

}  // namespace vmlab
