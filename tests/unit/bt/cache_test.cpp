// The translation cache around the translator: chaining and unchaining,
// invalidation by guest-physical page, flushing, a full code area, the
// indirect-branch table, a hostile code stream, code at the edge of what the
// guest can fetch, the register recovery, the statistics and the listing.
#include <gtest/gtest.h>

#include <algorithm>
#include <system_error>

#include "../monitor/fake_guest_memory.hpp"
#include "bt_test_support.hpp"
#include "vmlab/little_endian.hpp"

namespace vmlab::bt {
namespace {

using test_support::CacheTest;
using test_support::FakeCodeReader;
using test_support::state_at_guest;

constexpr std::uint8_t kUd2[] = {0x0f, 0x0b};

class CacheTestWithBlocks : public CacheTest {
 protected:
  // A block at kCode that jumps to `target` (jmp rel32), and the site of its exit.
  BranchExit jump_block(std::uint64_t target, std::uint64_t at = kCode) {
    const auto rel32 = static_cast<std::uint32_t>(target - (at + 5));
    const GuestVirtAddr tc =
        translate({0xe9, static_cast<std::uint8_t>(rel32), static_cast<std::uint8_t>(rel32 >> 8),
                   static_cast<std::uint8_t>(rel32 >> 16), static_cast<std::uint8_t>(rel32 >> 24)},
                  at);
    m_jump_tc = tc.value();
    return branch_exit(m_jump_tc + 5);  // the exit site follows the jmp
  }
  std::uint64_t jump_target() { return tc(GuestVirtAddr(m_jump_tc), 1)[0].target(); }
  IndirectEntry table_entry(std::uint64_t guest) const {
    const std::uint64_t index = guest & (m_layout.indirect_entries - 1);
    const std::span<const std::uint8_t> entry =
        std::span(m_region).subspan(m_layout.indirect_table_offset() + index * 16, 16);
    return {load_little_endian(entry.first(8)), load_little_endian(entry.subspan(8))};
  }
  bool all_int3(std::uint64_t tc_address, std::size_t length) const {
    const auto bytes = std::span(m_region).subspan(tc_address - m_layout.base.value(), length);
    return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t byte) { return byte == 0xcc; });
  }

  std::uint64_t m_jump_tc = 0;
};

TEST_F(CacheTestWithBlocks, ChainPatchesTheBranchToTheTargetsBlock) {
  const std::uint64_t target = 0x200000;
  const BranchExit site = jump_block(target);
  EXPECT_EQ(site.guest_target.value(), target);
  EXPECT_EQ(jump_target(), site.exit_address.value()) << "unchained: to its exit site";
  m_reader.put(target, kUd2);

  auto resumed = m_cache.chain(site, m_reader);
  ASSERT_TRUE(resumed.ok()) << resumed.error().message;
  EXPECT_EQ(m_cache.find(GuestVirtAddr(target)), *resumed);
  EXPECT_EQ(jump_target(), resumed->value()) << "chained: straight to the target's block";
  EXPECT_EQ(m_cache.statistics().chained_branches, 1u);
  EXPECT_TRUE(m_cache.exit_at(site.exit_address)) << "the exit site stays, for unchaining";
}

TEST_F(CacheTestWithBlocks, ABranchToATranslatedBlockIsChainedAtOnce) {
  const GuestVirtAddr target = translate({0x0f, 0x0b}, 0x200000);
  jump_block(0x200000);
  EXPECT_EQ(jump_target(), target.value());
}

TEST_F(CacheTestWithBlocks, ChainingAStaleSiteOnlyTranslatesTheTarget) {
  const BranchExit site = jump_block(0x200000);
  m_reader.put(0x200000, kUd2);
  m_cache.flush();
  auto resumed = m_cache.chain(site, m_reader);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(m_cache.statistics().chained_branches, 0u);
  EXPECT_TRUE(all_int3(site.patch_site.value(), 4)) << "nothing patched in flushed code";
}

