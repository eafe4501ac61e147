// The translator, instruction class by instruction class: guest bytes in,
// the TC's bytes decoded with Zydis and checked, with the exit sites and the
// precise-state map of every TC instruction.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "bt_test_support.hpp"

namespace vmlab::bt {
namespace {

using test_support::decode_one;
using test_support::DecodedTc;
using test_support::state_at_guest;

class TranslatorTest : public test_support::CacheTest {};

TEST_F(TranslatorTest, InnocuousInstructionsAreCopiedByteForByte) {
  const std::vector<std::vector<std::uint8_t>> guest = {
      {0x48, 0x89, 0xd8},                                      // mov rax, rbx
      {0x48, 0x83, 0xc0, 0x05},                                // add rax, 5
      {0x48, 0x0f, 0xaf, 0xc1},                                // imul rax, rcx
      {0x48, 0xf7, 0xf1},                                      // div rcx
      {0xf3, 0xa4},                                            // rep movsb
      {0xf0, 0x48, 0x0f, 0xc1, 0x03},                          // lock xadd [rbx], rax
      {0x53},                                                  // push rbx
      {0x5d},                                                  // pop rbp
      {0x0f, 0x31},                                            // rdtsc
      {0x0f, 0x94, 0xc0},                                      // setz al
      {0x48, 0x0f, 0x44, 0xc2},                                // cmovz rax, rdx
      {0x48, 0x0f, 0xba, 0xe8, 0x03},                          // bts rax, 3
      {0x65, 0x48, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00},  // mov rax, gs:[0x10]
      {0x0f, 0xae, 0xe8},                                      // lfence
      {0xf3, 0x90},                                            // pause
      {0x48, 0x99},                                            // cqo
      {0x0f, 0x0b},                                            // ud2: ends the block
  };
  std::vector<std::uint8_t> bytes;
  for (const auto& instruction : guest)
    bytes.insert(bytes.end(), instruction.begin(), instruction.end());
  m_reader.put(kCode, bytes);
  auto translated = m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader);
  ASSERT_TRUE(translated.ok()) << translated.error().message;

