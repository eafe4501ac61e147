// A disk held in memory, for unit tests of the disk models: the contents can
// be inspected directly, and host I/O errors can be injected.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <vmlab/devices/block_backend.hpp>
#include <vmlab/result.hpp>

namespace vmlab::devices {

class MemoryBlockBackend final : public BlockBackend {
 public:
  explicit MemoryBlockBackend(std::uint64_t sector_count, DiskAccess access = DiskAccess::ReadWrite,
                              std::string serial = "vmlab-memory-disk");

  std::uint64_t size_bytes() const override { return m_contents.size(); }
  bool read_only() const override { return m_access == DiskAccess::ReadOnly; }
  std::string serial() const override { return m_serial; }
  Status read(std::uint64_t offset, std::span<std::uint8_t> out) override;
  Status write(std::uint64_t offset, std::span<const std::uint8_t> in) override;
  Status flush() override;

  // The disk's bytes, to fill before a test and check after it. Writing here
  // bypasses the read-only flag and the injected failures.
  std::span<std::uint8_t> contents() { return m_contents; }
  std::span<const std::uint8_t> contents() const { return m_contents; }
  std::span<std::uint8_t> sector(std::uint64_t index);

  // Injected host failures: every read, write or flush fails while its flag
  // is set, and a read or write touching `failing_sector` fails too. A failed
  // operation transfers nothing.
  void fail_reads(bool fail) { m_fail_reads = fail; }
  void fail_writes(bool fail) { m_fail_writes = fail; }
  void fail_flushes(bool fail) { m_fail_flushes = fail; }
  void fail_sector(std::optional<std::uint64_t> sector) { m_failing_sector = sector; }

  std::uint64_t reads() const { return m_reads; }
  std::uint64_t writes() const { return m_writes; }
  std::uint64_t flushes() const { return m_flushes; }
  std::uint64_t bytes_read() const { return m_bytes_read; }
  std::uint64_t bytes_written() const { return m_bytes_written; }

 private:
  // kOutOfRange, or `failure` when an injected failure applies.
  Status check(const char* operation, std::uint64_t offset, std::size_t length,
               bool injected_failure, DiskError failure) const;

  std::vector<std::uint8_t> m_contents;
  DiskAccess m_access;
  std::string m_serial;

  bool m_fail_reads = false;
  bool m_fail_writes = false;
  bool m_fail_flushes = false;
  std::optional<std::uint64_t> m_failing_sector;

  std::uint64_t m_reads = 0;
  std::uint64_t m_writes = 0;
  std::uint64_t m_flushes = 0;
  std::uint64_t m_bytes_read = 0;
  std::uint64_t m_bytes_written = 0;
};

}  // namespace vmlab::devices
