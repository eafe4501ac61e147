// The shadow pager's memory-write emulation (modes/full/src/
// memory_write.cpp): the stores a guest kernel makes to its page tables,
// their flags, and the faults the guest's own tables raise.
#include "emulator_test_support.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>

namespace vmlab::full {
namespace {

using namespace monitor;  // NOLINT(google-build-using-namespace)
using namespace testing;  // NOLINT(google-build-using-namespace)

class MemoryWriteTest : public EmulatorTest {
 protected:
  Emulation store(std::initializer_list<std::uint8_t> bytes) {
    place(bytes);
    return emulate_memory_write(registers, cpu, memory);
  }
};

TEST_F(MemoryWriteTest, MovRegisterStoresAPageTableEntry) {
  registers.rdi = kData + 0x18;
  registers.rax = 0x0000000000203067ull;
  const Emulation emulation = store({0x48, 0x89, 0x07});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated) << emulation.detail;
  EXPECT_EQ(emulation.mnemonic, "mov [rdi], rax");
  EXPECT_EQ(memory.get_u64(kData + 0x18), 0x203067u);
  EXPECT_EQ(emulation.written.address, GuestVirtAddr(kData + 0x18));
  EXPECT_EQ(emulation.written.length, 8u);
  EXPECT_EQ(registers.rip, kCode + 3);
}

TEST_F(MemoryWriteTest, MovImmediateAndNarrowStores) {
  registers.rdi = kData;
  store({0x48, 0xc7, 0x47, 0x08, 0xff, 0xff, 0xff, 0xff});  // mov qword [rdi+8], -1
  EXPECT_EQ(memory.get_u64(kData + 8), ~std::uint64_t{0});
  registers.rax = kData + 0x20;
  store({0xc6, 0x00, 0x01});  // mov byte [rax], 1
  EXPECT_EQ(memory.get_u64(kData + 0x20), 1u);
  registers.rax = 0xabcd;
  const Emulation emulation = store({0x66, 0x89, 0x07});  // mov [rdi], ax
  EXPECT_EQ(memory.get_u16(kData), 0xabcd);
  EXPECT_EQ(emulation.written.length, 2u);
}

TEST_F(MemoryWriteTest, ReadModifyWriteStoresSetFlags) {
  registers.rdi = kData;
  memory.put_u64(kData, 0xf0);
  registers.rax = 0x0f;
  store({0x48, 0x09, 0x07});  // or [rdi], rax
  EXPECT_EQ(memory.get_u64(kData), 0xffu);
  EXPECT_EQ(registers.rflags & kRflagsZero, 0u);
  registers.rax = kData;
  store({0x48, 0x83, 0x20, 0x00});  // and qword [rax], 0
  EXPECT_EQ(memory.get_u64(kData), 0u);
  EXPECT_NE(registers.rflags & kRflagsZero, 0u);
  memory.put_u64(kData, 0xffffffff);
  store({0x83, 0x07, 0x01});  // add dword [rdi], 1
  EXPECT_EQ(memory.get_u64(kData), 0u);
  EXPECT_NE(registers.rflags & kRflagsCarry, 0u);
  EXPECT_NE(registers.rflags & kRflagsZero, 0u);
}

TEST_F(MemoryWriteTest, ExchangeAndCompareExchange) {
  registers.rdi = kData;
  memory.put_u64(kData, 0x1111);
  registers.rcx = 0x2222;
  store({0x48, 0x87, 0x0f});  // xchg [rdi], rcx
  EXPECT_EQ(memory.get_u64(kData), 0x2222u);
  EXPECT_EQ(registers.rcx, 0x1111u);

  registers.rax = 0x2222;  // expected value matches
  registers.rcx = 0x3333;
  store({0xf0, 0x48, 0x0f, 0xb1, 0x0f});  // lock cmpxchg [rdi], rcx
  EXPECT_EQ(memory.get_u64(kData), 0x3333u);
  EXPECT_NE(registers.rflags & kRflagsZero, 0u);

  registers.rax = 0x9999;  // mismatch: RAX gets the current value
  store({0xf0, 0x48, 0x0f, 0xb1, 0x0f});
  EXPECT_EQ(memory.get_u64(kData), 0x3333u);
  EXPECT_EQ(registers.rax, 0x3333u);
  EXPECT_EQ(registers.rflags & kRflagsZero, 0u);
}

TEST_F(MemoryWriteTest, RepStosqClearsAPageTable) {
  for (std::uint64_t offset = 0; offset < 4096; offset += 8)
    memory.put_u64(kData + offset, 7);
  registers.rdi = kData;
  registers.rcx = 512;
  registers.rax = 0;
  const Emulation emulation = store({0xf3, 0x48, 0xab});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "rep stosq");
  for (std::uint64_t offset = 0; offset < 4096; offset += 8) {
    ASSERT_EQ(memory.get_u64(kData + offset), 0u) << offset;
  }
  EXPECT_EQ(registers.rdi, kData + 4096);
  EXPECT_EQ(registers.rcx, 0u);
  EXPECT_EQ(emulation.written.address, GuestVirtAddr(kData));
  EXPECT_EQ(emulation.written.length, 4096u);
}

TEST_F(MemoryWriteTest, RepMovsbCopiesBackwardWithDirectionFlag) {
  memory.put_bytes(kData, {1, 2, 3, 4});
  registers.rflags |= kRflagsDirection;
  registers.rsi = kData + 3;
  registers.rdi = kData + 0x103;
  registers.rcx = 4;
  const Emulation emulation = store({0xf3, 0xa4});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(memory.get_u8(kData + 0x100), 1);
  EXPECT_EQ(memory.get_u8(kData + 0x103), 4);
  EXPECT_EQ(registers.rsi, kData - 1);
  EXPECT_EQ(emulation.written.address, GuestVirtAddr(kData + 0x100));
  EXPECT_EQ(emulation.written.length, 4u);
}

TEST_F(MemoryWriteTest, StoreTheGuestTablesForbidIsReflected) {
  enter_user_mode();
  memory.make_supervisor_only(kData);
  registers.rdi = kData;
  memory.put_u64(kData, 0x55);
  const Emulation emulation = store({0x48, 0x89, 0x07});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.error_code, kPageFaultPresent | kPageFaultWrite | kPageFaultUser);
  EXPECT_EQ(memory.get_u64(kData), 0x55u);
  EXPECT_EQ(registers.rip, kCode);
}

TEST_F(MemoryWriteTest, StoreToAPageTheGuestMapsReadOnlyIsReflected) {
  memory.make_read_only(kData);  // read-only in the guest's own tables, not just the shadow
  registers.rdi = kData;
  const Emulation emulation = store({0x48, 0x89, 0x07});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.error_code, kPageFaultPresent | kPageFaultWrite);
  EXPECT_EQ(emulation.event.fault_address, GuestVirtAddr(kData));
}

TEST_F(MemoryWriteTest, NotAStoreIsUnsupported) {
  registers.rdi = kData;
  EXPECT_EQ(store({0x48, 0x8b, 0x07}).kind, EmulationKind::Unsupported);  // mov rax, [rdi]
  registers.rax = kData;
  EXPECT_EQ(store({0xf2, 0x0f, 0x11, 0x00}).kind, EmulationKind::Unsupported);  // SSE movsd
  EXPECT_EQ(memory.write_count(), 0u);
  EXPECT_EQ(registers.rip, kCode);
}

}  // namespace
}  // namespace vmlab::full
