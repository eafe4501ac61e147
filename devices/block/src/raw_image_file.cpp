#include <vmlab/devices/raw_image_file.hpp>
#include <vmlab/format.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <utility>

#include <vmlab/file_descriptor.hpp>

namespace vmlab::devices {
namespace {

constexpr std::size_t kSerialLength = 20;

int open_retrying(const char* path, int flags, mode_t mode = 0) {
  int descriptor;
  do {
    descriptor = ::open(path, flags, mode);
  } while (descriptor < 0 && errno == EINTR);
  return descriptor;
}

int flock_retrying(int descriptor, int operation) {
  int result;
  do {
    result = ::flock(descriptor, operation);
  } while (result < 0 && errno == EINTR);
  return result;
}

std::string lock_conflict_message(const std::string& path, DiskAccess access) {
  std::string message = "disk image " + single_quoted(path) +
                        " is in use by another vmlab process (it holds a lock on the image); ";
  if (access == DiskAccess::ReadWrite) {
    return message + "stop that VM first, or give each VM its own copy of the image";
  }
  return message + "that VM attached it read-write, so stop it first";
}

Error is_a_directory(const std::string& path, int error_number = 0) {
  return Error{
      DiskError::kNotAnImage,
      "disk image " + single_quoted(path) + " is a directory; give the path of an image file",
      error_number};
}

// Repeats `transfer(from)`, a pread(2) or pwrite(2) of the bytes from `from`
// on, until all `length` bytes have moved, retrying EINTR. Returns how many
// moved: fewer when a call failed (errno says why) or moved nothing (errno
// is then 0).
template <typename Transfer>
std::size_t transfer_all(std::size_t length, Transfer&& transfer) {
  std::size_t done = 0;
  while (done < length) {
    const ssize_t count = transfer(done);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) {
      if (count == 0) errno = 0;
      return done;
    }
    done += static_cast<std::size_t>(count);
  }
  return done;
}

Result<std::uint64_t> regular_file_size(int descriptor, const std::string& path) {
  struct stat status {};
  if (::fstat(descriptor, &status) != 0) {
    const int error = errno;
    return Error::from_errno(DiskError::kCannotOpen,
                             "cannot inspect disk image " + single_quoted(path), error);
  }
  if (S_ISDIR(status.st_mode)) return is_a_directory(path);
  if (!S_ISREG(status.st_mode)) {
    return Error{DiskError::kNotAnImage,
                 "disk image " + single_quoted(path) +
                     " is not a regular file; vmlab attaches raw image files only"};
  }
  return static_cast<std::uint64_t>(status.st_size);
}

Status check_image_size(std::uint64_t size, const std::string& path) {
  if (size == 0) {
    return Error{DiskError::kNotAnImage,
                 "disk image " + single_quoted(path) +
                     " is empty (0 bytes); replace it with `vmlab disk create " + path +
                     " SIZE --force`"};
  }
  if (size % kSectorSize != 0) {
    return Error{DiskError::kNotAnImage,
                 "disk image " + single_quoted(path) + " is " + std::to_string(size) +
                     " bytes, not a whole number of 512-byte sectors; pad it with "
                     "`truncate -s %512 " +
                     path + "`"};
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<RawImageFile>> RawImageFile::open(const std::string& path,
                                                         DiskAccess access) {
  // O_NONBLOCK only keeps a FIFO given by mistake from blocking the open; it
  // changes nothing for a regular file, which is all that gets past fstat.
  const int flags = (access == DiskAccess::ReadWrite ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK;
  FileDescriptor descriptor(open_retrying(path.c_str(), flags));
  if (!descriptor.valid()) {
    const int error = errno;
    switch (error) {
      case ENOENT:
        return Error{DiskError::kNotFound,
                     "disk image " + single_quoted(path) + " does not exist; create one with " +
                         "`vmlab disk create " + path + " SIZE`",
                     error};
      case EISDIR:
        return is_a_directory(path, error);
      case EACCES:
      case EPERM:
      case EROFS:
      case ETXTBSY:
        if (access == DiskAccess::ReadWrite) {
          return Error::from_errno(DiskError::kCannotOpen,
                                   "cannot open disk image " + single_quoted(path) +
                                       " for writing (attach it with --disk-readonly, or "
                                       "make it writable)",
                                   error);
        }
        break;
      default:
        break;
    }
    return Error::from_errno(DiskError::kCannotOpen,
                             "cannot open disk image " + single_quoted(path), error);
  }

  auto size = regular_file_size(descriptor.get(), path);
  if (!size) return size.error();
  if (auto valid = check_image_size(*size, path); !valid) return valid.error();

  // flock(2), not fcntl(2) locks: a flock belongs to the open file, so it
  // holds for as long as this object does and goes away with the descriptor,
  // even if the process dies.
  const int lock = (access == DiskAccess::ReadWrite ? LOCK_EX : LOCK_SH) | LOCK_NB;
  if (flock_retrying(descriptor.get(), lock) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      return Error{DiskError::kInUse, lock_conflict_message(path, access), error};
    }
    return Error::from_errno(DiskError::kCannotOpen,
                             "cannot lock disk image " + single_quoted(path), error);
  }

  return std::unique_ptr<RawImageFile>(
      new RawImageFile(std::move(descriptor), path, *size, access));
}

RawImageFile::RawImageFile(FileDescriptor descriptor, std::string path, std::uint64_t size_bytes,
                           DiskAccess access)
    : m_descriptor(std::move(descriptor)),
      m_path(std::move(path)),
      m_size_bytes(size_bytes),
      m_access(access),
      m_serial(serial_from_path(m_path)) {}

RawImageFile::~RawImageFile() {
  (void)close();
}

Status RawImageFile::close() {
  if (!m_descriptor.valid()) return {};
  Status flushed;
  if (m_written_since_flush) flushed = flush();
  // Linux closes the descriptor even when close(2) fails; a failure (EIO
  // from a network file system) is the last word on what was written.
  const int closed = m_descriptor.reset();
  const int error = errno;
  if (closed != 0 && error != EINTR && flushed) {
    return Error::from_errno(DiskError::kFlushFailed, "closing disk image " + single_quoted(m_path),
                             error);
  }
  return flushed;
}

Status RawImageFile::check_open() const {
  if (!m_descriptor.valid()) {
    return Error{DiskError::kClosed, "disk image " + single_quoted(m_path) + " is closed"};
  }
  return {};
}

Status RawImageFile::check_range(std::string_view operation, std::uint64_t offset,
                                 std::size_t length) const {
  if (offset > m_size_bytes || length > m_size_bytes - offset) {
    return Error{DiskError::kOutOfRange,
                 std::string(operation) + " of " + std::to_string(length) + " bytes at offset " +
                     std::to_string(offset) + " is past the end of disk image " +
                     single_quoted(m_path) + " (" + std::to_string(m_size_bytes) + " bytes)"};
  }
  return {};
}

Status RawImageFile::read(std::uint64_t offset, std::span<std::uint8_t> out) {
  if (auto open = check_open(); !open) return open;
  if (auto range = check_range("read", offset, out.size()); !range) return range;
  const std::size_t done = transfer_all(out.size(), [&](std::size_t from) {
    return ::pread(m_descriptor.get(), out.data() + from, out.size() - from,
                   static_cast<off_t>(offset + from));
  });
  if (done < out.size()) {
    const int error = errno;
    const std::string where = std::to_string(offset + done);
    if (error != 0) {
      return Error::from_errno(
          DiskError::kReadFailed,
          "reading disk image " + single_quoted(m_path) + " at offset " + where, error);
    }
    return Error{DiskError::kReadFailed,
                 "disk image " + single_quoted(m_path) + " ended at offset " + where +
                     ", inside the " + std::to_string(m_size_bytes) +
                     " bytes it had when opened (was it truncated while in use?)"};
  }
  m_bytes_read += out.size();
  return {};
}

Status RawImageFile::write(std::uint64_t offset, std::span<const std::uint8_t> in) {
  if (auto open = check_open(); !open) return open;
  if (read_only()) {
    return Error{DiskError::kReadOnly, "disk image " + single_quoted(m_path) +
                                           " is attached read-only; writes are refused"};
  }
  if (auto range = check_range("write", offset, in.size()); !range) return range;
  const std::size_t done = transfer_all(in.size(), [&](std::size_t from) {
    return ::pwrite(m_descriptor.get(), in.data() + from, in.size() - from,
                    static_cast<off_t>(offset + from));
  });
  if (done > 0) m_written_since_flush = true;
  if (done < in.size()) {
    const int error = errno;
    const std::string image = "writing disk image " + single_quoted(m_path);
    const std::string at = " at offset " + std::to_string(offset + done);
    // ENOSPC is the usual one: a sparse image needs host space as it fills.
    if (error != 0) return Error::from_errno(DiskError::kWriteFailed, image + at, error);
    return Error{DiskError::kWriteFailed, image + " made no progress" + at};
  }
  m_bytes_written += in.size();
  return {};
}

Status RawImageFile::flush() {
  if (auto open = check_open(); !open) return open;
  ++m_flushes;
  if (read_only()) return {};
  int result;
  do {
    result = ::fdatasync(m_descriptor.get());
  } while (result < 0 && errno == EINTR);
  if (result != 0) {
    const int error = errno;
    return Error::from_errno(DiskError::kFlushFailed,
                             "flushing disk image " + single_quoted(m_path), error);
  }
  m_written_since_flush = false;
  return {};
}

Status create_raw_image(const std::string& path, std::uint64_t size_bytes, bool overwrite) {
  if (size_bytes == 0 || size_bytes % kSectorSize != 0) {
    return Error{DiskError::kBadSize,
                 "a disk image needs a size that is a positive multiple of 512 bytes, not " +
                     std::to_string(size_bytes)};
  }
  if (size_bytes > kMaximumImageSize) {
    return Error{DiskError::kTooLarge, "a disk image of " + std::to_string(size_bytes) +
                                           " bytes is larger than vmlab's limit of 1T (" +
                                           std::to_string(kMaximumImageSize) + " bytes)"};
  }

  // O_EXCL makes "does it exist?" and "create it" one step, so a file that
  // appears in between is never truncated without --force.
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | (overwrite ? 0 : O_EXCL);
  FileDescriptor descriptor(open_retrying(path.c_str(), flags, 0644));
  if (!descriptor.valid()) {
    const int error = errno;
    if (error == EEXIST) {
      return Error{DiskError::kAlreadyExists,
                   single_quoted(path) +
                       " already exists; pass --force to replace it (its contents will be lost)",
                   error};
    }
    if (error == EISDIR) {
      return Error{DiskError::kNotAnImage, single_quoted(path) + " is a directory", error};
    }
    return Error::from_errno(DiskError::kCreateFailed,
                             "cannot create disk image " + single_quoted(path), error);
  }
  auto remove_if_new = [&] {
    if (!overwrite) ::unlink(path.c_str());
  };

  if (overwrite) {
    auto size = regular_file_size(descriptor.get(), path);
    if (!size) return size.error();
    // Replacing an image under a running VM would pull its disk away.
    if (flock_retrying(descriptor.get(), LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      if (error == EWOULDBLOCK) {
        return Error{DiskError::kInUse,
                     "cannot replace disk image " + single_quoted(path) +
                         ": a running vmlab process is using it; stop that VM first",
                     error};
      }
      return Error::from_errno(DiskError::kCannotOpen,
                               "cannot lock disk image " + single_quoted(path), error);
    }
    // Truncating to 0 first drops the old blocks, so the new image reads as
    // zeros everywhere and takes no host space until written.
    if (::ftruncate(descriptor.get(), 0) != 0) {
      const int error = errno;
      return Error::from_errno(DiskError::kCreateFailed, "cannot truncate " + single_quoted(path),
                               error);
    }
  }
  if (::ftruncate(descriptor.get(), static_cast<off_t>(size_bytes)) != 0) {
    const int error = errno;
    remove_if_new();
    return Error::from_errno(DiskError::kCreateFailed,
                             "cannot size disk image " + single_quoted(path) + " to " +
                                 std::to_string(size_bytes) + " bytes",
                             error);
  }
  if (::fsync(descriptor.get()) != 0) {
    const int error = errno;
    remove_if_new();
    return Error::from_errno(DiskError::kFlushFailed,
                             "cannot flush new disk image " + single_quoted(path), error);
  }
  if (descriptor.reset() != 0) {
    const int error = errno;
    return Error::from_errno(DiskError::kCreateFailed,
                             "cannot close new disk image " + single_quoted(path), error);
  }
  return {};
}

std::string serial_from_path(std::string_view path) {
  const std::size_t slash = path.find_last_of('/');
  std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  std::string serial;
  for (const char character : name) {
    if (serial.size() == kSerialLength) break;
    // Spaces pad ATA strings, so one inside the serial would read as its end.
    const bool printable = character > ' ' && character <= '~';
    serial += printable ? character : '_';
  }
  if (serial.empty()) serial = "vmlab-disk";
  return serial;
}

}  // namespace vmlab::devices
