// What the bt tests share: a CodeReader over fake guest pages, and Zydis
// decoding of what the translator wrote into the translation cache.
#pragma once

#include <Zydis/Zydis.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vmlab/bt/translation_cache.hpp"

namespace vmlab::bt::test_support {

// Guest-virtual pages, each mapped to a guest-physical frame, with bytes the
// test owns (put) or borrows from a host mapping (map_host). A read stops at
// the first page that is not mapped, as a fetch would.
class FakeCodeReader final : public CodeReader {
 public:
  // By default page P maps to frame P + kFrameOffset, so that a test can
  // tell frames from virtual pages.
  static constexpr std::uint64_t kFrameOffset = 0x40000000;

  // Writes guest bytes, mapping the pages they touch (owned, zero-filled).
  void put(std::uint64_t address, std::span<const std::uint8_t> bytes) {
    for (std::size_t index = 0; index < bytes.size(); ++index) {
      const std::uint64_t byte_address = address + index;
      page_for_writing(byte_address)[byte_address % kPageSize] = bytes[index];
    }
  }
  void put(std::uint64_t address, std::initializer_list<std::uint8_t> bytes) {
    put(address, std::span(bytes.begin(), bytes.size()));
  }
  void map_host(std::uint64_t virtual_page, const std::uint8_t* bytes) {
    m_pages[virtual_page] = {bytes, GuestPhysAddr(virtual_page + kFrameOffset), nullptr};
  }
  void set_frame(std::uint64_t virtual_page, std::uint64_t frame) {
    m_pages.at(virtual_page).frame = GuestPhysAddr(frame);
  }
  void unmap(std::uint64_t virtual_page) { m_pages.erase(virtual_page); }
  void fail_with(std::optional<Error> error) { m_failure = std::move(error); }
  int reads() const { return m_reads; }

  Result<CodeBytes> read(GuestVirtAddr address, std::size_t length) override {
    ++m_reads;
    if (m_failure) return *m_failure;
    CodeBytes code;
    std::uint64_t at = address.value();
    while (code.bytes.size() < length) {
      const std::uint64_t page = at & ~(kPageSize - 1);
      const auto found = m_pages.find(page);
      if (found == m_pages.end()) break;
      code.pages.push_back({GuestVirtAddr(page), found->second.frame});
      const std::size_t here =
          std::min<std::size_t>(length - code.bytes.size(), page + kPageSize - at);
      const std::uint8_t* bytes = found->second.bytes + (at - page);
      code.bytes.insert(code.bytes.end(), bytes, bytes + here);
      at += here;
    }
    return code;
  }

 private:
  struct Page {
    const std::uint8_t* bytes = nullptr;
    GuestPhysAddr frame;
    std::shared_ptr<std::vector<std::uint8_t>> owned;
  };
  std::uint8_t* page_for_writing(std::uint64_t address) {
    const std::uint64_t page = address & ~(kPageSize - 1);
    auto found = m_pages.find(page);
    if (found == m_pages.end() || !found->second.owned) {
      auto owned = std::make_shared<std::vector<std::uint8_t>>(kPageSize, 0);
      found = m_pages
                  .insert_or_assign(page,
                                    Page{owned->data(), GuestPhysAddr(page + kFrameOffset), owned})
                  .first;
    }
    return found->second.owned->data();
  }

  std::map<std::uint64_t, Page> m_pages;
  std::optional<Error> m_failure;
  int m_reads = 0;
};

// One TC instruction as Zydis reads it back.
struct DecodedTc {
  std::uint64_t address = 0;
  ZydisDecodedInstruction instruction{};
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT]{};
  std::vector<std::uint8_t> bytes;
  std::string text;  // Intel syntax at its TC address

  ZydisMnemonic mnemonic() const { return instruction.mnemonic; }
  std::uint64_t next() const { return address + instruction.length; }
  // Where a relative branch goes, or a RIP-relative/absolute memory operand points.
  std::uint64_t target(std::size_t operand = 0) const {
    std::uint64_t absolute = 0;
    EXPECT_TRUE(ZYAN_SUCCESS(
        ZydisCalcAbsoluteAddress(&instruction, &operands[operand], address, &absolute)))
        << text;
    return absolute;
  }
};

