// The instruction emulator's dispatch (modes/full/src/emulator.cpp): an
// ordinary instruction that faulted gets its own trap back, and hostile bytes
// at either privilege never crash it.
#include "emulator_test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <span>

namespace vmlab::full {
namespace {

using namespace monitor;  // NOLINT(google-build-using-namespace)
using namespace testing;  // NOLINT(google-build-using-namespace)

TEST_F(EmulatorTest, AnOrdinaryInstructionThatFaultedGetsItsOwnTrap) {
  registers.rbx = 0x0000800000000000ull;
  place({0x48, 0x8b, 0x03});  // mov rax, [rbx]: a genuine #GP(0)
  Emulation emulation =
      emulate_privileged(registers, cpu, memory, services, Event{kVectorGeneralProtection, 0u});
  expect_general_protection(emulation);
  EXPECT_EQ(emulation.mnemonic, "mov rax, [rbx]");
  place({0x0f, 0x0b});  // ud2
  emulation = emulate_privileged(registers, cpu, memory, services,
                                 Event{kVectorInvalidOpcode, std::nullopt});
  EXPECT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorInvalidOpcode);
}

// Random bytes at RIP, at either privilege, with random registers: whatever
// comes back, nothing crashes, and a decoded instruction names itself.
TEST_F(EmulatorTest, HostileBytesNeverCrash) {
  std::mt19937_64 random(20240601);
  std::map<EmulationKind, int> privileged_kinds;
  std::map<EmulationKind, int> store_kinds;
  memory.unmap_page(kCode + 0x1000);
  install_tss(0x68, 0x68 + 0x2000);
  for (int round = 0; round < 5000; ++round) {
    GuestRegisters state;
    VirtualCpu virtual_cpu = cpu;
    virtual_cpu.cpl = (round % 3 == 0) ? 3 : 0;
    for (std::uint64_t* field : {&state.rax, &state.rbx, &state.rcx, &state.rdx, &state.rsi,
                                 &state.rdi, &state.rbp, &state.r8, &state.r9, &state.r15}) {
      // Small values mostly, so that memory operands often land in the fake.
      *field = (random() % 4 == 0) ? random() : random() % memory.size();
    }
    state.rcx %= 64;  // bounded rep counts
    state.rsp = kStack;
    state.rflags = 0x2 | (random() & 0xcd5);
    // Near the end of the page, so that some instructions run into the hole.
    const std::uint64_t rip = kCode + 0x1000 - 1 - random() % 20;
    std::uint8_t bytes[15];
    for (auto& byte : bytes)
      byte = static_cast<std::uint8_t>(random());
    memory.put_bytes(rip, std::span(bytes, std::min<std::uint64_t>(15, kCode + 0x1000 - rip)));
    state.rip = rip;
    const Emulation privileged = emulate_privileged(state, virtual_cpu, memory, services);
    ++privileged_kinds[privileged.kind];
    EXPECT_LE(privileged.instruction_length, 15);
    if (privileged.kind != EmulationKind::Reflect) {
      EXPECT_FALSE(privileged.mnemonic.empty());
    }
    state.rip = rip;
    const Emulation store = emulate_memory_write(state, virtual_cpu, memory);
    ++store_kinds[store.kind];
    EXPECT_NE(store.kind, EmulationKind::Halt);
  }
  // The bytes did exercise the emulator, not only the decoder's #UD.
  EXPECT_GT(privileged_kinds[EmulationKind::Emulated], 50);
  EXPECT_GT(privileged_kinds[EmulationKind::Reflect], 1000);
  EXPECT_GT(privileged_kinds[EmulationKind::Unsupported], 0);
  EXPECT_GT(store_kinds[EmulationKind::Emulated], 50);
}

}  // namespace
}  // namespace vmlab::full
