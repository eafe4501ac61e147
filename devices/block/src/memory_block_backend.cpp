#include <vmlab/devices/memory_block_backend.hpp>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace vmlab::devices {

MemoryBlockBackend::MemoryBlockBackend(std::uint64_t sector_count, DiskAccess access,
                                       std::string serial)
    : m_contents(sector_count * kSectorSize), m_access(access), m_serial(std::move(serial)) {}

std::span<std::uint8_t> MemoryBlockBackend::sector(std::uint64_t index) {
  return std::span<std::uint8_t>(m_contents).subspan(index * kSectorSize, kSectorSize);
}

Status MemoryBlockBackend::check(const char* operation, std::uint64_t offset, std::size_t length,
                                 bool injected_failure, DiskError failure) const {
  if (offset > m_contents.size() || length > m_contents.size() - offset) {
    return Error{DiskError::kOutOfRange,
                 std::string(operation) + " of " + std::to_string(length) + " bytes at offset " +
                     std::to_string(offset) + " is past the end of the " +
                     std::to_string(m_contents.size()) + "-byte memory disk"};
  }
  const bool touches_failing_sector = m_failing_sector && length > 0 &&
                                      *m_failing_sector >= offset / kSectorSize &&
                                      *m_failing_sector <= (offset + length - 1) / kSectorSize;
  if (injected_failure || touches_failing_sector) {
    return Error{
        failure,
        std::string("injected ") + operation + " failure at offset " + std::to_string(offset), EIO};
  }
  return {};
}

Status MemoryBlockBackend::read(std::uint64_t offset, std::span<std::uint8_t> out) {
  auto valid = check("read", offset, out.size(), m_fail_reads, DiskError::kReadFailed);
  if (!valid) return valid;
  std::copy_n(m_contents.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
  ++m_reads;
  m_bytes_read += out.size();
  return {};
}

Status MemoryBlockBackend::write(std::uint64_t offset, std::span<const std::uint8_t> in) {
  if (read_only()) {
    return Error{DiskError::kReadOnly, "the memory disk is read-only; writes are refused"};
  }
  auto valid = check("write", offset, in.size(), m_fail_writes, DiskError::kWriteFailed);
  if (!valid) return valid;
  std::copy(in.begin(), in.end(), m_contents.begin() + static_cast<std::ptrdiff_t>(offset));
  ++m_writes;
  m_bytes_written += in.size();
  return {};
}

Status MemoryBlockBackend::flush() {
  if (m_fail_flushes) return Error{DiskError::kFlushFailed, "injected flush failure", EIO};
  ++m_flushes;
  return {};
}

}  // namespace vmlab::devices