TEST_F(CacheTestWithBlocks, InvalidatingAPageUnchainsTheBranchesIntoItsBlocks) {
  const BranchExit site = jump_block(0x200000);
  m_reader.put(0x200000, {0x90, 0x0f, 0x0b});
  const GuestVirtAddr target = *m_cache.chain(site, m_reader);
  ASSERT_EQ(jump_target(), target.value());
  ASSERT_EQ(table_entry(0x200000).tc_address, target.value());

  EXPECT_EQ(m_cache.invalidate_page(GuestPhysAddr(0x200000 + FakeCodeReader::kFrameOffset)), 1u);
  EXPECT_EQ(jump_target(), site.exit_address.value()) << "back to its exit site";
  EXPECT_FALSE(m_cache.find(GuestVirtAddr(0x200000)));
  EXPECT_FALSE(m_cache.guest_state_at(target));
  EXPECT_TRUE(all_int3(target.value(), 4)) << "stale code traps";
  EXPECT_EQ(table_entry(0x200000).guest_address, kEmptyGuestAddress);
  EXPECT_EQ(m_cache.statistics().blocks_invalidated, 1u);
  EXPECT_EQ(m_cache.statistics().page_invalidations, 1u);

  // The branch chains again once the code is retranslated.
  auto again = m_cache.chain(site, m_reader);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(jump_target(), again->value());
}

TEST_F(CacheTestWithBlocks, InvalidatingASourceBlockForgetsItsLinks) {
  const BranchExit site = jump_block(0x200000);
  m_reader.put(0x200000, kUd2);
  ASSERT_TRUE(m_cache.chain(site, m_reader).ok());
  const std::uint64_t source = m_jump_tc;
  EXPECT_EQ(m_cache.invalidate_page(GuestPhysAddr(kCode + FakeCodeReader::kFrameOffset)), 1u);
  EXPECT_EQ(m_cache.invalidate_page(GuestPhysAddr(0x200000 + FakeCodeReader::kFrameOffset)), 1u);
  EXPECT_TRUE(all_int3(source, 6)) << "the dead source is not patched back to life";
}

TEST_F(CacheTestWithBlocks, InvalidationTakesEveryBlockOnThePageAndOnlyThose) {
  translate({0x90, 0x0f, 0x0b}, kCode);
  translate({0x0f, 0x0b}, kCode + 0x800);
  translate({0x0f, 0x0b}, kCode + 0x1000);  // the next page
  EXPECT_EQ(m_cache.invalidate_page(GuestPhysAddr(kCode + FakeCodeReader::kFrameOffset + 0x123)),
            2u)
      << "any address in the frame names it";
  EXPECT_FALSE(m_cache.find(GuestVirtAddr(kCode)));
  EXPECT_TRUE(m_cache.find(GuestVirtAddr(kCode + 0x1000)));
  EXPECT_EQ(m_cache.invalidate_page(GuestPhysAddr(kCode)), 0u) << "a virtual page is no frame";
}

TEST_F(CacheTestWithBlocks, ABlockAcrossAPageBoundaryRecordsBothFrames) {
  // mov rax, imm64 from 0x100ffc to 0x101006, then ud2.
  m_reader.put(0x100ffc, {0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 0x0f, 0x0b});
  m_reader.set_frame(0x101000, 0x777000);
  ASSERT_TRUE(m_cache.lookup_or_translate(GuestVirtAddr(0x100ffc), m_reader).ok());
  const auto listing = m_cache.describe(GuestVirtAddr(0x100ffc));
  ASSERT_TRUE(listing);
  EXPECT_NE(listing->find("0x40100000 0x777000"), std::string::npos) << *listing;
  EXPECT_EQ(m_cache.invalidate_page(GuestPhysAddr(0x777000)), 1u);
}

TEST_F(CacheTestWithBlocks, TwoVirtualPagesOfOneFrameCountOnce) {
  m_reader.put(0x100ffe, {0x90, 0x90, 0x90, 0x0f, 0x0b});
  m_reader.set_frame(0x101000, 0x100000 + FakeCodeReader::kFrameOffset);
  ASSERT_TRUE(m_cache.lookup_or_translate(GuestVirtAddr(0x100ffe), m_reader).ok());
  EXPECT_EQ(m_cache.invalidate_page(GuestPhysAddr(0x100000 + FakeCodeReader::kFrameOffset)), 1u);
}

