// The x86 holes as the translator writes them: the inline sequences for
// mov from a segment register, push fs/gs, sgdt, sidt, sldt, str, smsw,
// pushf and popf, decoded from the TC and checked against the scratch
// page's slots, the registers they borrow, the precise-state map and the
// one flag store of popf. What they compute is checked by running them
// (execution_test.cpp); lar, lsl, verr and verw stay call-outs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bt_test_support.hpp"

namespace vmlab::bt {
namespace {

using test_support::DecodedTc;
using test_support::state_at_guest;

class HoleTest : public test_support::CacheTest {
 protected:
  std::uint64_t slot_of(std::size_t offset) const { return slot(offset); }
  // The block's TC instructions up to its first int3 (exclusive).
  std::vector<DecodedTc> until_int3(GuestVirtAddr at) {
    std::vector<DecodedTc> code;
    for (DecodedTc each = tc(at, 1)[0]; each.mnemonic() != ZYDIS_MNEMONIC_INT3;
         each = tc(GuestVirtAddr(each.next()), 1)[0]) {
      code.push_back(each);
    }
    return code;
  }
};

TEST_F(HoleTest, RegisterFormsAreOneLoadFromTheirSlot) {
  struct Case {
    std::vector<std::uint8_t> bytes;
    std::size_t slot;
    ZydisMnemonic load;
    ZydisRegister destination;
    unsigned size;  // bits read from the slot
  };
  const Case cases[] = {
      {{0x66, 0x8c, 0xc0}, offsetof(ScratchPage, es), ZYDIS_MNEMONIC_MOV, ZYDIS_REGISTER_AX, 16},
      {{0x8c, 0xdb}, offsetof(ScratchPage, ds), ZYDIS_MNEMONIC_MOVZX, ZYDIS_REGISTER_EBX, 16},
      {{0x48, 0x8c, 0xe1}, offsetof(ScratchPage, fs), ZYDIS_MNEMONIC_MOVZX, ZYDIS_REGISTER_ECX, 16},
      {{0x41, 0x8c, 0xca},
       offsetof(ScratchPage, cs),
       ZYDIS_MNEMONIC_MOVZX,
       ZYDIS_REGISTER_R10D,
       16},
      {{0x49, 0x8c, 0xd3},
       offsetof(ScratchPage, ss),
       ZYDIS_MNEMONIC_MOVZX,
       ZYDIS_REGISTER_R11D,
       16},
      {{0x66, 0x41, 0x0f, 0x00, 0xc0},
       offsetof(ScratchPage, ldtr),
       ZYDIS_MNEMONIC_MOV,
       ZYDIS_REGISTER_R8W,
       16},
      {{0x41, 0x0f, 0x00, 0xc9},
       offsetof(ScratchPage, tr),
       ZYDIS_MNEMONIC_MOVZX,
       ZYDIS_REGISTER_R9D,
       16},
      {{0x49, 0x0f, 0x01, 0xe2},
       offsetof(ScratchPage, cr0),
       ZYDIS_MNEMONIC_MOV,
       ZYDIS_REGISTER_R10,
       64},
      {{0x0f, 0x01, 0xe0}, offsetof(ScratchPage, cr0), ZYDIS_MNEMONIC_MOV, ZYDIS_REGISTER_EAX, 32},
      {{0x66, 0x0f, 0x01, 0xe0},
       offsetof(ScratchPage, cr0),
       ZYDIS_MNEMONIC_MOV,
       ZYDIS_REGISTER_AX,
       16},
  };
  for (const Case& each : cases) {
    m_cache.flush();
    std::vector<std::uint8_t> bytes = each.bytes;
    bytes.insert(bytes.end(), {0x0f, 0x0b});  // ud2
    m_reader.put(kCode, bytes);
    const auto translated = m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader);
    ASSERT_TRUE(translated.ok()) << translated.error().message;
    const auto code = until_int3(*translated);
    ASSERT_EQ(code.size(), 1u) << code.front().text;
    const DecodedTc& load = code[0];
    EXPECT_EQ(load.mnemonic(), each.load) << load.text;
    EXPECT_EQ(load.operands[0].reg.value, each.destination) << load.text;
    EXPECT_EQ(load.operands[1].mem.base, ZYDIS_REGISTER_RIP) << load.text;
    EXPECT_EQ(load.operands[1].size, each.size) << load.text;
    EXPECT_EQ(load.target(1), slot_of(each.slot)) << load.text;
    EXPECT_EQ(state(load.address), state_at_guest(kCode)) << "every register the guest's";
    EXPECT_FALSE(m_cache.exit_at(GuestVirtAddr(load.address))) << "no exit";
  }
}

TEST_F(HoleTest, PushFsAndGsPushTheirSlot) {
  const GuestVirtAddr at =
      translate({0x0f, 0xa0, 0x66, 0x0f, 0xa8, 0x0f, 0x0b});  // push fs; pushw gs
  const auto code = until_int3(at);
  ASSERT_EQ(code.size(), 2u);
  EXPECT_EQ(code[0].mnemonic(), ZYDIS_MNEMONIC_PUSH);
  EXPECT_EQ(code[0].operands[0].size, 64) << code[0].text;
  EXPECT_EQ(code[0].target(0), slot_of(offsetof(ScratchPage, fs)));
  EXPECT_EQ(code[1].operands[0].size, 16) << code[1].text;
  EXPECT_EQ(code[1].target(0), slot_of(offsetof(ScratchPage, gs)));
  EXPECT_EQ(state(code[1].address), state_at_guest(kCode + 2));
}

TEST_F(HoleTest, MemoryFormsBorrowARegisterTheOperandDoesNotName) {
  struct Case {
    std::vector<std::uint8_t> bytes;
    ZydisRegister borrowed;
    std::size_t saved;
    ZydisRegister base;
    ZydisRegister segment = ZYDIS_REGISTER_DS;
  };
  const Case cases[] = {
      // mov [rax], es; mov [rax+rcx], ds; mov [rdx], ss; sldt [rcx+rdx]
      {{0x8c, 0x00}, ZYDIS_REGISTER_RCX, offsetof(ScratchPage, saved_rcx), ZYDIS_REGISTER_RAX},
      {{0x8c, 0x1c, 0x08},
       ZYDIS_REGISTER_RDX,
       offsetof(ScratchPage, saved_rdx),
       ZYDIS_REGISTER_RAX},
      {{0x8c, 0x12}, ZYDIS_REGISTER_RAX, offsetof(ScratchPage, saved_rax), ZYDIS_REGISTER_RDX},
      {{0x0f, 0x00, 0x04, 0x11},
       ZYDIS_REGISTER_RAX,
       offsetof(ScratchPage, saved_rax),
       ZYDIS_REGISTER_RCX},
      // mov [eax], es (an address-size prefix) and mov fs:[rax], es: the
      // store keeps both.
      {{0x67, 0x8c, 0x00},
       ZYDIS_REGISTER_RCX,
       offsetof(ScratchPage, saved_rcx),
       ZYDIS_REGISTER_EAX},
      {{0x64, 0x8c, 0x00},
       ZYDIS_REGISTER_RCX,
       offsetof(ScratchPage, saved_rcx),
       ZYDIS_REGISTER_RAX,
       ZYDIS_REGISTER_FS},
  };
  for (const Case& each : cases) {
    m_cache.flush();
    std::vector<std::uint8_t> bytes = each.bytes;
    bytes.insert(bytes.end(), {0x0f, 0x0b});
    m_reader.put(kCode, bytes);
    const auto translated = m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader);
    ASSERT_TRUE(translated.ok()) << translated.error().message;
    const auto code = until_int3(*translated);
    ASSERT_EQ(code.size(), 4u);
    // mov [saved], r; mov r, [slot]; mov <operand>, r16; mov r, [saved]
    EXPECT_EQ(code[0].operands[1].reg.value, each.borrowed) << code[0].text;
    EXPECT_EQ(code[0].target(0), slot_of(each.saved)) << code[0].text;
    EXPECT_EQ(code[2].operands[0].type, ZYDIS_OPERAND_TYPE_MEMORY) << code[2].text;
    EXPECT_EQ(code[2].operands[0].size, 16) << "16 bits whatever the operand size";
    EXPECT_EQ(code[2].operands[0].mem.base, each.base) << code[2].text;
    EXPECT_EQ(code[2].operands[0].mem.segment, each.segment) << code[2].text;
    EXPECT_EQ(
        ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, code[2].operands[1].reg.value),
        each.borrowed);
    EXPECT_EQ(code[3].target(1), slot_of(each.saved)) << code[3].text;
    GuestState lent = state_at_guest(kCode);
    lent.rax_in_slot = each.borrowed == ZYDIS_REGISTER_RAX;
    lent.rcx_in_slot = each.borrowed == ZYDIS_REGISTER_RCX;
    lent.rdx_in_slot = each.borrowed == ZYDIS_REGISTER_RDX;
    EXPECT_EQ(state(code[0].address), state_at_guest(kCode));
    EXPECT_EQ(state(code[1].address), lent);
    EXPECT_EQ(state(code[2].address), lent) << "a fault of the store is the guest's, before it";
    GuestState done = lent;
    done.rip = GuestVirtAddr(kCode + each.bytes.size());
    EXPECT_EQ(state(code[3].address), done) << "completed, the register still lent";
  }
}