  const auto code = tc(*translated, guest.size());
  std::uint64_t guest_rip = kCode;
  for (std::size_t index = 0; index + 1 < guest.size(); ++index) {
    EXPECT_EQ(code[index].bytes, guest[index]) << code[index].text;
    EXPECT_EQ(state(code[index].address), state_at_guest(guest_rip)) << code[index].text;
    guest_rip += guest[index].size();
  }
  EXPECT_EQ(code.back().mnemonic(), ZYDIS_MNEMONIC_INT3) << "ud2 is a call-out";
  EXPECT_EQ(m_cache.statistics().guest_instructions_translated, guest.size());
}

TEST_F(TranslatorTest, RipRelativeOperandsBecomeTheAbsoluteGuestAddress) {
  const GuestVirtAddr at = translate({
      0x48, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00,                    // mov rax, [rip+0x100]
      0xc7, 0x05, 0x20, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,  // mov dword [rip+0x20], 5
      0x48, 0x8d, 0x3d, 0xf0, 0xff, 0xff, 0xff,                    // lea rdi, [rip-0x10]
      0xf0, 0x48, 0xff, 0x05, 0x08, 0x00, 0x00, 0x00,              // lock inc qword [rip+8]
      0x0f, 0x0b,                                                  // ud2
  });
  const auto code = tc(at, 4);
  // Each absolute address is the guest's: the end of the guest instruction
  // plus its displacement (Intel SDM vol. 2A, 2.2.1.6).
  const struct {
    ZydisMnemonic mnemonic;
    std::size_t memory_operand;
    std::uint64_t absolute;
  } expected[] = {
      {ZYDIS_MNEMONIC_MOV, 1, kCode + 7 + 0x100},
      {ZYDIS_MNEMONIC_MOV, 0, kCode + 17 + 0x20},
      {ZYDIS_MNEMONIC_LEA, 1, kCode + 24 - 0x10},
      {ZYDIS_MNEMONIC_INC, 0, kCode + 32 + 8},
  };
  for (std::size_t index = 0; index < 4; ++index) {
    const DecodedTc& instruction = code[index];
    const ZydisDecodedOperand& memory = instruction.operands[expected[index].memory_operand];
    EXPECT_EQ(instruction.mnemonic(), expected[index].mnemonic) << instruction.text;
    ASSERT_EQ(memory.type, ZYDIS_OPERAND_TYPE_MEMORY) << instruction.text;
    EXPECT_EQ(memory.mem.base, ZYDIS_REGISTER_NONE) << instruction.text;
    EXPECT_EQ(memory.mem.index, ZYDIS_REGISTER_NONE) << instruction.text;
    EXPECT_EQ(static_cast<std::uint64_t>(memory.mem.disp.value), expected[index].absolute)
        << instruction.text;
  }
  EXPECT_EQ(code[1].operands[1].imm.value.u, 5u) << "the immediate survives";
  EXPECT_TRUE(code[3].instruction.attributes & ZYDIS_ATTRIB_HAS_LOCK) << "the lock survives";
  EXPECT_EQ(state(code[2].address), state_at_guest(kCode + 17));
}

TEST_F(TranslatorTest, RipRelativeTargetsBeyondTwoGibibytesAreRefused) {
  const std::uint64_t high = 0x100000000;  // a kernel linked at 4 GiB
  const Error error = translation_error({0x48, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00}, high);
  EXPECT_EQ(error.kind, TranslationError::kRipRelativeOutOfReach);
  EXPECT_NE(error.message.find("0x100000007"), std::string::npos) << error.message;
}

TEST_F(TranslatorTest, CliAndStiAreOneStoreToTheVirtualInterruptFlag) {
  const GuestVirtAddr at = translate({0xfa, 0xfb, 0x0f, 0x0b});  // cli; sti; ud2
  const auto code = tc(at, 2);
  for (std::size_t index = 0; index < 2; ++index) {
    const DecodedTc& store = code[index];
    EXPECT_EQ(store.mnemonic(), ZYDIS_MNEMONIC_MOV) << store.text;
    EXPECT_EQ(store.instruction.length, 7) << "mov byte [rip+d32], imm8: " << store.text;
    ASSERT_EQ(store.operands[0].type, ZYDIS_OPERAND_TYPE_MEMORY);
    EXPECT_EQ(store.operands[0].mem.base, ZYDIS_REGISTER_RIP);
    EXPECT_EQ(store.operands[0].size, 8) << "one byte";
    EXPECT_EQ(store.target(0), m_layout.interrupt_flag_address().value());
    EXPECT_EQ(store.operands[1].imm.value.u, index) << "cli stores 0, sti 1";
    EXPECT_EQ(state(store.address), state_at_guest(kCode + index));
  }
  const auto cli = m_cache.flag_store_at(GuestVirtAddr(code[0].address));
  const auto sti = m_cache.flag_store_at(GuestVirtAddr(code[1].address));
  ASSERT_TRUE(cli && sti);
  const monitor::GuestRegisters any;
  EXPECT_EQ(cli->value, VirtualFlagStore::Value::kZero);
  EXPECT_FALSE(cli->interrupts_enabled(any));
  EXPECT_FALSE(cli->opens_interrupt_shadow);
  EXPECT_EQ(cli->mnemonic, "cli");
  EXPECT_EQ(sti->value, VirtualFlagStore::Value::kOne);
  EXPECT_TRUE(sti->interrupts_enabled(any));
  EXPECT_TRUE(sti->opens_interrupt_shadow) << "sti's one-instruction shadow";
  EXPECT_EQ(sti->guest_rip.value(), kCode + 1);
  EXPECT_EQ(sti->next_guest_rip.value(), kCode + 2);
  EXPECT_EQ(sti->resume_address.value(), code[1].next());
  EXPECT_FALSE(m_cache.flag_store_at(GuestVirtAddr(code[1].next()))) << "ud2's int3";
}

TEST_F(TranslatorTest, ConditionalJumpsBecomeJccRel32AndAJumpForTheFallThrough) {
  for (const auto& [bytes, taken] : {
           std::tuple{std::vector<std::uint8_t>{0x74, 0x10}, kCode + 2 + 0x10},  // jz rel8
           std::tuple{std::vector<std::uint8_t>{0x0f, 0x8c, 0x00, 0x01, 0x00, 0x00},
                      kCode + 0x1000 + 6 + 0x100},  // jl rel32
       }) {
    m_cache.flush();
    const std::uint64_t at = taken > kCode + 0x100 ? kCode + 0x1000 : kCode;
    m_reader.put(at, bytes);
    auto translated = m_cache.lookup_or_translate(GuestVirtAddr(at), m_reader);
    ASSERT_TRUE(translated.ok()) << translated.error().message;
    const auto code = tc(*translated, 4);
    const std::uint64_t fall_through = at + bytes.size();
    EXPECT_EQ(code[0].mnemonic(), bytes.size() == 2 ? ZYDIS_MNEMONIC_JZ : ZYDIS_MNEMONIC_JL);
    EXPECT_EQ(code[0].instruction.raw.imm[0].size, 32) << "rel32, patchable: " << code[0].text;
    EXPECT_EQ(code[1].mnemonic(), ZYDIS_MNEMONIC_JMP);
    EXPECT_EQ(code[1].instruction.raw.imm[0].size, 32);
    EXPECT_EQ(branch_exit(code[0].target()).guest_target.value(), taken);
    EXPECT_EQ(branch_exit(code[1].target()).guest_target.value(), fall_through);
    EXPECT_EQ(branch_exit(code[0].target()).patch_site.value(), code[0].next() - 4);
    // Before the jcc: at it. After it (not taken): at the fall-through. At
    // an exit site: at the target.
    EXPECT_EQ(state(code[0].address), state_at_guest(at));
    EXPECT_EQ(state(code[1].address), state_at_guest(fall_through));
    EXPECT_EQ(state(code[0].target()), state_at_guest(taken));
    EXPECT_EQ(code[2].mnemonic(), ZYDIS_MNEMONIC_INT3);
  }
}

TEST_F(TranslatorTest, DirectJumpsBecomeJmpRel32ToAnExitSite) {
  const GuestVirtAddr at = translate({0xeb, 0xfe});  // jmp $ (rel8)
  const auto code = tc(at, 2);
  EXPECT_EQ(code[0].mnemonic(), ZYDIS_MNEMONIC_JMP);
  EXPECT_EQ(code[0].instruction.length, 5);
  // Its target is its own block, which exists once translated: chained at once.
  EXPECT_EQ(code[0].target(), at.value()) << "a loop to itself is chained when translated";
  EXPECT_EQ(m_cache.statistics().chained_branches, 1u);
  EXPECT_EQ(branch_exit(code[1].address).guest_target.value(), kCode);
}

TEST_F(TranslatorTest, LoopAndJrcxzKeepTheirRel8AimedAtTheTakenJump) {
  for (const std::vector<std::uint8_t>& bytes : {std::vector<std::uint8_t>{0xe2, 0xfe},  // loop $
                                                 std::vector<std::uint8_t>{0x67, 0xe3, 0x10}}) {
    m_cache.flush();
    const std::uint64_t at = kCode + 0x2000;
    m_reader.put(at, bytes);
    auto translated = m_cache.lookup_or_translate(GuestVirtAddr(at), m_reader);
    ASSERT_TRUE(translated.ok()) << translated.error().message;
    const auto code = tc(*translated, 3);
    const std::uint64_t fall_through = at + bytes.size();
    const std::uint64_t taken =
        fall_through + static_cast<std::uint64_t>(static_cast<std::int8_t>(bytes.back()));
    EXPECT_EQ(code[0].mnemonic(), bytes.size() == 2 ? ZYDIS_MNEMONIC_LOOP : ZYDIS_MNEMONIC_JECXZ);
    EXPECT_EQ(code[0].bytes.size(), bytes.size()) << "prefixes kept: " << code[0].text;
    EXPECT_EQ(code[0].target(), code[2].address) << "taken: over the fall-through jmp";
    EXPECT_EQ(code[1].mnemonic(), ZYDIS_MNEMONIC_JMP);
    EXPECT_EQ(code[2].mnemonic(), ZYDIS_MNEMONIC_JMP);
    EXPECT_EQ(state(code[1].address), state_at_guest(fall_through));
    EXPECT_EQ(state(code[2].address), state_at_guest(taken));
    if (taken == at) {
      EXPECT_EQ(code[2].target(), translated->value()) << "loop $ chains to its own block";
    } else {
      EXPECT_EQ(branch_exit(code[2].target()).guest_target.value(), taken);
    }
    EXPECT_EQ(branch_exit(code[1].target()).guest_target.value(), fall_through);
  }
}

TEST_F(TranslatorTest, CallPushesTheGuestReturnAddressThenJumps) {
  const GuestVirtAddr at = translate({0xe8, 0x00, 0x01, 0x00, 0x00});  // call +0x100
  const auto code = tc(at, 3);
  EXPECT_EQ(code[0].mnemonic(), ZYDIS_MNEMONIC_PUSH);
  EXPECT_EQ(code[0].operands[0].type, ZYDIS_OPERAND_TYPE_IMMEDIATE);
  EXPECT_EQ(code[0].operands[0].imm.value.u, kCode + 5) << "the guest's return address";
  EXPECT_EQ(code[1].mnemonic(), ZYDIS_MNEMONIC_JMP);
  EXPECT_EQ(branch_exit(code[1].target()).guest_target.value(), kCode + 5 + 0x100);
  EXPECT_EQ(state(code[0].address), state_at_guest(kCode)) << "a fault on the push: at the call";
  EXPECT_EQ(state(code[1].address), state_at_guest(kCode + 0x105)) << "pushed: at the target";
}

TEST_F(TranslatorTest, CallAboveTwoGibibytesPushesWithTwoStores) {
  const std::uint64_t high = 0x123400000;
  const GuestVirtAddr at = translate({0xe8, 0x00, 0x00, 0x00, 0x00}, high);
  const auto code = tc(at, 4);
  EXPECT_EQ(code[0].mnemonic(), ZYDIS_MNEMONIC_LEA) << code[0].text;
  EXPECT_EQ(code[0].operands[0].reg.value, ZYDIS_REGISTER_RSP);
  EXPECT_EQ(code[0].operands[1].mem.disp.value, -8);
  EXPECT_EQ(code[1].mnemonic(), ZYDIS_MNEMONIC_MOV) << code[1].text;
  EXPECT_EQ(code[1].operands[0].mem.disp.value, 0);
  EXPECT_EQ(code[1].operands[1].imm.value.u, 0x23400005u);
  EXPECT_EQ(code[2].operands[0].mem.disp.value, 4) << code[2].text;
  EXPECT_EQ(code[2].operands[1].imm.value.u, 0x1u);
  GuestState pushing = state_at_guest(high);
  EXPECT_EQ(state(code[0].address), pushing);
  pushing.rsp_adjustment = 8;  // a fault in a store reports the call, with the guest's RSP
  EXPECT_EQ(state(code[1].address), pushing);
  EXPECT_EQ(state(code[2].address), pushing);
  EXPECT_EQ(state(code[3].address), state_at_guest(high + 5));
}

TEST_F(TranslatorTest, RetTakesTheTargetIntoRcxAndGoesToTheLookupRoutine) {
  const GuestVirtAddr at = translate({0xc2, 0x10, 0x00});  // ret 0x10
  const auto code = tc(at, 4);
  EXPECT_EQ(code[0].mnemonic(), ZYDIS_MNEMONIC_MOV) << code[0].text;
  EXPECT_EQ(code[0].target(0), slot(offsetof(ScratchPage, saved_rcx)));
  EXPECT_EQ(code[0].operands[1].reg.value, ZYDIS_REGISTER_RCX);
  EXPECT_EQ(code[1].mnemonic(), ZYDIS_MNEMONIC_POP);
  EXPECT_EQ(code[1].operands[0].reg.value, ZYDIS_REGISTER_RCX);
  EXPECT_EQ(code[2].mnemonic(), ZYDIS_MNEMONIC_LEA) << code[2].text;
  EXPECT_EQ(code[2].operands[1].mem.disp.value, 0x10);
  EXPECT_EQ(code[3].mnemonic(), ZYDIS_MNEMONIC_JMP);
  EXPECT_EQ(code[3].target(), m_cache.lookup_routine().value());

  GuestState saved = state_at_guest(kCode);
  EXPECT_EQ(state(code[0].address), saved);
  saved.rcx_in_slot = true;
  EXPECT_EQ(state(code[1].address), saved) << "a fault on the pop: at the ret";
  EXPECT_EQ(state(code[2].address), target_in_rcx(0x10)) << "popped: the ret has completed";
  EXPECT_EQ(state(code[3].address), target_in_rcx());
}

TEST_F(TranslatorTest, IndirectJumpsAndCallsLoadTheirOperandIntoRcxFirst) {
  const struct {
    std::vector<std::uint8_t> bytes;
    bool is_call;
  } cases[] = {
      {{0xff, 0xe0}, false},                         // jmp rax
      {{0xff, 0x61, 0x08}, false},                   // jmp [rcx+8]: rcx is still the guest's
      {{0xff, 0x54, 0x24, 0x08}, true},              // call [rsp+8]: before the push
      {{0x65, 0xff, 0x20}, false},                   // jmp gs:[rax]
      {{0xff, 0x15, 0x00, 0x10, 0x00, 0x00}, true},  // call [rip+0x1000]
  };
  for (const auto& each : cases) {
    m_cache.flush();
    m_reader.put(kCode, each.bytes);
    auto translated = m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader);
    ASSERT_TRUE(translated.ok()) << translated.error().message;
    const auto code = tc(*translated, each.is_call ? 4 : 3);
    const DecodedTc guest = decode_one(each.bytes, kCode);
    const ZydisDecodedOperand& original = guest.operands[0];
    const DecodedTc& load = code[1];
    EXPECT_EQ(code[0].target(0), slot(offsetof(ScratchPage, saved_rcx))) << code[0].text;
    EXPECT_EQ(load.mnemonic(), ZYDIS_MNEMONIC_MOV) << load.text;
    EXPECT_EQ(load.operands[0].reg.value, ZYDIS_REGISTER_RCX) << load.text;
    ASSERT_EQ(load.operands[1].type, original.type) << load.text;
    if (original.type == ZYDIS_OPERAND_TYPE_REGISTER) {
      EXPECT_EQ(load.operands[1].reg.value, original.reg.value) << load.text;
    } else if (original.mem.base == ZYDIS_REGISTER_RIP) {
      EXPECT_EQ(load.operands[1].mem.base, ZYDIS_REGISTER_NONE) << load.text;
      EXPECT_EQ(static_cast<std::uint64_t>(load.operands[1].mem.disp.value),
                kCode + each.bytes.size() + 0x1000)
          << load.text;
    } else {
      EXPECT_EQ(load.operands[1].mem.base, original.mem.base) << load.text;
      EXPECT_EQ(load.operands[1].mem.disp.value, original.mem.disp.value) << load.text;
      EXPECT_EQ(load.operands[1].mem.segment, original.mem.segment) << load.text;
    }
    std::size_t next = 2;
    if (each.is_call) {
      EXPECT_EQ(code[2].mnemonic(), ZYDIS_MNEMONIC_PUSH) << code[2].text;
      EXPECT_EQ(code[2].operands[0].imm.value.u, kCode + each.bytes.size());
      GuestState pushing = state_at_guest(kCode);
      pushing.rcx_in_slot = true;
      EXPECT_EQ(state(code[2].address), pushing);
      next = 3;
    }
    EXPECT_EQ(code[next].mnemonic(), ZYDIS_MNEMONIC_JMP);
    EXPECT_EQ(code[next].target(), m_cache.lookup_routine().value());
    EXPECT_EQ(state(code[next].address), target_in_rcx());
  }
}