TEST_F(CacheTestWithBlocks, FlushEmptiesEverythingButTheLookupRoutine) {
  const GuestVirtAddr block = translate({0x90, 0x0f, 0x0b});
  const std::uint64_t used = m_cache.statistics().tc_bytes_used;
  m_cache.flush();
  EXPECT_FALSE(m_cache.find(GuestVirtAddr(kCode)));
  EXPECT_FALSE(m_cache.guest_state_at(block));
  EXPECT_EQ(table_entry(kCode).guest_address, kEmptyGuestAddress);
  EXPECT_LT(m_cache.statistics().tc_bytes_used, used);
  EXPECT_EQ(m_cache.statistics().flushes, 1u);
  EXPECT_TRUE(m_cache.guest_state_at(m_cache.lookup_routine())) << "the routine stays";
  EXPECT_EQ(tc(m_cache.lookup_routine(), 1)[0].mnemonic(), ZYDIS_MNEMONIC_PUSHFQ);
  EXPECT_EQ(translate({0x90, 0x0f, 0x0b}), block) << "the area is reused from its start";
}

TEST_F(CacheTestWithBlocks, EveryBlockIsInTheIndirectBranchTable) {
  const GuestVirtAddr first = translate({0x0f, 0x0b}, kCode);
  EXPECT_EQ(table_entry(kCode).guest_address, kCode);
  EXPECT_EQ(table_entry(kCode).tc_address, first.value());
  // Another block with the same index takes the entry; asking for the
  // first one again (as the VMM does on a miss) puts it back.
  const std::uint64_t same_index = kCode + m_layout.indirect_entries;
  const GuestVirtAddr second = translate({0x0f, 0x0b}, same_index);
  EXPECT_EQ(table_entry(kCode).tc_address, second.value());
  ASSERT_EQ(m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader).value(), first);
  EXPECT_EQ(table_entry(kCode).guest_address, kCode);
  EXPECT_EQ(m_cache.statistics().blocks_translated, 2u);

  // An empty entry leads to an exit too, never to arbitrary code.
  const IndirectEntry empty = table_entry(kCode + 1);
  EXPECT_EQ(empty.guest_address, kEmptyGuestAddress);
  const auto site = m_cache.exit_at(GuestVirtAddr(empty.tc_address));
  ASSERT_TRUE(site);
  EXPECT_TRUE(std::holds_alternative<LookupMiss>(*site));
}

TEST_F(CacheTestWithBlocks, TheLookupRoutineHasAStateForEveryInstruction) {
  const auto routine = tc(m_cache.lookup_routine(), 22);
  for (const auto& instruction : routine) {
    EXPECT_TRUE(m_cache.guest_state_at(GuestVirtAddr(instruction.address))) << instruction.text;
    EXPECT_TRUE(m_cache.contains(GuestVirtAddr(instruction.address)));
  }
  GuestState entry;
  entry.rip_location = RipLocation::kTargetRegister;
  entry.rcx_in_slot = true;
  EXPECT_EQ(state(routine[0].address), entry) << routine[0].text;
  const auto last_jump = std::find_if(routine.begin(), routine.end(), [](const auto& each) {
    return each.mnemonic() == ZYDIS_MNEMONIC_JMP;
  });
  ASSERT_NE(last_jump, routine.end());
  GuestState all_live;
  all_live.rip_location = RipLocation::kTargetSlot;
  EXPECT_EQ(state(last_jump->address), all_live) << "everything the guest's, rip in its slot";
  const auto miss = std::find_if(routine.begin(), routine.end(), [](const auto& each) {
    return each.mnemonic() == ZYDIS_MNEMONIC_INT3;
  });
  ASSERT_NE(miss, routine.end());
  const auto site = m_cache.exit_at(GuestVirtAddr(miss->address));
  ASSERT_TRUE(site && std::holds_alternative<LookupMiss>(*site));
  GuestState at_miss = all_live;
  at_miss.rcx_in_slot = true;
  EXPECT_EQ(state(miss->address), at_miss) << "the target in rcx, the guest's rcx in its slot";
}