TEST_F(HoleTest, SgdtStoresTheLimitThenTheBaseTwoBytesOn) {
  // sgdt [rip+0x100]: the operand made absolute, the base at it + 2.
  const GuestVirtAddr at = translate({0x0f, 0x01, 0x05, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x0b});
  const auto code = until_int3(at);
  ASSERT_EQ(code.size(), 6u);
  const std::uint64_t operand = kCode + 7 + 0x100;
  EXPECT_EQ(code[1].target(1), slot_of(offsetof(ScratchPage, gdtr_limit)));
  EXPECT_EQ(code[2].operands[0].size, 16);
  EXPECT_EQ(static_cast<std::uint64_t>(code[2].operands[0].mem.disp.value), operand);
  EXPECT_EQ(code[2].operands[0].mem.base, ZYDIS_REGISTER_NONE);
  EXPECT_EQ(code[3].target(1), slot_of(offsetof(ScratchPage, gdtr_base)));
  EXPECT_EQ(code[4].operands[0].size, 64);
  EXPECT_EQ(static_cast<std::uint64_t>(code[4].operands[0].mem.disp.value), operand + 2);
  EXPECT_EQ(state(code[4].address).rip.value(), kCode) << "between the stores: before sgdt";
}

TEST_F(HoleTest, AnOperandTheTranslationCannotEncodeStaysACallOut) {
  // sgdt [rax+0x7fffffff]: the base's displacement, + 2, does not fit.
  const GuestVirtAddr at = translate({0x0f, 0x01, 0x80, 0xff, 0xff, 0xff, 0x7f, 0x0f, 0x0b});
  const auto site = m_cache.exit_at(at);
  ASSERT_TRUE(site && std::holds_alternative<CallOut>(*site));
  EXPECT_EQ(std::get<CallOut>(*site).reason, CallOutReason::kSystemTableRead);
  EXPECT_EQ(std::get<CallOut>(*site).mnemonic, "sgdt");
}