// Every call-out class: an int3 the VMM learns about from exit_at.
struct CallOutCase {
  std::vector<std::uint8_t> bytes;
  const char* mnemonic;
  CallOutReason reason;
  bool ends_block;
};

class CallOutTest : public TranslatorTest, public ::testing::WithParamInterface<CallOutCase> {};

TEST_P(CallOutTest, IsAnInt3ThatExitAtDescribes) {
  const CallOutCase& each = GetParam();
  std::vector<std::uint8_t> bytes = each.bytes;
  bytes.push_back(0x90);  // nop
  bytes.push_back(0x0f);  // ud2
  bytes.push_back(0x0b);
  m_reader.put(kCode, bytes);
  auto translated = m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader);
  ASSERT_TRUE(translated.ok()) << translated.error().message;
  const auto code = tc(*translated, 2);
  EXPECT_EQ(code[0].mnemonic(), ZYDIS_MNEMONIC_INT3);
  const auto site = m_cache.exit_at(*translated);
  ASSERT_TRUE(site && std::holds_alternative<CallOut>(*site));
  const CallOut& call_out = std::get<CallOut>(*site);
  EXPECT_EQ(call_out.guest_rip.value(), kCode);
  EXPECT_EQ(call_out.length, each.bytes.size());
  EXPECT_EQ(call_out.mnemonic, each.mnemonic);
  EXPECT_EQ(call_out.reason, each.reason) << to_string(call_out.reason);
  EXPECT_EQ(state(code[0].address), state_at_guest(kCode)) << "every register the guest's";
  const GuestVirtAddr resume = TranslationCache::resume_after(call_out);
  EXPECT_EQ(resume.value(), code[1].address);
  if (each.ends_block) {
    EXPECT_FALSE(m_cache.guest_state_at(resume)) << "nothing after it in the block";
  } else {
    EXPECT_EQ(code[1].bytes, std::vector<std::uint8_t>{0x90}) << "the block goes on";
    EXPECT_EQ(state(resume.value()), state_at_guest(kCode + each.bytes.size()));
  }
}

