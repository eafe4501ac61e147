// Guest RAM for the passthrough tests: a vector that a device thread and the
// test thread share.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <span>
#include <system_error>
#include <vector>

#include <vmlab/guest_memory.hpp>

namespace vmlab::devices::testing {

// Guest RAM as a vector. The device thread writes it while the test thread
// reads it, so a mutex makes each access whole, as the guest's loads and
// stores of a naturally aligned field are.
class VectorMemory final : public GuestMemoryAccess {
 public:
  explicit VectorMemory(std::uint64_t size) : m_bytes(size) {}

  std::uint64_t size() const override { return m_bytes.size(); }
  Status read(GuestPhysAddr address, std::span<std::uint8_t> out) const override {
    if (!contains(address, out.size())) return outside("read outside the test memory");
    if (out.empty()) return {};  // memcpy wants valid pointers even for 0 bytes
    std::lock_guard lock(m_mutex);
    std::memcpy(out.data(), m_bytes.data() + address.value(), out.size());
    return {};
  }
  Status write(GuestPhysAddr address, std::span<const std::uint8_t> in) override {
    if (!contains(address, in.size())) return outside("write outside the test memory");
    if (in.empty()) return {};
    std::lock_guard lock(m_mutex);
    std::memcpy(m_bytes.data() + address.value(), in.data(), in.size());
    return {};
  }

  std::vector<std::uint8_t> bytes(std::uint64_t address, std::uint64_t length) const {
    std::vector<std::uint8_t> copy(length);
    EXPECT_TRUE(read(GuestPhysAddr(address), copy));
    return copy;
  }
  void fill_pattern(std::uint64_t address, std::uint64_t length, std::uint8_t seed) {
    std::vector<std::uint8_t> pattern(length);
    for (std::size_t index = 0; index < pattern.size(); ++index) {
      pattern[index] = static_cast<std::uint8_t>(seed + index * 7);
    }
    ASSERT_TRUE(write(GuestPhysAddr(address), pattern));
  }

 private:
  // EFAULT's kind: the fake has none of its own.
  static Error outside(const char* what) {
    return Error{std::make_error_code(std::errc::bad_address), what};
  }

  mutable std::mutex m_mutex;
  std::vector<std::uint8_t> m_bytes;
};

}  // namespace vmlab::devices::testing