TEST_F(HoleTest, PopfHasOneFlagStoreItsCommit) {
  const GuestVirtAddr at = translate({0x9d, 0x90, 0x0f, 0x0b});  // popfq; nop; ud2
  const auto code = until_int3(at);
  ASSERT_EQ(code.size(), 18u) << "17 for popfq, then the nop";
  std::size_t stores = 0;
  for (std::size_t index = 0; index + 1 < code.size(); ++index) {
    const auto store = m_cache.flag_store_at(GuestVirtAddr(code[index].address));
    if (!store) continue;
    ++stores;
    EXPECT_EQ(code[index].mnemonic(), ZYDIS_MNEMONIC_MOV) << code[index].text;
    EXPECT_EQ(code[index].target(0), m_layout.interrupt_flag_address().value());
    EXPECT_EQ(code[index].operands[1].reg.value, ZYDIS_REGISTER_AL);
    EXPECT_EQ(store->value, VirtualFlagStore::Value::kRegisterAl);
    monitor::GuestRegisters real;
    real.rax = 0xff01;
    EXPECT_TRUE(store->interrupts_enabled(real));
    real.rax = 0xff00;
    EXPECT_FALSE(store->interrupts_enabled(real)) << "al only";
    EXPECT_FALSE(store->opens_interrupt_shadow);
    EXPECT_EQ(store->guest_rip.value(), kCode);
    EXPECT_EQ(store->next_guest_rip.value(), kCode + 1);
    EXPECT_EQ(store->resume_address.value(), code[index + 1].address);
    EXPECT_EQ(state(code[index].address).rip.value(), kCode) << "not done before its commit";
    EXPECT_TRUE(state(code[index].address).virtual_flags_ahead);
    EXPECT_EQ(state(code[index + 1].address).rip.value(), kCode + 1) << "done after it";
    EXPECT_FALSE(state(code[index + 1].address).virtual_flags_ahead);
  }
  EXPECT_EQ(stores, 1u);
  // The test of TF branches out of line, to the call-out popfq was.
  const auto branch = std::find_if(code.begin(), code.end(), [](const DecodedTc& each) {
    return each.mnemonic() == ZYDIS_MNEMONIC_JNZ;
  });
  ASSERT_NE(branch, code.end());
  const auto site =
      m_cache.exit_at(GuestVirtAddr(tc(GuestVirtAddr(branch->target()), 3)[2].address));
  ASSERT_TRUE(site && std::holds_alternative<CallOut>(*site));
  EXPECT_EQ(std::get<CallOut>(*site).reason, CallOutReason::kFlagsWrite);
  EXPECT_EQ(std::get<CallOut>(*site).mnemonic, "popfq");
}

