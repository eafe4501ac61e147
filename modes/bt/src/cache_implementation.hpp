// The translation cache's state, inside the bt library (the public header
// keeps Zydis and these maps out of its users' sight).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "translator.hpp"

namespace vmlab::bt::detail {

using BlockId = std::uint64_t;
// The lookup routine lives in a block of its own that nothing removes.
constexpr BlockId kSharedRoutines = 0;

struct Block {
  BlockId id = 0;
  GuestVirtAddr guest_start;
  GuestVirtAddr guest_end;
  std::vector<GuestPhysAddr> frames;  // guest-physical pages its bytes came from
  EmittedBlock code;
};

struct CacheImplementation {
  CacheImplementation(const CacheLayout& cache_layout, std::span<std::uint8_t> cache_region);

  std::span<std::uint8_t> code_bytes();
  std::span<std::uint8_t> at(std::uint64_t tc_address, std::size_t length);
  void write(std::uint64_t tc_address, std::span<const std::uint8_t> bytes);
  void write_rel32(std::uint64_t rel32_address, std::uint64_t target);

  std::uint64_t table_entry_address(GuestVirtAddr guest) const;
  void set_table_entry(GuestVirtAddr guest, std::uint64_t guest_value, std::uint64_t tc_address);
  void clear_indirect_table();
  void clear_table_entry_of(const Block& block);

  const Block* block_containing(std::uint64_t tc_address) const;
  const TcInstruction* instruction_at(std::uint64_t tc_address) const;

  // The block at guest_rip, translated now, and up to layout.translate_ahead
  // more along its direct branches and call returns; its TC address.
  Result<std::uint64_t> translate(GuestVirtAddr guest_rip, CodeReader& reader);
  // One block. Without room in the code area it flushes everything first,
  // if `may_flush`; otherwise it is refused with kCacheFull.
  Result<BlockId> translate_block(GuestVirtAddr guest_rip, CodeReader& reader, bool may_flush);
  void translate_ahead(BlockId first, CodeReader& reader);
  void chain_link(Block& source, std::size_t link_index, Block& target);
  void remove_block(BlockId id);
  void flush();

  std::string describe(const Block& block) const;
  std::string listing() const;

  CacheLayout layout;
  std::span<std::uint8_t> region;
  Decoder decoder;
  std::uint64_t lookup_entry = 0;
  std::uint64_t empty_entry_exit = 0;
  std::uint64_t shared_end = 0;  // blocks start here
  std::uint64_t next_free = 0;
  BlockId next_id = kSharedRoutines + 1;

  std::map<BlockId, Block> blocks;
  std::map<std::uint64_t, BlockId> tc_index;                            // TC start -> block
  std::unordered_map<std::uint64_t, BlockId> guest_index;               // guest start -> block
  std::unordered_map<std::uint64_t, std::vector<BlockId>> frame_index;  // frame -> blocks
  // Target block -> the links chained into it: (source block, link index).
  std::unordered_map<BlockId, std::vector<std::pair<BlockId, std::size_t>>> inbound;
  Statistics statistics;
};

}  // namespace vmlab::bt::detail