// The instruction at the start of `bytes`, which sit at `address`.
inline DecodedTc decode_one(std::span<const std::uint8_t> bytes, std::uint64_t address) {
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  ZydisFormatter formatter;
  ZydisFormatterInit(&formatter, ZYDIS_FORMATTER_STYLE_INTEL);
  DecodedTc tc;
  tc.address = address;
  if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, bytes.data(), bytes.size(), &tc.instruction,
                                           tc.operands))) {
    ADD_FAILURE() << "undecodable bytes at " << std::hex << address;
    tc.instruction.length = 1;
    return tc;
  }
  tc.bytes.assign(bytes.begin(), bytes.begin() + tc.instruction.length);
  char text[256];
  ZydisFormatterFormatInstruction(&formatter, &tc.instruction, tc.operands,
                                  tc.instruction.operand_count_visible, text, sizeof text, address,
                                  nullptr);
  tc.text = text;
  return tc;
}

// `count` TC instructions from tc_address, in the host's view of the region.
inline std::vector<DecodedTc> decode_tc(std::span<const std::uint8_t> region,
                                        const CacheLayout& layout, GuestVirtAddr tc_address,
                                        std::size_t count) {
  std::vector<DecodedTc> decoded;
  std::uint64_t at = tc_address.value();
  for (std::size_t index = 0; index < count; ++index) {
    decoded.push_back(decode_one(region.subspan(at - layout.base.value()), at));
    at += decoded.back().instruction.length;
  }
  return decoded;
}

inline GuestState state_at_guest(std::uint64_t rip) {
  GuestState state;
  state.rip = GuestVirtAddr(rip);
  return state;
}

inline TranslationCache created(const CacheLayout& layout, std::span<std::uint8_t> region) {
  auto cache = TranslationCache::create(layout, region);
  EXPECT_TRUE(cache.ok()) << cache.error().message;
  return std::move(cache).value();
}

// A cache with the real layout (the TC in the monitor's upper-half slot) over
// a host buffer, and a fake reader for guest code.
class CacheTest : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kCode = 0x100000;  // guest kernels are linked low

  GuestVirtAddr translate(std::initializer_list<std::uint8_t> bytes, std::uint64_t at = kCode) {
    m_reader.put(at, bytes);
    auto translated = m_cache.lookup_or_translate(GuestVirtAddr(at), m_reader);
    EXPECT_TRUE(translated.ok()) << translated.error().message;
    return translated.ok() ? *translated : GuestVirtAddr(0);
  }
  Error translation_error(std::initializer_list<std::uint8_t> bytes, std::uint64_t at = kCode) {
    m_reader.put(at, bytes);
    auto translated = m_cache.lookup_or_translate(GuestVirtAddr(at), m_reader);
    EXPECT_FALSE(translated.ok());
    return translated.ok() ? Error{TranslationError::kNotInCache, "translated"}
                           : translated.error();
  }
  std::vector<DecodedTc> tc(GuestVirtAddr at, std::size_t count) {
    return decode_tc(m_region, m_layout, at, count);
  }
  GuestState state(std::uint64_t tc_address) {
    auto found = m_cache.guest_state_at(GuestVirtAddr(tc_address));
    EXPECT_TRUE(found.has_value()) << "no state at " << std::hex << tc_address;
    return found.value_or(GuestState{});
  }
  BranchExit branch_exit(std::uint64_t tc_address) {
    auto site = m_cache.exit_at(GuestVirtAddr(tc_address));
    EXPECT_TRUE(site && std::holds_alternative<BranchExit>(*site))
        << "no branch exit at " << std::hex << tc_address;
    return site && std::holds_alternative<BranchExit>(*site) ? std::get<BranchExit>(*site)
                                                             : BranchExit{};
  }
  std::uint64_t slot(std::size_t offset) const {
    return m_layout.scratch_address().value() + offset;
  }
  // The state of an indirect branch that has completed: target in rcx.
  static GuestState target_in_rcx(std::int64_t rsp_adjustment = 0) {
    GuestState expected;
    expected.rip_location = RipLocation::kTargetRegister;
    expected.rcx_in_slot = true;
    expected.rsp_adjustment = rsp_adjustment;
    return expected;
  }

  CacheLayout m_layout;
  std::vector<std::uint8_t> m_region = std::vector<std::uint8_t>(m_layout.size);
  FakeCodeReader m_reader;
  TranslationCache m_cache = created(m_layout, m_region);
};

}  // namespace vmlab::bt::test_support