TEST_F(CacheTestWithBlocks, RecoveryAppliesTheStateWithSlotsAndTheStack) {
  // Stopped inside the lookup routine after it saved rax and rdx: the
  // guest's flags on the stack, rax, rcx and rdx in their slots, RIP in the
  // target slot.
  const auto routine = tc(m_cache.lookup_routine(), 5);
  const GuestVirtAddr stop(routine[4].address);
  ASSERT_EQ(routine[4].mnemonic(), ZYDIS_MNEMONIC_MOV) << routine[4].text;  // mov eax, ecx
  ScratchPage slots;
  slots.saved_rax = 0xaaaa;
  slots.saved_rcx = 0xcccc;
  slots.saved_rdx = 0xdddd;
  slots.guest_target = 0x100234;
  m_cache.write_scratch(slots);
  monitor::fakes::FakeGuestMemory memory(0x10000);
  memory.put_u64(0x8000, 0x8c3);  // the pushed flags
  monitor::GuestRegisters real;
  real.rax = 1;
  real.rcx = 0x100234;
  real.rdx = 3;
  real.rbx = 0xbbbb;
  real.rsp = 0x8000;
  real.rip = stop.value();
  real.rflags = 0x246;
  auto guest = m_cache.recover_guest_registers(stop, real, memory);
  ASSERT_TRUE(guest.ok()) << guest.error().message;
  EXPECT_EQ(guest->rax, 0xaaaau);
  EXPECT_EQ(guest->rcx, 0xccccu);
  EXPECT_EQ(guest->rdx, 0xddddu);
  EXPECT_EQ(guest->rbx, 0xbbbbu);
  EXPECT_EQ(guest->rsp, 0x8008u);
  EXPECT_EQ(guest->rip, 0x100234u);
  EXPECT_EQ(guest->rflags, 0x8c3u);

  memory.unmap_page(0x8000);
  auto unreadable = m_cache.recover_guest_registers(stop, real, memory);
  ASSERT_FALSE(unreadable.ok());
  EXPECT_EQ(unreadable.error().kind, TranslationError::kStackUnreadable);
  auto unknown = m_cache.recover_guest_registers(stop + 1, real, memory);
  ASSERT_FALSE(unknown.ok()) << "the middle of an instruction";
  EXPECT_EQ(unknown.error().kind, TranslationError::kNotInCache);
}

TEST_F(CacheTestWithBlocks, StatisticsCountTheExitsTaken) {
  const GuestVirtAddr at = translate({0xec, 0xec, 0xf4, 0x0f, 0x0b});  // in; in; hlt; ud2
  EXPECT_TRUE(m_cache.exit_at(at));
  EXPECT_TRUE(m_cache.statistics().call_outs.empty()) << "exit_at only looks";
  for (std::uint64_t offset = 0; offset < 3; ++offset)
    ASSERT_TRUE(m_cache.take_exit(at + offset));
  EXPECT_EQ(m_cache.statistics().call_outs.at("in"), 2u);
  EXPECT_EQ(m_cache.statistics().call_outs.at("hlt"), 1u);
  EXPECT_FALSE(m_cache.take_exit(GuestVirtAddr(0x1234))) << "not an exit site";
}

TEST_F(CacheTestWithBlocks, LookupsAndHitsGiveTheHitRate) {
  EXPECT_EQ(hit_rate(m_cache.statistics()), "no lookups yet");
  const BranchExit site = jump_block(0x200000);  // a lookup, translated: a miss
  EXPECT_EQ(m_cache.statistics().lookups, 1u);
  EXPECT_EQ(m_cache.statistics().lookup_hits, 0u);
  ASSERT_TRUE(m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader).ok());
  EXPECT_EQ(m_cache.statistics().lookups, 2u);
  EXPECT_EQ(m_cache.statistics().lookup_hits, 1u) << "the block existed";
  m_reader.put(0x200000, kUd2);
  ASSERT_TRUE(m_cache.chain(site, m_reader).ok());
  EXPECT_EQ(m_cache.statistics().lookups, 3u) << "chain is one lookup";
  EXPECT_EQ(m_cache.statistics().lookup_hits, 1u) << "its target had to be translated";
  m_cache.flush();
  const BranchExit again = jump_block(0x200000);
  translate({0x0f, 0x0b}, 0x200000);
  ASSERT_TRUE(m_cache.chain(again, m_reader).ok());
  EXPECT_EQ(m_cache.statistics().lookups, 6u);
  EXPECT_EQ(m_cache.statistics().lookup_hits, 2u) << "chain to a block that exists: a hit";
  EXPECT_EQ(hit_rate(m_cache.statistics()),
            "33.3% (2 of 6 lookups of a block to run found it translated already)");
  EXPECT_NE(m_cache.listing().find("TC hit rate: 33.3% (2 of 6"), std::string::npos);
}

