// Small formatting helpers shared by messages and reports.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace vmlab {

// "0x3f8": addresses, ports and values in messages.
inline std::string hex(std::uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace vmlab