INSTANTIATE_TEST_SUITE_P(
    EveryClass, CallOutTest,
    ::testing::Values(
        CallOutCase{{0xec}, "in", CallOutReason::kPortIo, false},
        CallOutCase{{0xee}, "out", CallOutReason::kPortIo, false},
        CallOutCase{{0xf3, 0x6c}, "insb", CallOutReason::kPortIo, false},
        CallOutCase{{0x0f, 0x22, 0xd8}, "mov", CallOutReason::kControlRegister, false},  // cr3
        CallOutCase{{0x0f, 0x20, 0xc0}, "mov", CallOutReason::kControlRegister, false},  // ←cr0
        CallOutCase{{0x0f, 0x06}, "clts", CallOutReason::kControlRegister, false},
        CallOutCase{{0x0f, 0x01, 0xf0}, "lmsw", CallOutReason::kControlRegister, false},
        CallOutCase{{0x0f, 0x23, 0xf8}, "mov", CallOutReason::kDebugRegister, false},  // dr7
        CallOutCase{{0x0f, 0x32}, "rdmsr", CallOutReason::kModelSpecificRegister, false},
        CallOutCase{{0x0f, 0x30}, "wrmsr", CallOutReason::kModelSpecificRegister, false},
        CallOutCase{{0x0f, 0x01, 0x10}, "lgdt", CallOutReason::kDescriptorTableLoad, false},
        CallOutCase{{0x0f, 0x01, 0x18}, "lidt", CallOutReason::kDescriptorTableLoad, false},
        CallOutCase{{0x0f, 0x00, 0xd0}, "lldt", CallOutReason::kDescriptorTableLoad, false},
        CallOutCase{{0x0f, 0x00, 0xd8}, "ltr", CallOutReason::kDescriptorTableLoad, false},
        CallOutCase{{0x8e, 0xd8}, "mov", CallOutReason::kSegmentLoad, false},  // mov ds, ax
        CallOutCase{{0x0f, 0xa9}, "pop", CallOutReason::kSegmentLoad, false},  // pop gs
        CallOutCase{{0x0f, 0x01, 0x38}, "invlpg", CallOutReason::kTlbInvalidation, false},
        CallOutCase{{0x0f, 0x09}, "wbinvd", CallOutReason::kCacheControl, false},
        CallOutCase{{0x0f, 0x08}, "invd", CallOutReason::kCacheControl, false},
        CallOutCase{{0xf4}, "hlt", CallOutReason::kHalt, false},
        CallOutCase{{0x0f, 0xa2}, "cpuid", CallOutReason::kCpuid, false},
        CallOutCase{{0x0f, 0x01, 0xf8}, "swapgs", CallOutReason::kSwapgs, false},
        CallOutCase{{0x0f, 0x33}, "rdpmc", CallOutReason::kPerformanceCounter, false},
        CallOutCase{{0x48, 0xcf}, "iretq", CallOutReason::kInterruptReturn, true},
        CallOutCase{{0xcb}, "ret", CallOutReason::kFarTransfer, true},        // far ret
        CallOutCase{{0xff, 0x28}, "jmp", CallOutReason::kFarTransfer, true},  // jmp far [rax]
        CallOutCase{{0x0f, 0x05}, "syscall", CallOutReason::kSystemCall, true},
        CallOutCase{{0x48, 0x0f, 0x07}, "sysret", CallOutReason::kSystemCall, true},
        CallOutCase{{0xcc}, "int3", CallOutReason::kSoftwareInterrupt, true},
        CallOutCase{{0xcd, 0x80}, "int", CallOutReason::kSoftwareInterrupt, true},
        CallOutCase{{0x0f, 0x0b}, "ud2", CallOutReason::kInvalidInstruction, true},
        // The holes but these are inline (hole_test.cpp).
        CallOutCase{{0x0f, 0x02, 0xc1}, "lar", CallOutReason::kSegmentCheck, false},
        CallOutCase{{0x0f, 0x03, 0xc1}, "lsl", CallOutReason::kSegmentCheck, false},
        CallOutCase{{0x0f, 0x00, 0xe0}, "verr", CallOutReason::kSegmentCheck, false},
        CallOutCase{{0x0f, 0x00, 0xe8}, "verw", CallOutReason::kSegmentCheck, false}));

