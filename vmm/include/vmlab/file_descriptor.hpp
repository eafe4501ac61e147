// The one owner of a file descriptor (STYLE.md 1): the KVM objects, disk
// image files and stats fds all hold one, so each is closed exactly once.
#pragma once

#include <unistd.h>

#include <utility>

namespace vmlab {

class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : m_fd(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
      reset();
      m_fd = std::exchange(other.m_fd, -1);
    }
    return *this;
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { reset(); }

  int get() const { return m_fd; }
  bool valid() const { return m_fd >= 0; }

  // Closes the descriptor now; the return value is close()'s (0, or -1 with
  // errno set), for callers that must report a failed close.
  int reset() { return m_fd >= 0 ? ::close(std::exchange(m_fd, -1)) : 0; }

 private:
  int m_fd = -1;
};

}  // namespace vmlab
