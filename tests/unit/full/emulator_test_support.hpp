// The fixture of the instruction emulator's tests (one test file per
// instruction class, as modes/full/src/): a fake guest memory with the vmlab
// guest's GDT, fake VMM services that record what the emulator asked of
// them, and the guest's registers and virtual CPU.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <optional>
#include <utility>
#include <vector>

#include "../monitor/fake_guest_memory.hpp"
#include "vmlab/full/emulator.hpp"

namespace vmlab::full::testing {

namespace fakes = monitor::fakes;
using fakes::FakeGuestMemory;
using monitor::GuestRegisters;
using monitor::VirtualCpu;

constexpr std::uint64_t kCode = 0x10000;
constexpr std::uint64_t kGdt = 0x2000;
constexpr std::uint64_t kTss = 0x5000;
constexpr std::uint64_t kData = 0x30000;
constexpr std::uint64_t kStack = 0x40000;

struct PortWrite {
  std::uint16_t port;
  unsigned size;
  std::uint32_t value;
  bool operator==(const PortWrite&) const = default;
};

class RecordingServices final : public MonitorServices {
 public:
  std::uint32_t port_read(std::uint16_t port, unsigned size) override {
    reads.emplace_back(port, size);
    if (read_values.empty()) return 0xffffffff;
    const std::uint32_t value = read_values.front();
    read_values.pop_front();
    return value;
  }
  void port_write(std::uint16_t port, unsigned size, std::uint32_t value) override {
    writes.push_back({port, size, value});
  }
  void cr3_written(std::uint64_t old_cr3, std::uint64_t new_cr3) override {
    cr3_writes.emplace_back(old_cr3, new_cr3);
  }
  void page_invalidated(GuestVirtAddr address) override { invalidated.push_back(address); }
  void paging_control_changed() override { ++paging_changes; }

  std::deque<std::uint32_t> read_values;
  std::vector<std::pair<std::uint16_t, unsigned>> reads;
  std::vector<PortWrite> writes;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> cr3_writes;
  std::vector<GuestVirtAddr> invalidated;
  int paging_changes = 0;
};

class EmulatorTest : public ::testing::Test {
 protected:
  EmulatorTest() {
    cpu.gdtr = {kGdt, fakes::install_vmlab_gdt(memory, kGdt, kTss)};
    registers.rip = kCode;
    registers.rsp = kStack;
  }

  void place(std::initializer_list<std::uint8_t> bytes, std::uint64_t address = kCode) {
    memory.put_bytes(address, bytes);
    registers.rip = address;
  }
  Emulation run(std::initializer_list<std::uint8_t> bytes) {
    place(bytes);
    return emulate_privileged(registers, cpu, memory, services);
  }
  void enter_user_mode() {
    cpu.cpl = 3;
    cpu.cs = fakes::kUserCodeSelector;
    cpu.ss = fakes::kUserDataSelector;
  }
  // A TSS as ltr would have left it, with an I/O bitmap at `bitmap_offset`.
  void install_tss(std::uint16_t bitmap_offset, std::uint32_t limit) {
    cpu.tr = fakes::kTssSelector;
    cpu.tss_base = kTss;
    cpu.tss_limit = limit;
    memory.put_u16(kTss + 0x66, bitmap_offset);
  }

  FakeGuestMemory memory;
  RecordingServices services;
  GuestRegisters registers;
  VirtualCpu cpu;
};

inline void expect_general_protection(const Emulation& emulation, std::uint32_t error_code = 0) {
  EXPECT_EQ(emulation.kind, EmulationKind::Reflect) << emulation.mnemonic;
  EXPECT_EQ(emulation.event.vector, kVectorGeneralProtection) << emulation.mnemonic;
  EXPECT_EQ(emulation.event.error_code, std::optional<std::uint32_t>(error_code))
      << emulation.mnemonic;
}

}  // namespace vmlab::full::testing