TEST_F(CacheTestWithBlocks, OverlappingDecodesAreIndependentBlocks) {
  // At X: mov eax, 0x909090c3; at X+1 the same bytes are ret.
  m_reader.put(kCode, {0xb8, 0xc3, 0x90, 0x90, 0x90, 0x0f, 0x0b});
  auto whole = m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader);
  auto inside = m_cache.lookup_or_translate(GuestVirtAddr(kCode + 1), m_reader);
  ASSERT_TRUE(whole.ok() && inside.ok());
  EXPECT_NE(*whole, *inside);
  EXPECT_EQ(tc(*whole, 1)[0].mnemonic(), ZYDIS_MNEMONIC_MOV);
  EXPECT_EQ(tc(*inside, 3)[2].target(), m_cache.lookup_routine().value()) << "ret";
  EXPECT_EQ(m_cache.invalidate_page(GuestPhysAddr(kCode + FakeCodeReader::kFrameOffset)), 2u);
}

TEST_F(CacheTestWithBlocks, AJumpIntoTheTcsAddressRangeIsAGuestAddress) {
  // The guest jumps to where the TC's lookup routine is. That is a guest
  // address like any other: not fetchable in the guest's view...
  const std::uint64_t into_tc = m_cache.lookup_routine().value();
  const BranchExit site = jump_block(into_tc, into_tc - kPageSize);  // hostile code up there
  EXPECT_EQ(site.guest_target.value(), into_tc);
  auto refused = m_cache.chain(site, m_reader);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, TranslationError::kCodeNotMapped);
  // ...or, if a hostile guest maps its own code there, translated as guest code.
  m_reader.put(into_tc, kUd2);
  auto translated = m_cache.chain(site, m_reader);
  ASSERT_TRUE(translated.ok());
  EXPECT_NE(translated->value(), into_tc);
  const auto exit = m_cache.exit_at(*translated);
  ASSERT_TRUE(exit && std::holds_alternative<CallOut>(*exit));
  EXPECT_EQ(std::get<CallOut>(*exit).guest_rip.value(), into_tc);
  EXPECT_EQ(tc(m_cache.lookup_routine(), 1)[0].mnemonic(), ZYDIS_MNEMONIC_PUSHFQ) << "untouched";
}

TEST_F(CacheTestWithBlocks, AnInstructionCutByTheEndOfFetchableMemoryIsCodeNotMapped) {
  // 0x100000 is mapped, 0x101000 is not; mov rax, imm64 starts 4 bytes
  // before the end.
  m_reader.put(0x100ff8, {0x90, 0x90, 0x90, 0x90, 0x48, 0xb8, 1, 2});
  auto cut = m_cache.lookup_or_translate(GuestVirtAddr(0x100ffc), m_reader);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().kind, TranslationError::kCodeNotMapped);
  EXPECT_NE(cut.error().message.find("0x100ffc"), std::string::npos) << cut.error().message;
  EXPECT_NE(cut.error().message.find("0x101000"), std::string::npos) << cut.error().message;

  // From 0x100ff8 the four nops translate; the block stops before the cut
  // instruction, and reaching it is the fault.
  auto before = m_cache.lookup_or_translate(GuestVirtAddr(0x100ff8), m_reader);
  ASSERT_TRUE(before.ok()) << before.error().message;
  const BranchExit site = branch_exit(tc(*before, 5)[4].target());
  EXPECT_EQ(site.guest_target.value(), 0x100ffcu);
  auto reached = m_cache.chain(site, m_reader);
  ASSERT_FALSE(reached.ok());
  EXPECT_EQ(reached.error().kind, TranslationError::kCodeNotMapped);

  auto unmapped = m_cache.lookup_or_translate(GuestVirtAddr(0x300000), m_reader);
  ASSERT_FALSE(unmapped.ok());
  EXPECT_EQ(unmapped.error().kind, TranslationError::kCodeNotMapped);
  EXPECT_NE(unmapped.error().message.find("0x300000"), std::string::npos);
}

TEST_F(CacheTestWithBlocks, ReaderErrorsArePassedOn) {
  m_reader.fail_with(Error{std::make_error_code(std::errc::io_error), "page table outside RAM"});
  auto failed = m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().kind, std::errc::io_error);
}

