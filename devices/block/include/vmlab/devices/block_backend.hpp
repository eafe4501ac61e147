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

// Why a disk, or opening or creating its image, failed (BlockBackend,
// RawImageFile, create_raw_image, MemoryBlockBackend). New kinds go last.
enum class DiskError {
  kNotFound = 1,   // no image file at that path: create one (`vmlab disk create`)
  kCannotOpen,     // the host refused to open, inspect or lock the image file
  kInUse,          // another vmlab process holds the image's lock
  kNotAnImage,     // a directory, a device, an empty file, or not whole 512-byte sectors
  kAlreadyExists,  // create_raw_image: the file exists and overwriting was not asked for
  kBadSize,        // create_raw_image: the size is not a positive multiple of 512
  kTooLarge,       // create_raw_image: the size is over kMaximumImageSize
  kCreateFailed,   // create_raw_image: the host could not create, size or close the file
  kClosed,         // the image was closed
  kReadOnly,       // a write to a disk attached read-only
  kOutOfRange,     // a read or write past the end of the disk
  kReadFailed,     // the host's read failed, or the file shrank under the VM
  kWriteFailed,    // the host's write failed (ENOSPC: the host's disk is full)
  kFlushFailed,    // what was written may not have reached stable storage
};
constexpr const char* error_domain(DiskError) {
  return "disk";
}
using vmlab::make_error_code;  // found by argument-dependent lookup here

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

VMLAB_ERROR_KINDS(vmlab::devices::DiskError);