TEST_F(HoleTest, PushfAndPopfNeverLeaveTheRealFlagsWithTheGuestsIfIoplOrAc) {
  // Every popf/popfq the sequences execute loads the guest's image masked
  // of TF and AC (what the CPU itself ignores at CPL3 aside), or the real
  // flags pushfq kept.
  const GuestVirtAddr at = translate({0x9d, 0x66, 0x9d, 0x9c, 0x66, 0x9c, 0x0f, 0x0b});
  const auto code = until_int3(at);
  std::size_t images = 0;
  for (std::size_t index = 0; index < code.size(); ++index) {
    if (code[index].mnemonic() != ZYDIS_MNEMONIC_AND || code[index].operands[0].size < 32 ||
        code[index].operands[0].type != ZYDIS_OPERAND_TYPE_REGISTER ||
        code[index].operands[1].type != ZYDIS_OPERAND_TYPE_IMMEDIATE) {
      continue;
    }
    const std::uint64_t mask = code[index].operands[1].imm.value.u;
    // The image's mask before the real popf: what popf loads, AC aside.
    if (mask == 0x207fd5 || mask == 0x7fd5) ++images;
    if (mask & 0x4000) {
      EXPECT_EQ(mask & (1u << 18), 0u) << "no AC: " << code[index].text;
    }
  }
  EXPECT_EQ(images, 2u) << "popfq's and popf's";
}

TEST_F(HoleTest, TheListingSaysWhatEachHoleBecame) {
  translate({0x9c,              // pushfq
             0x9d,              // popfq
             0x8c, 0xd8,        // mov eax, ds
             0x0f, 0x01, 0x00,  // sgdt [rax]
             0x0f, 0x02, 0xc1,  // lar eax, ecx
             0x0f, 0x0b});
  const std::string listing = m_cache.listing();
  for (const char* expected :
       {"pushfq: the real flags with the virtual IF", "popfq: the flags; IF to the flag byte",
        "TF set: call-out", "mov: the virtual ds selector from the scratch page, no exit",
        "sgdt: the virtual GDTR from the scratch page, no exit (rcx borrowed",
        "call-out: rare: lar (segment check", "(out of line, for the popfq at 0x100001)",
        "its image sets TF"}) {
    EXPECT_NE(listing.find(expected), std::string::npos) << expected << " in\n" << listing;
  }
}

TEST_F(HoleTest, CallOutsOfMovPushAndPopAreCountedByWhatTheyMove) {
  // mov cr3, rax; mov ds, ax; pop gs; ud2
  const GuestVirtAddr at = translate({0x0f, 0x22, 0xd8, 0x8e, 0xd8, 0x0f, 0xa9, 0x0f, 0x0b});
  for (std::uint64_t offset = 0; offset < 3; ++offset)
    ASSERT_TRUE(m_cache.take_exit(at + offset));
  const auto& counted = m_cache.statistics().call_outs;
  EXPECT_EQ(counted.at("mov cr"), 1u);
  EXPECT_EQ(counted.at("mov sreg"), 1u);
  EXPECT_EQ(counted.at("pop sreg"), 1u);
}

}  // namespace
}  // namespace vmlab::bt
