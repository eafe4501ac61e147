// A small expected-style result type (std::expected is C++23), and the error
// it carries.
//
// Library code reports failure by returning an Error that names the problem
// and, where one exists, the fix; it never calls exit(). What went wrong, for
// code and tests, is the error's kind: each module declares its own kinds as
// an enum class (STYLE.md 6: one error type per module) and the Error carries
// it as a std::error_code, so the core knows no module's kinds and a test
// asks `error.kind == DiskError::kCorruptHeader` instead of matching text.
//
// A module declares its kinds like this (see ElfError in elf_loader.hpp):
//
//   enum class ElfError { kUnreadable = 1, kMalformed, ... };  // 0 is "no error"
//   constexpr const char* error_domain(ElfError) { return "elf"; }
//   constexpr const char* to_string(ElfError kind);            // a switch
//   ...
//   VMLAB_ERROR_KINDS(vmlab::ElfError);  // at global scope
#pragma once

#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace vmlab {

// An enum class whose module gave it a domain name and a name per kind.
template <typename Kind>
concept ErrorKindEnum = std::is_enum_v<Kind> && requires(Kind kind) {
  { error_domain(kind) } -> std::convertible_to<const char*>;
  { to_string(kind) } -> std::convertible_to<const char*>;
};

// The std::error_category of one module's kinds: its name is the domain
// ("elf") and the message of a kind its name ("malformed").
template <ErrorKindEnum Kind>
class ErrorKindCategory final : public std::error_category {
 public:
  static const ErrorKindCategory& instance() {
    static const ErrorKindCategory category;
    return category;
  }
  const char* name() const noexcept override { return error_domain(Kind{}); }
  std::string message(int value) const override { return to_string(static_cast<Kind>(value)); }
};

// Found by argument-dependent lookup when a kind converts to std::error_code.
template <ErrorKindEnum Kind>
std::error_code make_error_code(Kind kind) {
  return {static_cast<int>(kind), ErrorKindCategory<Kind>::instance()};
}

struct Error {
  Error(std::error_code kind_of_error, std::string text, int error_number = 0)
      : kind(kind_of_error), message(std::move(text)), system_errno(error_number) {}

  // TRANSITIONAL, for the session that gives every module its kinds: an error
  // of no kind. Removed when the last caller is gone.
  Error(std::string text, int error_number = 0)  // NOLINT(google-explicit-constructor)
      : message(std::move(text)), system_errno(error_number) {}
  static Error from_errno(const std::string& what, int error_number) {
    return Error{what + ": " + std::strerror(error_number), error_number};
  }

  // A failed system call: the message ends with strerror's words.
  static Error from_errno(std::error_code kind_of_error, const std::string& what,
                          int error_number) {
    return Error{kind_of_error, what + ": " + std::strerror(error_number), error_number};
  }

  std::error_code kind;  // what went wrong, one of a module's kinds
  std::string message;   // for people: the problem and, where one exists, the fix
  int system_errno = 0;  // errno of a failed system call, 0 otherwise
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
  Result(Error error) : m_error(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return !m_error.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *m_error; }

 private:
  std::optional<Error> m_error;
};

using Status = Result<void>;

// A module's to_string as one table (STYLE.md 12) rather than a switch per
// module: `names` lists every kind from 1 to `Last`, in order, and a kind
// added without its name does not compile.
//
//   constexpr const char* to_string(BusError kind) {
//     return kind_name<BusError::kOverlap>(kind, {"empty range", "overlap"});
//   }
template <auto Last, std::size_t Count>
constexpr const char* kind_name(decltype(Last) kind, const char* const (&names)[Count]) {
  static_assert(std::is_enum_v<decltype(Last)>);
  static_assert(Count == static_cast<std::size_t>(Last), "one name per kind, from 1 to Last");
  const auto index = static_cast<std::size_t>(kind);
  return index >= 1 && index <= Count ? names[index - 1] : "unknown";
}

}  // namespace vmlab

// Lets a module's kinds convert to std::error_code (and compare with one).
#define VMLAB_ERROR_KINDS(Kind) \
  template <>                   \
  struct std::is_error_code_enum<Kind> : std::true_type {}
