// The KVM memory slots (KVM_SET_USER_MEMORY_REGION) of a vmlab VM, in one
// place for every layer that registers one: the core, the CPU modes and the
// board (whose layout table, board_layout.hpp, lists them beside the rest).
#pragma once

#include <cstdint>

namespace vmlab {

enum class MemorySlot : std::uint32_t {
  GuestRam = 0,           // vmm/: all of guest RAM (modes/para deletes and re-adds it)
  MonitorRegion = 1,      // modes/full, modes/para: the monitor's static part
  ShadowPool = 2,         // modes/full: the shadow page-table pool
  PassthroughWindow = 3,  // board/: the passthrough register window
  TranslationCache = 4,   // modes/bt: the translation cache
};

constexpr std::uint32_t slot_number(MemorySlot slot) {
  return static_cast<std::uint32_t>(slot);
}

}  // namespace vmlab
