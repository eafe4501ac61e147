// A small expected-style result type (std::expected is C++23).
//
// Library code reports failure by returning an Error that names the problem
// and, where one exists, the fix; it never calls exit().
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace vmlab {

struct Error {
  std::string message;
  int system_errno = 0;      // errno of a failed system call, 0 otherwise
  bool guest_fault = false;  // the guest, not the VMM, cannot go on (a triple fault)

  static Error from_errno(const std::string& what, int error_number) {
    return Error{what + ": " + std::strerror(error_number), error_number};
  }
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : m_storage(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : m_storage(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(m_storage); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(m_storage); }
  const T& value() const& { return std::get<T>(m_storage); }
  T&& value() && { return std::get<T>(std::move(m_storage)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<Error>(m_storage); }

 private:
  std::variant<T, Error> m_storage;
};

// Result of an operation that yields nothing but can fail.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : m_error(std::move(error)), m_failed(true) {}  // NOLINT

  bool ok() const { return !m_failed; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return m_error; }

 private:
  Error m_error;
  bool m_failed = false;
};

using Status = Result<void>;

}  // namespace vmlab
