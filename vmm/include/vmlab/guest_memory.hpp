// Guest RAM: one host mapping that KVM also maps into the guest, accessed only
// through bounds-checked calls (STYLE.md 5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>

#include "vmlab/address.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

// Why guest memory refused an access or could not be made.
enum class GuestMemoryError {
  kOutOfRange = 1,  // an access not wholly inside guest RAM (or inside one region of a map)
  kInvalidSize,     // a size guest RAM cannot have: zero, or not a multiple of 2 MiB
  kMapFailed,       // the host could not map the memory (system_errno)
  kRegionOverlap,   // a region added to a physical memory map overlaps another or wraps
};
constexpr const char* error_domain(GuestMemoryError) {
  return "guest memory";
}

// The narrow interface monitor logic, loaders and device models use, so unit
// tests can hand them a plain buffer instead of a KVM-backed mapping.
class GuestMemoryAccess {
 public:
  virtual ~GuestMemoryAccess() = default;
  virtual std::uint64_t size() const = 0;
  virtual Status read(GuestPhysAddr address, std::span<std::uint8_t> out) const = 0;
  virtual Status write(GuestPhysAddr address, std::span<const std::uint8_t> in) = 0;

  bool contains(GuestPhysAddr address, std::uint64_t length) const {
    return length <= size() && address.value() <= size() - length;
  }

  template <typename T>
  Result<T> read_object(GuestPhysAddr address) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T object{};
    // Copying the object representation of a trivially copyable type through
    // unsigned char is well defined.
    auto status = read(address, std::span(reinterpret_cast<std::uint8_t*>(&object), sizeof(T)));
    if (!status) return status.error();
    return object;
  }
  template <typename T>
  Status write_object(GuestPhysAddr address, const T& object) {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(address, std::span(reinterpret_cast<const std::uint8_t*>(&object), sizeof(T)));
  }
  Status fill(GuestPhysAddr address, std::uint8_t value, std::uint64_t length);
};

// Anonymous, page-aligned host memory that backs guest RAM starting at guest
// physical address 0. Move-only owner of the mapping.
class GuestMemory final : public GuestMemoryAccess {
 public:
  static Result<GuestMemory> create(std::uint64_t size);
  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&& other) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory() override;

  std::uint64_t size() const override { return m_size; }
  Status read(GuestPhysAddr address, std::span<std::uint8_t> out) const override;
  Status write(GuestPhysAddr address, std::span<const std::uint8_t> in) override;

  // For KVM_SET_USER_MEMORY_REGION only: the host address KVM maps.
  std::uint8_t* host_base() const { return m_base; }

 private:
  GuestMemory(std::uint8_t* base, std::uint64_t size) : m_base(base), m_size(size) {}
  std::uint8_t* m_base = nullptr;
  std::uint64_t m_size = 0;
};

std::string describe_range(GuestPhysAddr address, std::uint64_t length);

// The error for an access of `length` bytes at `address` that `what` ("guest
// memory read") could not make: kOutOfRange, with the range in the message.
Error access_out_of_range(const char* what, GuestPhysAddr address, std::uint64_t length,
                          const char* where = "is outside guest RAM");

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::GuestMemoryError);