TEST_F(TranslatorTest, BytesThatAreNoInstructionAreAnInvalidInstructionCallOut) {
  const GuestVirtAddr at = translate({0x06});  // push es: invalid in 64-bit mode
  const auto site = m_cache.exit_at(at);
  ASSERT_TRUE(site && std::holds_alternative<CallOut>(*site));
  EXPECT_EQ(std::get<CallOut>(*site).reason, CallOutReason::kInvalidInstruction);
  EXPECT_EQ(std::get<CallOut>(*site).length, 0) << "the VMM reflects #UD at the guest RIP";
}

class UnknownInstructionTest
    : public TranslatorTest,
      public ::testing::WithParamInterface<std::tuple<std::vector<std::uint8_t>, std::string>> {};

TEST_P(UnknownInstructionTest, StopsWithTheBytesAndTheGuestRip) {
  const auto& [bytes, text] = GetParam();
  m_reader.put(kCode + 0x40, bytes);
  auto translated = m_cache.lookup_or_translate(GuestVirtAddr(kCode + 0x40), m_reader);
  ASSERT_FALSE(translated.ok());
  EXPECT_EQ(translated.error().kind, TranslationError::kUnknownInstruction);
  EXPECT_NE(translated.error().message.find(text), std::string::npos) << translated.error().message;
  EXPECT_NE(translated.error().message.find("0x100040"), std::string::npos)
      << translated.error().message;
  EXPECT_EQ(m_cache.statistics().blocks_translated, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    NotOnAnyList, UnknownInstructionTest,
    ::testing::Values(
        std::tuple{std::vector<std::uint8_t>{0x0f, 0x58, 0xc1}, "0f 58 c1"},  // addps
        std::tuple{std::vector<std::uint8_t>{0x0f, 0x01, 0xd0}, "0f 01 d0"},  // xgetbv
        std::tuple{std::vector<std::uint8_t>{0x0f, 0x01, 0xc1}, "vmcall"},
        std::tuple{std::vector<std::uint8_t>{0xd9, 0xc0}, "d9 c0"},  // fld st0
        // movsd xmm0, xmm1: the string movsd's mnemonic, SSE operands
        std::tuple{std::vector<std::uint8_t>{0xf2, 0x0f, 0x10, 0xc1}, "xmm0"},
        std::tuple{std::vector<std::uint8_t>{0xf3, 0x48, 0x0f, 0xae, 0xd0}, "wrfsbase"},
        // jmp rel16, ret16: Intel and AMD disagree
        std::tuple{std::vector<std::uint8_t>{0x66, 0xc3}, "66 c3"},
        std::tuple{std::vector<std::uint8_t>{0x66, 0xff, 0xe0}, "operand-size"}));

TEST_F(TranslatorTest, AnUnknownInstructionAfterOthersEndsTheBlockBeforeIt) {
  const GuestVirtAddr at = translate({0x90, 0x90, 0x0f, 0x58, 0xc1});  // nop; nop; addps
  const auto code = tc(at, 3);
  EXPECT_EQ(code[2].mnemonic(), ZYDIS_MNEMONIC_JMP) << "the block closes before the addps";
  EXPECT_EQ(branch_exit(code[2].target()).guest_target.value(), kCode + 2);
  auto stop = m_cache.chain(branch_exit(code[2].target()), m_reader);
  ASSERT_FALSE(stop.ok()) << "the guest stops when it reaches the addps";
  EXPECT_EQ(stop.error().kind, TranslationError::kUnknownInstruction);
}

TEST_F(TranslatorTest, EveryTcInstructionHasAGuestStateAndNoOtherByteHas) {
  const std::vector<std::vector<std::uint8_t>> blocks = {
      {0xfa, 0x48, 0x8b, 0x05, 0x10, 0, 0, 0, 0xe8, 0x00, 0x01, 0, 0},  // cli; mov; call
      {0x48, 0x01, 0xd8, 0x75, 0xfb},                                   // add; jnz
      {0xec, 0xe2, 0xfd},                                               // in; loop
      {0x9c, 0xc2, 0x08, 0x00},                                         // pushfq; ret 8
      {0xff, 0x54, 0x24, 0x08},                                         // call [rsp+8]
  };
  for (const auto& bytes : blocks) {
    m_cache.flush();
    m_reader.put(kCode, bytes);
    auto translated = m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader);
    ASSERT_TRUE(translated.ok()) << translated.error().message;
    // The block runs until the int3 filler after it, which has no state.
    std::uint64_t at = translated->value();
    std::size_t instructions = 0;
    while (m_cache.guest_state_at(GuestVirtAddr(at))) {
      const DecodedTc instruction = tc(GuestVirtAddr(at), 1)[0];
      for (std::uint64_t inside = at + 1; inside < instruction.next(); ++inside) {
        EXPECT_FALSE(m_cache.guest_state_at(GuestVirtAddr(inside))) << instruction.text;
      }
      at = instruction.next();
      ++instructions;
    }
    EXPECT_GE(instructions, bytes.size() > 4 ? 4u : 2u);
    EXPECT_EQ(at - translated->value(), m_cache.statistics().tc_bytes_used -
                                            (translated->value() - m_layout.code_address().value()))
        << "every byte of the block is covered";
  }
}

TEST_F(TranslatorTest, ABlockEndsAfterTheMaximumInstructionCount) {
  std::vector<std::uint8_t> nops(40, 0x90);
  m_reader.put(kCode, nops);
  auto translated = m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader);
  ASSERT_TRUE(translated.ok());
  const auto code = tc(*translated, m_layout.maximum_block_instructions + 2);
  const DecodedTc& closing = code[m_layout.maximum_block_instructions];
  EXPECT_EQ(closing.mnemonic(), ZYDIS_MNEMONIC_JMP);
  const std::uint64_t next = kCode + m_layout.maximum_block_instructions;
  EXPECT_EQ(branch_exit(closing.target()).guest_target.value(), next);
  EXPECT_EQ(state(closing.address), state_at_guest(next));
}

}  // namespace
}  // namespace vmlab::bt