TEST_F(CacheTestWithBlocks, TheListingShowsGuestAndTranslationSideBySide) {
  const BranchExit site = jump_block(0x200000, 0x100040);
  m_reader.put(kCode, {0xfa,                                      // cli
                       0x48, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00,  // mov rax, [rip+0x100]
                       0xec,                                      // in al, dx
                       0xc3});                                    // ret
  ASSERT_TRUE(m_cache.lookup_or_translate(GuestVirtAddr(kCode), m_reader).ok());
  std::string listing = m_cache.listing();
  for (const char* expected :
       {"lookup routine", "cli", "vIF := 0", "fa ", "48 8b 05 00 01 00 00", "[0x100108]",
        "IDENT, rip-relative made absolute", "call-out: in (port I/O)", "-> lookup routine",
        "exit -> guest 0x200000"}) {
    EXPECT_NE(listing.find(expected), std::string::npos) << expected << " in\n" << listing;
  }
  m_reader.put(0x200000, kUd2);
  ASSERT_TRUE(m_cache.chain(site, m_reader).ok());
  listing = m_cache.listing();
  EXPECT_NE(listing.find("chained -> tc"), std::string::npos) << listing;
  EXPECT_LT(listing.find("block guest 0x100000"), listing.find("block guest 0x100040"))
      << "blocks in guest address order";
  EXPECT_FALSE(m_cache.describe(GuestVirtAddr(0x999000)));
}

TEST_F(CacheTestWithBlocks, EachBlockSitsAtItsGuestAddressModuloTheAlignment) {
  ASSERT_EQ(m_layout.block_alignment, 64u);
  std::uint64_t padding = 0;
  for (const std::uint64_t guest : {kCode + 0x13, kCode + 0x40, kCode + 0x7f, kCode + 0x100}) {
    const std::uint64_t used_before = m_cache.statistics().tc_bytes_used;
    const GuestVirtAddr block = translate({0x90, 0x0f, 0x0b}, guest);  // nop; ud2
    EXPECT_EQ(block.value() % 64, guest % 64) << std::hex << guest;
    const std::uint64_t start_of_gap = m_layout.code_address().value() + used_before;
    EXPECT_LT(block.value() - start_of_gap, 64u) << "the nearest such address";
    EXPECT_TRUE(all_int3(start_of_gap, block.value() - start_of_gap)) << "the gap traps";
    for (std::uint64_t at = start_of_gap; at < block.value(); ++at)
      EXPECT_FALSE(m_cache.guest_state_at(GuestVirtAddr(at))) << "no TC instruction in the gap";
    padding += block.value() - start_of_gap;
  }
  EXPECT_EQ(m_cache.statistics().tc_padding_bytes, padding);
  EXPECT_GT(padding, 0u);
  const std::string listing = m_cache.listing();
  EXPECT_NE(listing.find(std::to_string(padding) + " of them int3 padding"), std::string::npos)
      << listing;
  m_cache.flush();
  EXPECT_EQ(m_cache.statistics().tc_padding_bytes, 0u) << "of the code area now";
}

TEST_F(CacheTestWithBlocks, AnAlignmentOfOnePlacesBlocksBackToBack) {
  CacheLayout layout = m_layout;
  layout.block_alignment = 1;
  std::vector<std::uint8_t> region(layout.size);
  TranslationCache cache = test_support::created(layout, region);
  m_reader.put(kCode + 0x13, {0x90, 0x0f, 0x0b});
  m_reader.put(kCode + 0x40, {0x90, 0x0f, 0x0b});
  const std::uint64_t empty = cache.statistics().tc_bytes_used;  // the lookup routine
  const auto first = cache.lookup_or_translate(GuestVirtAddr(kCode + 0x13), m_reader);
  const std::uint64_t used = cache.statistics().tc_bytes_used;
  const auto second = cache.lookup_or_translate(GuestVirtAddr(kCode + 0x40), m_reader);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->value(), layout.code_address().value() + empty) << "right after the routine";
  EXPECT_EQ(second->value(), layout.code_address().value() + used) << "right after the first";
  EXPECT_EQ(cache.statistics().tc_padding_bytes, 0u);
}

// A cache that translates ahead, and guest code with somewhere to go:
//   start:  test eax, eax; jz taken; (falls through to) through:
//   through: call callee; (returns to) back:
//   taken, callee, back: ud2
class TranslateAheadTest : public CacheTestWithBlocks {
 protected:
  static constexpr std::uint64_t kStart = kCode;
  static constexpr std::uint64_t kThrough = kCode + 4;
  static constexpr std::uint64_t kBack = kThrough + 5;
  static constexpr std::uint64_t kTaken = kCode + 0x40;
  static constexpr std::uint64_t kCallee = kCode + 0x200;

