// What a disk model (ATA, virtio-blk, the passthrough controller) reads and
// writes: a byte-addressed store in 512-byte sectors. The models are the same
// code over a raw image file (RawImageFile) or, in unit tests, a buffer.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "vmlab/result.hpp"

namespace vmlab::devices {

constexpr std::uint64_t kSectorSize = 512;

// How a disk is attached: the guest may write it, or every write is refused.
enum class DiskAccess { ReadWrite, ReadOnly };

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;
  virtual std::uint64_t size_bytes() const = 0;
  std::uint64_t sector_count() const { return size_bytes() / kSectorSize; }
  virtual bool read_only() const = 0;
  // Up to 20 printable ASCII bytes that name this disk (virtio-blk GET_ID,
  // ATA IDENTIFY serial number).
  virtual std::string serial() const = 0;
  // A range past the end, or a write to a read-only backend, is an Error,
  // never a partial transfer or a host fault.
  virtual Status read(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
  virtual Status write(std::uint64_t offset, std::span<const std::uint8_t> in) = 0;
  // Everything written so far reaches stable storage.
  virtual Status flush() = 0;
};

}  // namespace vmlab::devices
