// Small formatting helpers shared by messages and reports.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace vmlab {

// "0x3f8": addresses, ports and values in messages.
inline std::string hex(std::uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(value));
  return text;
}

// 'text', for a path or a value named in a message; longer than `longest`
// characters, its start and "...". (Not `quoted`: for a std::string argument
// ADL would find std::quoted, which escapes.)
inline std::string single_quoted(std::string_view text,
                                 std::size_t longest = std::string_view::npos) {
  std::string result = "'";
  result += text.substr(0, longest);
  if (text.size() > longest) result += "...";
  result += '\'';
  return result;
}

// "[0x1000, +0x200)": a guest range by its start and length, in messages.
// Appended piece by piece: `"[" + std::string&&` trips GCC 12's -Wrestrict
// false positive at -O3 (GCC bug 105329).
inline std::string range_text(std::uint64_t start, std::uint64_t length) {
  std::string text = "[";
  text += hex(start);
  text += ", +";
  text += hex(length);
  text += ')';
  return text;
}

}  // namespace vmlab