  void put_code() {
    m_reader.put(kStart, {0x85, 0xc0, 0x74, static_cast<std::uint8_t>(kTaken - kThrough)});
    const auto rel32 = static_cast<std::uint32_t>(kCallee - kBack);
    m_reader.put(kThrough, {0xe8, static_cast<std::uint8_t>(rel32),
                            static_cast<std::uint8_t>(rel32 >> 8), 0, 0});
    m_reader.put(kBack, kUd2);
    m_reader.put(kTaken, kUd2);
    m_reader.put(kCallee, kUd2);
  }
  TranslationCache ahead_cache(std::uint32_t blocks) {
    m_ahead_layout = m_layout;
    m_ahead_layout.translate_ahead = blocks;
    m_ahead_region.assign(m_ahead_layout.size, 0);
    return test_support::created(m_ahead_layout, m_ahead_region);
  }
  std::vector<test_support::DecodedTc> ahead_tc(std::uint64_t at, std::size_t count) const {
    return test_support::decode_tc(m_ahead_region, m_ahead_layout, GuestVirtAddr(at), count);
  }

  CacheLayout m_ahead_layout;
  std::vector<std::uint8_t> m_ahead_region;
};

TEST_F(TranslateAheadTest, TranslatesAndChainsWhereTheBlockGoesAndEntersReturnAddresses) {
  put_code();
  TranslationCache cache = ahead_cache(16);
  auto start = cache.lookup_or_translate(GuestVirtAddr(kStart), m_reader);
  ASSERT_TRUE(start.ok()) << start.error().message;
  for (const std::uint64_t guest : {kTaken, kThrough, kCallee, kBack})
    EXPECT_TRUE(cache.find(GuestVirtAddr(guest))) << std::hex << guest;
  EXPECT_EQ(cache.statistics().blocks_translated, 5u);
  EXPECT_EQ(cache.statistics().blocks_translated_ahead, 4u);
  // test; jz rel32 -> taken; jmp -> through: both chained already.
  const auto code = ahead_tc(start->value(), 3);
  EXPECT_EQ(code[1].target(), cache.find(GuestVirtAddr(kTaken))->value()) << code[1].text;
  EXPECT_EQ(code[2].target(), cache.find(GuestVirtAddr(kThrough))->value()) << code[2].text;
  // The call's push, then its jmp to the callee's block.
  const auto call = ahead_tc(cache.find(GuestVirtAddr(kThrough))->value(), 2);
  EXPECT_EQ(call[1].target(), cache.find(GuestVirtAddr(kCallee))->value()) << call[1].text;
  EXPECT_EQ(cache.statistics().chained_branches, 3u);
  // The callee's ret finds the return address in the table.
  const std::uint64_t index = kBack & (m_ahead_layout.indirect_entries - 1);
  const auto entry =
      std::span(m_ahead_region).subspan(m_ahead_layout.indirect_table_offset() + index * 16, 16);
  EXPECT_EQ(load_little_endian(entry.first(8)), kBack);
  EXPECT_EQ(load_little_endian(entry.subspan(8)), cache.find(GuestVirtAddr(kBack))->value());
}

TEST_F(TranslateAheadTest, GoesNoFurtherThanItsBudgetAndSkipsWhatItCannotTranslate) {
  put_code();
  m_reader.put(kTaken, {0x0f, 0x58, 0xc1});  // addps: on no list
  TranslationCache cache = ahead_cache(2);
  auto start = cache.lookup_or_translate(GuestVirtAddr(kStart), m_reader);
  ASSERT_TRUE(start.ok()) << "a refused target is no error of the block asked for";
  EXPECT_FALSE(cache.find(GuestVirtAddr(kTaken)));
  EXPECT_EQ(cache.statistics().blocks_translated_ahead, 2u);
  EXPECT_EQ(cache.statistics().blocks_translated, 3u);
  // The refused one is reported when the guest gets there.
  auto taken = cache.lookup_or_translate(GuestVirtAddr(kTaken), m_reader);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().kind, TranslationError::kUnknownInstruction);
}

TEST_F(TranslateAheadTest, NeverFlushesTheBlockItWasAskedFor) {
  put_code();
  CacheLayout layout{GuestVirtAddr(0x40000000), 0, 256, 32};
  layout.size = layout.code_offset() + kPageSize;
  layout.translate_ahead = 16;
  std::vector<std::uint8_t> region(layout.size);
  TranslationCache cache = test_support::created(layout, region);
  // Fill the code area until the next block just fits.
  std::uint64_t filler = 0x300000;
  while (layout.end().value() - layout.code_address().value() - cache.statistics().tc_bytes_used >
         160) {
    m_reader.put(filler, kUd2);
    ASSERT_TRUE(cache.lookup_or_translate(GuestVirtAddr(filler), m_reader).ok());
    filler += 0x40;
  }
  ASSERT_EQ(cache.statistics().flushes, 0u);
  auto start = cache.lookup_or_translate(GuestVirtAddr(kStart), m_reader);
  ASSERT_TRUE(start.ok()) << start.error().message;
  EXPECT_EQ(cache.statistics().flushes, 0u) << "the blocks ahead only where there is room";
  EXPECT_EQ(cache.find(GuestVirtAddr(kStart)), *start);
  EXPECT_LT(cache.statistics().blocks_translated_ahead, 4u);
}

