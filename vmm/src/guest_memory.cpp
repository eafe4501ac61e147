#include "vmlab/guest_memory.hpp"

#include <sys/mman.h>

#include <cstdio>
#include <utility>
#include <vector>

namespace vmlab {

std::string describe_range(GuestPhysAddr address, std::uint64_t length) {
  char text[64];
  std::snprintf(text, sizeof text, "[%#llx, %#llx)",
                static_cast<unsigned long long>(address.value()),
                static_cast<unsigned long long>(address.value()) + length);
  return text;
}

Error access_out_of_range(const char* what, GuestPhysAddr address, std::uint64_t length,
                          const char* where) {
  return Error{GuestMemoryError::kOutOfRange,
               std::string(what) + " " + describe_range(address, length) + " " + where};
}

Status GuestMemoryAccess::fill(GuestPhysAddr address, std::uint8_t value, std::uint64_t length) {
  if (!contains(address, length)) return access_out_of_range("guest memory fill", address, length);
  std::vector<std::uint8_t> chunk(std::min<std::uint64_t>(length, 64 * KiB), value);
  for (std::uint64_t done = 0; done < length;) {
    auto part = std::min<std::uint64_t>(chunk.size(), length - done);
    auto status = write(address + done, std::span(chunk.data(), part));
    if (!status) return status;
    done += part;
  }
  return {};
}

Result<GuestMemory> GuestMemory::create(std::uint64_t size) {
  if (size == 0 || size % (2 * MiB) != 0) {
    return Error{GuestMemoryError::kInvalidSize,
                 "guest memory size must be a non-zero multiple of 2 MiB"};
  }
  // MAP_NORESERVE: a large guest only costs the pages it touches.
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    return Error::from_errno(GuestMemoryError::kMapFailed, "mmap of guest memory", errno);
  }
  return GuestMemory(static_cast<std::uint8_t*>(base), size);
}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : m_base(std::exchange(other.m_base, nullptr)), m_size(std::exchange(other.m_size, 0)) {}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
  if (this != &other) {
    if (m_base != nullptr) munmap(m_base, m_size);
    m_base = std::exchange(other.m_base, nullptr);
    m_size = std::exchange(other.m_size, 0);
  }
  return *this;
}

GuestMemory::~GuestMemory() {
  if (m_base != nullptr) munmap(m_base, m_size);
}

Status GuestMemory::read(GuestPhysAddr address, std::span<std::uint8_t> out) const {
  if (!contains(address, out.size()))
    return access_out_of_range("guest memory read", address, out.size());
  // The guest may be writing the same bytes concurrently; a torn read is what
  // real hardware would give a DMA engine too, and memcpy on plain bytes is safe.
  std::memcpy(out.data(), m_base + address.value(), out.size());
  return {};
}

Status GuestMemory::write(GuestPhysAddr address, std::span<const std::uint8_t> in) {
  if (!contains(address, in.size()))
    return access_out_of_range("guest memory write", address, in.size());
  std::memcpy(m_base + address.value(), in.data(), in.size());
  return {};
}

}  // namespace vmlab
