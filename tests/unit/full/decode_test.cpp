// Fetching and decoding for the instruction emulator (modes/full/src/
// decode.cpp): bytes that do not decode, are too long or cannot be fetched
// are reflected as the CPU would, and the fetch happens at the virtual CPL.
#include "emulator_test_support.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>

namespace vmlab::full {
namespace {

using namespace monitor;  // NOLINT(google-build-using-namespace)
using namespace testing;  // NOLINT(google-build-using-namespace)

TEST_F(EmulatorTest, UndecodableBytesAreInvalidOpcode) {
  const Emulation emulation = run({0x06});  // push es: invalid in 64-bit mode
  EXPECT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorInvalidOpcode);
  EXPECT_TRUE(emulation.mnemonic.empty());
  EXPECT_EQ(run({0xf0, 0xfa}).event.vector, kVectorInvalidOpcode);  // lock cli
}

TEST_F(EmulatorTest, OverlongInstructionIsGeneralProtection) {
  place({0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
         0xee});
  expect_general_protection(emulate_privileged(registers, cpu, memory, services));
}

TEST_F(EmulatorTest, FetchFaultsAreReflectedAsFetchPageFaults) {
  memory.unmap_page(kCode);
  const Emulation emulation = run({0xfa});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.error_code, kPageFaultFetch);
  EXPECT_EQ(emulation.event.fault_address, GuestVirtAddr(kCode));
}

TEST_F(EmulatorTest, InstructionEndingAtAPageBoundaryRunsBeforeAnUnmappedPage) {
  memory.unmap_page(kCode + 0x2000);
  place({0x0f, 0x22}, kCode + 0x2000 - 2);  // mov cr3, ... continues on the unmapped page
  Emulation emulation = emulate_privileged(registers, cpu, memory, services);
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.fault_address, GuestVirtAddr(kCode + 0x2000));

  place({0xfa}, kCode + 0x2000 - 1);  // cli, the page's last byte
  emulation = emulate_privileged(registers, cpu, memory, services);
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(registers.rip, kCode + 0x2000);
}

TEST_F(EmulatorTest, UserModeFetchesAsUser) {
  enter_user_mode();
  memory.make_supervisor_only(kCode);
  const Emulation emulation = run({0xfa});
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.error_code, kPageFaultFetch | kPageFaultUser | kPageFaultPresent);
}

}  // namespace
}  // namespace vmlab::full