// A layout whose code area is one page.
class SmallCacheTest : public ::testing::Test {
 protected:
  CacheLayout m_layout{GuestVirtAddr(0x40000000), 0, 256, 700};
  void SetUp() override {
    m_layout.size = m_layout.code_offset() + kPageSize;
    m_region.assign(m_layout.size, 0);
  }
  std::vector<std::uint8_t> m_region;
  FakeCodeReader m_reader;
};

TEST_F(SmallCacheTest, AFullCodeAreaIsFlushedAndTranslationGoesOn) {
  auto created = TranslationCache::create(m_layout, m_region);
  ASSERT_TRUE(created.ok()) << created.error().message;
  TranslationCache& cache = *created;
  std::uint64_t address = 0x100000;
  while (cache.statistics().flushes == 0) {
    m_reader.put(address, {0x90, 0x90, 0x0f, 0x0b});
    ASSERT_TRUE(cache.lookup_or_translate(GuestVirtAddr(address), m_reader).ok());
    address += 0x10;
    ASSERT_LT(address, 0x110000u) << "never full";
  }
  EXPECT_EQ(cache.statistics().flushes, 1u);
  EXPECT_TRUE(cache.find(GuestVirtAddr(address - 0x10))) << "the block that needed the room";
  EXPECT_FALSE(cache.find(GuestVirtAddr(0x100000)));
}

TEST_F(SmallCacheTest, ABlockLargerThanTheWholeCodeAreaIsCacheFull) {
  auto created = TranslationCache::create(m_layout, m_region);
  ASSERT_TRUE(created.ok());
  const std::vector<std::uint8_t> many_cli(700, 0xfa);  // 7 TC bytes each
  m_reader.put(0x100000, many_cli);
  auto translated = created->lookup_or_translate(GuestVirtAddr(0x100000), m_reader);
  ASSERT_FALSE(translated.ok());
  EXPECT_EQ(translated.error().kind, TranslationError::kCacheFull);
}

TEST_F(SmallCacheTest, InconsistentLayoutsAreRefused) {
  const auto refused = [&](CacheLayout layout, std::size_t region_size) {
    std::vector<std::uint8_t> region(region_size);
    auto created = TranslationCache::create(layout, region);
    return !created.ok() && created.error().kind == TranslationError::kInvalidLayout;
  };
  CacheLayout layout = m_layout;
  EXPECT_FALSE(refused(layout, layout.size));
  layout.base = GuestVirtAddr(0x40000010);
  EXPECT_TRUE(refused(layout, layout.size)) << "unaligned base";
  layout = m_layout;
  layout.indirect_entries = 300;
  EXPECT_TRUE(refused(layout, layout.size)) << "not a power of two";
  layout = m_layout;
  EXPECT_TRUE(refused(layout, layout.size - kPageSize)) << "region smaller than the layout";
  layout.size = layout.code_offset();
  EXPECT_TRUE(refused(layout, layout.size)) << "no code area";
  layout = m_layout;
  layout.maximum_block_instructions = 0;
  EXPECT_TRUE(refused(layout, layout.size));
  for (const std::uint64_t alignment : {0u, 48u, 8192u}) {
    layout = m_layout;
    layout.block_alignment = alignment;
    EXPECT_TRUE(refused(layout, layout.size)) << "blocks aligned to " << alignment;
  }
  layout = m_layout;
  layout.size = 2 * GiB;  // the TC's RIP-relative references would not reach
  auto too_large = TranslationCache::create(layout, {});
  ASSERT_FALSE(too_large.ok());
  EXPECT_EQ(too_large.error().kind, TranslationError::kInvalidLayout);
  EXPECT_NE(too_large.error().message.find("2 GiB"), std::string::npos);
}

}  // namespace
}  // namespace vmlab::bt
