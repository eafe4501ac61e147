// A disk backed by a raw image file on the host (DESIGN.md 6, "Disk backing"):
// byte n of the file is byte n of the disk, with no header and no format.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <vmlab/devices/block_backend.hpp>
#include <vmlab/file_descriptor.hpp>
#include <vmlab/result.hpp>

namespace vmlab::devices {

// The largest image create_raw_image makes, a bound that catches a mistyped
// unit (2T for 2G) before the host's disk fills up.
constexpr std::uint64_t kMaximumImageSize = std::uint64_t{1} << 40;

// Any regular file whose size is a whole, non-zero number of 512-byte sectors
// is a raw image. Opening one takes an advisory flock(2) on it, exclusive for
// read-write and shared for read-only, so two vmlab processes never write the
// same image and none reads it while another writes.
//
// Not thread-safe: one caller at a time (the board's device lock, or the one
// device thread that owns the disk).
class RawImageFile final : public BlockBackend {
 public:
  static Result<std::unique_ptr<RawImageFile>> open(const std::string& path, DiskAccess access);

  RawImageFile(const RawImageFile&) = delete;
  RawImageFile& operator=(const RawImageFile&) = delete;
  RawImageFile(RawImageFile&&) = delete;
  RawImageFile& operator=(RawImageFile&&) = delete;
  // Flushes what was written (the shutdown flush) and closes the file. A
  // flush that fails here cannot be reported; call close() first to see it.
  ~RawImageFile() override;

  std::uint64_t size_bytes() const override { return m_size_bytes; }
  bool read_only() const override { return m_access == DiskAccess::ReadOnly; }
  std::string serial() const override { return m_serial; }
  Status read(std::uint64_t offset, std::span<std::uint8_t> out) override;
  Status write(std::uint64_t offset, std::span<const std::uint8_t> in) override;
  // fdatasync(2): the data and the metadata needed to read it back.
  Status flush() override;

  // The shutdown flush and the close(2), reported (kFlushFailed); later
  // reads, writes and flushes fail with kClosed.
  Status close();

  const std::string& path() const { return m_path; }
  std::uint64_t bytes_read() const { return m_bytes_read; }
  std::uint64_t bytes_written() const { return m_bytes_written; }
  std::uint64_t flushes() const { return m_flushes; }

 private:
  RawImageFile(FileDescriptor descriptor, std::string path, std::uint64_t size_bytes,
               DiskAccess access);

  Status check_range(std::string_view operation, std::uint64_t offset, std::size_t length) const;
  Status check_open() const;

  FileDescriptor m_descriptor;
  std::string m_path;
  std::uint64_t m_size_bytes;
  DiskAccess m_access;
  std::string m_serial;
  bool m_written_since_flush = false;

  std::uint64_t m_bytes_read = 0;
  std::uint64_t m_bytes_written = 0;
  std::uint64_t m_flushes = 0;
};

// Creates a sparse, zero-filled raw image of `size_bytes` (a positive multiple
// of 512, at most kMaximumImageSize). An existing file is replaced only when
// `overwrite` is set, and never while a running VM holds its lock.
Status create_raw_image(const std::string& path, std::uint64_t size_bytes, bool overwrite);

// The serial number of an image: its file name cut to the 20 printable ASCII
// bytes an ATA IDENTIFY serial or a virtio-blk ID holds.
std::string serial_from_path(std::string_view path);

}  // namespace vmlab::devices
