// The names of a device module's error kinds (result.hpp's to_string), from
// one table per enum: DiskError, VirtqueueError, IommuError,
// PassthroughError and the board's BoardError all name theirs this way.
#pragma once

#include <cstddef>

#include "vmlab/result.hpp"

namespace vmlab::devices {

// A kind of this namespace converts to std::error_code through result.hpp's
// make_error_code, which argument-dependent lookup finds only here.
using vmlab::make_error_code;

// names[0] names "no error" (a std::error_code of value 0), names[k] the kind
// of value k; `Last` is the enum's last kind, so a kind added at the end
// without its name (or a name without its kind) does not compile.
template <auto Last, std::size_t Count>
constexpr const char* kind_name(decltype(Last) kind, const char* const (&names)[Count]) {
  static_assert(Count == static_cast<std::size_t>(Last) + 1, "one name per kind, and one for 0");
  const auto index = static_cast<std::size_t>(kind);
  return index < Count ? names[index] : "unknown";
}

}  // namespace vmlab::devices
