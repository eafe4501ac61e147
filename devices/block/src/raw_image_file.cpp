#include <vmlab/devices/raw_image_file.hpp>
#include <vmlab/format.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <utility>

namespace vmlab::devices {
namespace {

constexpr std::size_t kSerialLength = 20;

// Closes a descriptor on every early return of open(), before the
// RawImageFile that will own it exists.
class DescriptorGuard {
 public:
  explicit DescriptorGuard(int descriptor) : m_descriptor(descriptor) {}
  DescriptorGuard(const DescriptorGuard&) = delete;
  DescriptorGuard& operator=(const DescriptorGuard&) = delete;
  ~DescriptorGuard() {
    if (m_descriptor >= 0) ::close(m_descriptor);
  }
  int get() const { return m_descriptor; }
  int release() { return std::exchange(m_descriptor, -1); }

 private:
  int m_descriptor;
};

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

Result<std::uint64_t> regular_file_size(int descriptor, const std::string& path) {
  struct stat status {};
  if (::fstat(descriptor, &status) != 0) {
    const int error = errno;
    return Error::from_errno("cannot inspect disk image " + single_quoted(path), error);
  }
  if (S_ISDIR(status.st_mode)) {
    return Error{"disk image " + single_quoted(path) +
                 " is a directory; give the path of an image file"};
  }
  if (!S_ISREG(status.st_mode)) {
    return Error{"disk image " + single_quoted(path) +
                 " is not a regular file; vmlab attaches raw image files only"};
  }
  return static_cast<std::uint64_t>(status.st_size);
}

Status check_image_size(std::uint64_t size, const std::string& path) {
  if (size == 0) {
    return Error{"disk image " + single_quoted(path) +
                 " is empty (0 bytes); replace it with `vmlab disk create " + path +
                 " SIZE --force`"};
  }
  if (size % kSectorSize != 0) {
    return Error{"disk image " + single_quoted(path) + " is " + std::to_string(size) +
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
  DescriptorGuard descriptor(open_retrying(path.c_str(), flags));
  if (descriptor.get() < 0) {
    const int error = errno;
    switch (error) {
      case ENOENT:
        return Error{"disk image " + single_quoted(path) + " does not exist; create one with " +
                         "`vmlab disk create " + path + " SIZE`",
                     error};
      case EISDIR:
        return Error{
            "disk image " + single_quoted(path) + " is a directory; give the path of an image file",
            error};
      case EACCES:
      case EPERM:
      case EROFS:
      case ETXTBSY:
        if (access == DiskAccess::ReadWrite) {
          return Error::from_errno("cannot open disk image " + single_quoted(path) +
                                       " for writing (attach it with --disk-readonly, or "
                                       "make it writable)",
                                   error);
        }
        break;
      default:
        break;
    }
    return Error::from_errno("cannot open disk image " + single_quoted(path), error);
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
    if (error == EWOULDBLOCK) return Error{lock_conflict_message(path, access), error};
    return Error::from_errno("cannot lock disk image " + single_quoted(path), error);
  }

  return std::unique_ptr<RawImageFile>(new RawImageFile(descriptor.release(), path, *size, access));
}

RawImageFile::RawImageFile(int descriptor, std::string path, std::uint64_t size_bytes,
                           DiskAccess access)
    : m_descriptor(descriptor),
      m_path(std::move(path)),
      m_size_bytes(size_bytes),
      m_access(access),
      m_serial(serial_from_path(m_path)) {}

RawImageFile::~RawImageFile() {
  (void)close();
}

Status RawImageFile::close() {
  if (m_descriptor < 0) return {};
  Status flushed;
  if (m_written_since_flush) flushed = flush();
  ::close(m_descriptor);
  m_descriptor = -1;
  return flushed;
}

Status RawImageFile::check_open() const {
  if (m_descriptor < 0) return Error{"disk image " + single_quoted(m_path) + " is closed"};
  return {};
}

Status RawImageFile::check_range(std::string_view operation, std::uint64_t offset,
                                 std::size_t length) const {
  if (offset > m_size_bytes || length > m_size_bytes - offset) {
    return Error{std::string(operation) + " of " + std::to_string(length) + " bytes at offset " +
                 std::to_string(offset) + " is past the end of disk image " +
                 single_quoted(m_path) + " (" + std::to_string(m_size_bytes) + " bytes)"};
  }
  return {};
}

Status RawImageFile::read(std::uint64_t offset, std::span<std::uint8_t> out) {
  if (auto open = check_open(); !open) return open;
  if (auto range = check_range("read", offset, out.size()); !range) return range;
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t count = ::pread(m_descriptor, out.data() + done, out.size() - done,
                                  static_cast<off_t>(offset + done));
    if (count < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      return Error::from_errno("reading disk image " + single_quoted(m_path) + " at offset " +
                                   std::to_string(offset + done),
                               error);
    }
    if (count == 0) {
      return Error{"disk image " + single_quoted(m_path) + " ended at offset " +
                   std::to_string(offset + done) + ", inside the " + std::to_string(m_size_bytes) +
                   " bytes it had when opened (was it truncated while in use?)"};
    }
    done += static_cast<std::size_t>(count);
  }
  m_bytes_read += out.size();
  return {};
}

Status RawImageFile::write(std::uint64_t offset, std::span<const std::uint8_t> in) {
  if (auto open = check_open(); !open) return open;
  if (read_only()) {
    return Error{"disk image " + single_quoted(m_path) +
                 " is attached read-only; writes are refused"};
  }
  if (auto range = check_range("write", offset, in.size()); !range) return range;
  std::size_t done = 0;
  while (done < in.size()) {
    const ssize_t count = ::pwrite(m_descriptor, in.data() + done, in.size() - done,
                                   static_cast<off_t>(offset + done));
    if (count < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      // ENOSPC is the usual one: a sparse image needs host space as it fills.
      return Error::from_errno("writing disk image " + single_quoted(m_path) + " at offset " +
                                   std::to_string(offset + done),
                               error);
    }
    if (count == 0) {
      return Error{"writing disk image " + single_quoted(m_path) + " made no progress at offset " +
                   std::to_string(offset + done)};
    }
    done += static_cast<std::size_t>(count);
    m_written_since_flush = true;
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
    result = ::fdatasync(m_descriptor);
  } while (result < 0 && errno == EINTR);
  if (result != 0) {
    const int error = errno;
    return Error::from_errno("flushing disk image " + single_quoted(m_path), error);
  }
  m_written_since_flush = false;
  return {};
}

Status create_raw_image(const std::string& path, std::uint64_t size_bytes, bool overwrite) {
  if (size_bytes == 0 || size_bytes % kSectorSize != 0) {
    return Error{"a disk image needs a size that is a positive multiple of 512 bytes, not " +
                 std::to_string(size_bytes)};
  }
  if (size_bytes > kMaximumImageSize) {
    return Error{"a disk image of " + std::to_string(size_bytes) +
                 " bytes is larger than vmlab's limit of 1T (" + std::to_string(kMaximumImageSize) +
                 " bytes)"};
  }

  // O_EXCL makes "does it exist?" and "create it" one step, so a file that
  // appears in between is never truncated without --force.
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | (overwrite ? 0 : O_EXCL);
  DescriptorGuard descriptor(open_retrying(path.c_str(), flags, 0644));
  if (descriptor.get() < 0) {
    const int error = errno;
    if (error == EEXIST) {
      return Error{single_quoted(path) +
                       " already exists; pass --force to replace it (its contents will be lost)",
                   error};
    }
    if (error == EISDIR) return Error{single_quoted(path) + " is a directory", error};
    return Error::from_errno("cannot create disk image " + single_quoted(path), error);
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
        return Error{"cannot replace disk image " + single_quoted(path) +
                         ": a running vmlab process is using it; stop that VM first",
                     error};
      }
      return Error::from_errno("cannot lock disk image " + single_quoted(path), error);
    }
    // Truncating to 0 first drops the old blocks, so the new image reads as
    // zeros everywhere and takes no host space until written.
    if (::ftruncate(descriptor.get(), 0) != 0) {
      const int error = errno;
      return Error::from_errno("cannot truncate " + single_quoted(path), error);
    }
  }
  if (::ftruncate(descriptor.get(), static_cast<off_t>(size_bytes)) != 0) {
    const int error = errno;
    remove_if_new();
    return Error::from_errno("cannot size disk image " + single_quoted(path) + " to " +
                                 std::to_string(size_bytes) + " bytes",
                             error);
  }
  if (::fsync(descriptor.get()) != 0) {
    const int error = errno;
    remove_if_new();
    return Error::from_errno("cannot flush new disk image " + single_quoted(path), error);
  }
  if (::close(descriptor.release()) != 0) {
    const int error = errno;
    return Error::from_errno("cannot close new disk image " + single_quoted(path), error);
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
