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
//   ...
//   VMLAB_ERROR_KINDS(vmlab::ElfError);  // at global scope
//
// A kind's name ("kMalformed", in test failures and error_code::message())
// is the enumerator's own, read from the compiler: no module keeps a second
// list of names in step with its enum. A module in a namespace nested in
// vmlab adds `using vmlab::make_error_code;` there, where argument-dependent
// lookup looks for it.
#pragma once

#include <array>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace vmlab {

// An enum class whose module gave it a domain name.
template <typename Kind>
concept ErrorKindEnum = std::is_enum_v<Kind> && requires(Kind kind) {
  { error_domain(kind) } -> std::convertible_to<const char*>;
};

namespace detail {

// The name of enumerator `Value`, from the compiler's spelling of this
// function: GCC writes "... [with auto Value = vmlab::ElfError::kMalformed; ...]",
// Clang "... [Value = vmlab::ElfError::kMalformed]". A value no enumerator has
// is spelt as a cast, "(vmlab::ElfError)9", and has no name.
template <auto Value>
constexpr std::string_view enumerator_name() {
  constexpr std::string_view function = __PRETTY_FUNCTION__;
  constexpr std::string_view marker = "Value = ";
  const std::size_t start = function.find(marker) + marker.size();
  const std::string_view argument =
      function.substr(start, function.find_first_of(";]", start) - start);
  if (argument.find(')') != std::string_view::npos) return {};
  const std::size_t scope = argument.rfind("::");
  return scope == std::string_view::npos ? argument : argument.substr(scope + 2);
}

// Kinds are numbered from 1; a module has fewer than this many.
inline constexpr std::size_t kMaximumErrorKinds = 48;

template <typename Kind, std::size_t... Values>
constexpr std::array<std::string_view, sizeof...(Values)> enumerator_names(
    std::index_sequence<Values...>) {
  return {enumerator_name<static_cast<Kind>(Values)>()...};
}

}  // namespace detail

// "kMalformed" for ElfError::kMalformed; empty for a value with no enumerator.
template <ErrorKindEnum Kind>
constexpr std::string_view kind_name(Kind kind) {
  constexpr auto names =
      detail::enumerator_names<Kind>(std::make_index_sequence<detail::kMaximumErrorKinds>());
  const auto value = static_cast<std::size_t>(kind);
  return value < names.size() ? names[value] : std::string_view{};
}

// The std::error_category of one module's kinds: its name is the domain
// ("elf") and the message of a kind its name ("kMalformed").
template <ErrorKindEnum Kind>
class ErrorKindCategory final : public std::error_category {
 public:
  static const ErrorKindCategory& instance() {
    static const ErrorKindCategory category;
    return category;
  }
  const char* name() const noexcept override { return error_domain(Kind{}); }
  std::string message(int value) const override {
    const std::string_view name = kind_name(static_cast<Kind>(value));
    return name.empty() ? "kind " + std::to_string(value) : std::string(name);
  }
};

// Found by argument-dependent lookup when a kind converts to std::error_code.
template <ErrorKindEnum Kind>
std::error_code make_error_code(Kind kind) {
  return {static_cast<int>(kind), ErrorKindCategory<Kind>::instance()};
}

struct Error {
  Error(std::error_code kind_of_error, std::string text, int error_number = 0)
      : kind(kind_of_error), message(std::move(text)), system_errno(error_number) {}

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

}  // namespace vmlab

// Lets a module's kinds convert to std::error_code (and compare with one).
#define VMLAB_ERROR_KINDS(Kind) \
  template <>                   \
  struct std::is_error_code_enum<Kind> : std::true_type {}
