// The translation cache: where blocks go in the code area, which guest
// address and which guest-physical frames each came from, the links between
// them (chaining and unchaining), the indirect-branch table, and the map from
// every TC instruction back to the guest's state.
#include "vmlab/bt/translation_cache.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cache_implementation.hpp"
#include "vmlab/format.hpp"
#include "vmlab/little_endian.hpp"

namespace vmlab::bt {

using detail::Block;
using detail::BlockId;
using detail::Link;

namespace {

constexpr std::uint8_t kInt3 = 0xcc;
constexpr std::uint64_t kRipRelativeReach = 2 * GiB;

// The first address at or after `free` with the guest address's offset in a
// block_alignment-byte line (CacheLayout::block_alignment).
std::uint64_t block_placement(std::uint64_t free, GuestVirtAddr guest, std::uint64_t alignment) {
  return free + ((guest.value() - free) & (alignment - 1));
}

Status check_layout(const CacheLayout& layout, std::span<std::uint8_t> region) {
  const auto invalid = [](const std::string& why) {
    return Error{TranslationError::kInvalidLayout, "translation cache layout: " + why};
  };
  if (layout.base.value() % kPageSize != 0 || layout.size % kPageSize != 0) {
    return invalid("base " + hex(layout.base.value()) + " and size " + hex(layout.size) +
                   " must be multiples of the page size");
  }
  if (layout.indirect_entries == 0 || (layout.indirect_entries & (layout.indirect_entries - 1))) {
    return invalid("the indirect-branch table needs a power-of-two number of entries, not " +
                   std::to_string(layout.indirect_entries));
  }
  if (layout.indirect_entries > (std::uint64_t{1} << 27)) {
    return invalid("more than 2^27 indirect-branch entries");
  }
  if (layout.size >= kRipRelativeReach) {
    return invalid("a region of " + hex(layout.size) +
                   " bytes: the TC reaches its pages RIP-relative, so it must be under 2 GiB");
  }
  if (layout.code_offset() + kPageSize > layout.size) {
    return invalid("a region of " + hex(layout.size) + " bytes leaves no code area after " +
                   hex(layout.code_offset()) + " bytes of pages and table");
  }
  if (layout.block_alignment == 0 || (layout.block_alignment & (layout.block_alignment - 1)) ||
      layout.block_alignment > kPageSize) {
    return invalid("blocks aligned to " + std::to_string(layout.block_alignment) +
                   " bytes: a power of two up to the page size");
  }
  if (layout.maximum_block_instructions == 0) {
    return invalid("a block of at most 0 instructions");
  }
  if (region.size() != layout.size) {
    return invalid("the region given is " + hex(region.size()) + " bytes, the layout says " +
                   hex(layout.size));
  }
  return {};
}

// A call-out's name in Statistics::call_outs: its mnemonic, and for mov,
// push and pop, whose mnemonic does not say, the kind of register.
std::string counted_as(const CallOut& call_out) {
  if (call_out.mnemonic != "mov" && call_out.mnemonic != "push" && call_out.mnemonic != "pop") {
    return call_out.mnemonic;
  }
  if (call_out.reason == CallOutReason::kControlRegister) return call_out.mnemonic + " cr";
  if (call_out.reason == CallOutReason::kDebugRegister) return call_out.mnemonic + " dr";
  if (call_out.reason == CallOutReason::kSegmentLoad) return call_out.mnemonic + " sreg";
  if (call_out.reason == CallOutReason::kSegmentRead) return call_out.mnemonic + " from sreg";
  return call_out.mnemonic;
}

}  // namespace

namespace detail {

CacheImplementation::CacheImplementation(const CacheLayout& cache_layout,
                                         std::span<std::uint8_t> cache_region)
    : layout(cache_layout), region(cache_region) {
  std::fill(code_bytes().begin(), code_bytes().end(), kInt3);
  LookupRoutine routine = emit_lookup_routine(layout, layout.code_address().value());
  lookup_entry = routine.entry;
  empty_entry_exit = routine.empty_entry_exit;
  Block shared;
  shared.id = kSharedRoutines;
  shared.code = std::move(routine.code);
  write(shared.code.tc_address, shared.code.code);
  shared_end = shared.code.tc_address + shared.code.code.size();
  tc_index.emplace(shared.code.tc_address, kSharedRoutines);
  blocks.emplace(kSharedRoutines, std::move(shared));
  next_free = shared_end;
  statistics.tc_bytes_used = next_free - layout.code_address().value();
  clear_indirect_table();
}

std::span<std::uint8_t> CacheImplementation::code_bytes() {
  return region.subspan(layout.code_offset());
}

std::span<std::uint8_t> CacheImplementation::at(std::uint64_t tc_address, std::size_t length) {
  return region.subspan(tc_address - layout.base.value(), length);
}

void CacheImplementation::write(std::uint64_t tc_address, std::span<const std::uint8_t> bytes) {
  std::memcpy(at(tc_address, bytes.size()).data(), bytes.data(), bytes.size());
}

void CacheImplementation::write_rel32(std::uint64_t rel32_address, std::uint64_t target) {
  store_little_endian(at(rel32_address, 4),
                      static_cast<std::uint32_t>(target - (rel32_address + 4)));
}

std::uint64_t CacheImplementation::table_entry_address(GuestVirtAddr guest) const {
  const std::uint64_t index = guest.value() & (layout.indirect_entries - 1);
  return layout.indirect_table_address().value() + index * sizeof(IndirectEntry);
}

void CacheImplementation::set_table_entry(GuestVirtAddr guest, std::uint64_t guest_value,
                                          std::uint64_t tc_address) {
  std::span<std::uint8_t> entry = at(table_entry_address(guest), sizeof(IndirectEntry));
  store_little_endian(entry.first(8), guest_value);
  store_little_endian(entry.subspan(8), tc_address);
}

void CacheImplementation::clear_indirect_table() {
  for (std::uint64_t index = 0; index < layout.indirect_entries; ++index) {
    set_table_entry(GuestVirtAddr(index), kEmptyGuestAddress, empty_entry_exit);
  }
}

void CacheImplementation::clear_table_entry_of(const Block& block) {
  const std::span<std::uint8_t> entry =
      at(table_entry_address(block.guest_start), sizeof(IndirectEntry));
  if (load_little_endian(entry.subspan(8)) == block.code.tc_address) {
    set_table_entry(block.guest_start, kEmptyGuestAddress, empty_entry_exit);
  }
}

const Block* CacheImplementation::block_containing(std::uint64_t tc_address) const {
  auto found = tc_index.upper_bound(tc_address);
  if (found == tc_index.begin()) return nullptr;
  --found;
  const Block& block = blocks.at(found->second);
  const std::uint64_t start = block.code.tc_address;
  if (tc_address < start || tc_address >= start + block.code.code.size()) return nullptr;
  return &block;
}

const TcInstruction* CacheImplementation::instruction_at(std::uint64_t tc_address) const {
  const Block* block = block_containing(tc_address);
  if (block == nullptr) return nullptr;
  const auto& instructions = block->code.instructions;
  auto found = std::lower_bound(instructions.begin(), instructions.end(), tc_address,
                                [](const TcInstruction& instruction, std::uint64_t address) {
                                  return instruction.address < address;
                                });
  if (found == instructions.end() || found->address != tc_address) return nullptr;
  return &*found;
}

void CacheImplementation::chain_link(Block& source, std::size_t link_index, Block& target) {
  Link& link = source.code.links[link_index];
  write_rel32(link.rel32_address, target.code.tc_address);
  link.chained_to = target.id;
  inbound[target.id].push_back({source.id, link_index});
  ++statistics.chained_branches;
}

Result<std::uint64_t> CacheImplementation::translate(GuestVirtAddr guest_rip, CodeReader& reader) {
  auto id = translate_block(guest_rip, reader, true);
  if (!id) return id.error();
  translate_ahead(*id, reader);
  return blocks.at(*id).code.tc_address;
}

Result<BlockId> CacheImplementation::translate_block(GuestVirtAddr guest_rip, CodeReader& reader,
                                                     bool may_flush) {
  auto decoded = decoder.decode_block(guest_rip, reader, layout.maximum_block_instructions);
  if (!decoded) return decoded.error();
  const std::uint64_t end = layout.end().value();
  const auto fits = [end](const EmittedBlock& emitted) {
    return emitted.tc_address <= end && emitted.code.size() <= end - emitted.tc_address;
  };
  EmittedBlock emitted =
      emit_block(*decoded, layout, block_placement(next_free, guest_rip, layout.block_alignment),
                 lookup_entry);
  if (!fits(emitted)) {
    if (!may_flush) {
      return Error{TranslationError::kCacheFull,
                   "no room left for the block at guest " + hex(guest_rip.value())};
    }
    flush();
    emitted =
        emit_block(*decoded, layout, block_placement(next_free, guest_rip, layout.block_alignment),
                   lookup_entry);
    if (!fits(emitted)) {
      return Error{TranslationError::kCacheFull,
                   "the block at guest " + hex(guest_rip.value()) + " needs " +
                       hex(emitted.code.size()) + " bytes, more than the empty code area holds (" +
                       hex(end - next_free) + "): enlarge CacheLayout::size"};
    }
  }
  // The gap is int3 already (the area is filled with it at the start, on a
  // flush, and where a block went); written again so that it is by
  // construction.
  const std::span<std::uint8_t> padding = at(next_free, emitted.tc_address - next_free);
  std::fill(padding.begin(), padding.end(), kInt3);
  statistics.tc_padding_bytes += padding.size();
  write(emitted.tc_address, emitted.code);
  next_free = emitted.tc_address + emitted.code.size();

  Block block;
  block.id = next_id++;
  block.guest_start = guest_rip;
  block.guest_end = decoded->end;
  block.frames = decoded->frames;
  block.code = std::move(emitted);
  const BlockId id = block.id;
  tc_index.emplace(block.code.tc_address, id);
  guest_index[guest_rip.value()] = id;
  for (const GuestPhysAddr frame : block.frames)
    frame_index[frame.value()].push_back(id);
  Block& placed = blocks.emplace(id, std::move(block)).first->second;

  // Branches to blocks that exist already (a loop to its own start among
  // them) are chained at once.
  for (std::size_t index = 0; index < placed.code.links.size(); ++index) {
    auto target = guest_index.find(placed.code.links[index].guest_target.value());
    if (target != guest_index.end()) chain_link(placed, index, blocks.at(target->second));
  }

  ++statistics.blocks_translated;
  statistics.guest_instructions_translated += decoded->instructions.size();
  statistics.tc_bytes_used = next_free - layout.code_address().value();
  return id;
}

namespace {

// Where a block may go next without an indirect branch: its direct branch
// targets (fall-through included) and the return address of a call that
// ends it, which its callee's ret will look up.
struct Successors {
  std::vector<GuestVirtAddr> targets;
  std::optional<GuestVirtAddr> return_address;
};

Successors successors_of(const Block& block) {
  Successors successors;
  for (const Link& link : block.code.links)
    successors.targets.push_back(link.guest_target);
  if (!block.code.guest_instructions.empty()) {
    const GuestInstruction& last = block.code.guest_instructions.back().instruction;
    if (last.treatment == Treatment::kDirectCall || last.treatment == Treatment::kIndirectCall) {
      successors.return_address = last.next();
      successors.targets.push_back(last.next());
    }
  }
  return successors;
}

}  // namespace

// Breadth first from `first`, at most layout.translate_ahead new blocks. A
// target the translator refuses (not fetchable, an unknown instruction) is
// skipped: the guest may never go there, and if it does, the translation on
// demand reports it then, at that RIP. The code area is never flushed for
// these: `first` must stay where the caller is about to run it.
void CacheImplementation::translate_ahead(BlockId first, CodeReader& reader) {
  if (layout.translate_ahead == 0) return;
  std::vector<BlockId> made{first};
  std::vector<GuestVirtAddr> queue;
  std::vector<GuestVirtAddr> return_addresses;
  const auto enqueue = [&](const Block& block) {
    Successors successors = successors_of(block);
    queue.insert(queue.end(), successors.targets.begin(), successors.targets.end());
    if (successors.return_address) return_addresses.push_back(*successors.return_address);
  };
  enqueue(blocks.at(first));
  for (std::size_t next = 0; next < queue.size() && made.size() <= layout.translate_ahead; ++next) {
    if (guest_index.contains(queue[next].value())) continue;
    auto id = translate_block(queue[next], reader, false);
    if (!id) continue;
    made.push_back(*id);
    ++statistics.blocks_translated_ahead;
    enqueue(blocks.at(*id));
  }
  // translate_block chained each block to those before it; now the earlier
  // ones to the later.
  for (const BlockId id : made) {
    Block& block = blocks.at(id);
    for (std::size_t index = 0; index < block.code.links.size(); ++index) {
      if (block.code.links[index].chained_to) continue;
      auto target = guest_index.find(block.code.links[index].guest_target.value());
      if (target != guest_index.end()) chain_link(block, index, blocks.at(target->second));
    }
  }
  for (const GuestVirtAddr return_address : return_addresses) {
    if (auto found = guest_index.find(return_address.value()); found != guest_index.end()) {
      set_table_entry(return_address, return_address.value(),
                      blocks.at(found->second).code.tc_address);
    }
  }
}

void CacheImplementation::remove_block(BlockId id) {
  Block& block = blocks.at(id);
  // Branches into it go back to their exit sites.
  if (auto into = inbound.find(id); into != inbound.end()) {
    for (const auto& [source_id, link_index] : into->second) {
      Block& source = blocks.at(source_id);
      Link& link = source.code.links[link_index];
      write_rel32(link.rel32_address, link.stub_address);
      link.chained_to.reset();
    }
    inbound.erase(into);
  }
  // Its own branches no longer come into anything.
  for (std::size_t index = 0; index < block.code.links.size(); ++index) {
    const auto& chained = block.code.links[index].chained_to;
    if (!chained || *chained == id) continue;
    auto& into_target = inbound[*chained];
    std::erase(into_target, std::pair<BlockId, std::size_t>{id, index});
  }
  clear_table_entry_of(block);
  if (auto found = guest_index.find(block.guest_start.value());
      found != guest_index.end() && found->second == id) {
    guest_index.erase(found);
  }
  for (const GuestPhysAddr frame : block.frames) {
    auto& on_frame = frame_index[frame.value()];
    std::erase(on_frame, id);
    if (on_frame.empty()) frame_index.erase(frame.value());
  }
  // Nothing may run stale code: what is left of it traps.
  std::span<std::uint8_t> code = at(block.code.tc_address, block.code.code.size());
  std::fill(code.begin(), code.end(), kInt3);
  tc_index.erase(block.code.tc_address);
  blocks.erase(id);
  ++statistics.blocks_invalidated;
}

void CacheImplementation::flush() {
  for (auto found = blocks.begin(); found != blocks.end();) {
    if (found->first == kSharedRoutines) {
      ++found;
    } else {
      tc_index.erase(found->second.code.tc_address);
      found = blocks.erase(found);
    }
  }
  guest_index.clear();
  frame_index.clear();
  inbound.clear();
  std::span<std::uint8_t> code = at(shared_end, layout.end().value() - shared_end);
  std::fill(code.begin(), code.end(), kInt3);
  clear_indirect_table();
  next_free = shared_end;
  statistics.tc_bytes_used = next_free - layout.code_address().value();
  statistics.tc_padding_bytes = 0;
  ++statistics.flushes;
}

}  // namespace detail

const char* to_string(CallOutReason reason) {
  switch (reason) {
    case CallOutReason::kPortIo:
      return "port I/O";
    case CallOutReason::kControlRegister:
      return "control register";
    case CallOutReason::kDebugRegister:
      return "debug register";
    case CallOutReason::kModelSpecificRegister:
      return "MSR";
    case CallOutReason::kDescriptorTableLoad:
      return "descriptor table load";
    case CallOutReason::kSegmentLoad:
      return "segment load";
    case CallOutReason::kTlbInvalidation:
      return "TLB invalidation";
    case CallOutReason::kCacheControl:
      return "cache control";
    case CallOutReason::kHalt:
      return "halt";
    case CallOutReason::kCpuid:
      return "cpuid";
    case CallOutReason::kSwapgs:
      return "swapgs";
    case CallOutReason::kPerformanceCounter:
      return "performance counter";
    case CallOutReason::kMonitorWait:
      return "monitor/mwait";
    case CallOutReason::kAccessControl:
      return "access control";
    case CallOutReason::kInterruptReturn:
      return "interrupt return";
    case CallOutReason::kFarTransfer:
      return "far transfer";
    case CallOutReason::kSystemCall:
      return "system call";
    case CallOutReason::kSoftwareInterrupt:
      return "software interrupt";
    case CallOutReason::kInvalidInstruction:
      return "invalid instruction";
    case CallOutReason::kFlagsRead:
      return "flags read";
    case CallOutReason::kFlagsWrite:
      return "flags write";
    case CallOutReason::kSegmentRead:
      return "segment read";
    case CallOutReason::kSystemTableRead:
      return "system table read";
    case CallOutReason::kSegmentCheck:
      return "segment check";
  }
  return "unknown";
}

// --- The public face ----------------------------------------------------------

struct TranslationCache::Implementation : detail::CacheImplementation {
  using CacheImplementation::CacheImplementation;
};

TranslationCache::TranslationCache(std::unique_ptr<Implementation> implementation)
    : m_implementation(std::move(implementation)) {}
TranslationCache::TranslationCache(TranslationCache&&) noexcept = default;
TranslationCache& TranslationCache::operator=(TranslationCache&&) noexcept = default;
TranslationCache::~TranslationCache() = default;

Result<TranslationCache> TranslationCache::create(CacheLayout layout,
                                                  std::span<std::uint8_t> region) {
  if (auto valid = check_layout(layout, region); !valid) return valid.error();
  return TranslationCache(std::make_unique<Implementation>(layout, region));
}

const CacheLayout& TranslationCache::layout() const {
  return m_implementation->layout;
}

Result<GuestVirtAddr> TranslationCache::lookup_or_translate(GuestVirtAddr guest_rip,
                                                            CodeReader& reader) {
  ++m_implementation->statistics.lookups;
  return find_or_translate(guest_rip, reader);
}

Result<GuestVirtAddr> TranslationCache::find_or_translate(GuestVirtAddr guest_rip,
                                                          CodeReader& reader) {
  detail::CacheImplementation& cache = *m_implementation;
  std::uint64_t tc_address = 0;
  if (auto found = cache.guest_index.find(guest_rip.value()); found != cache.guest_index.end()) {
    ++cache.statistics.lookup_hits;
    tc_address = cache.blocks.at(found->second).code.tc_address;
  } else {
    auto translated = cache.translate(guest_rip, reader);
    if (!translated) return translated.error();
    tc_address = *translated;
  }
  cache.set_table_entry(guest_rip, guest_rip.value(), tc_address);
  return GuestVirtAddr(tc_address);
}

std::optional<GuestVirtAddr> TranslationCache::find(GuestVirtAddr guest_rip) const {
  const auto found = m_implementation->guest_index.find(guest_rip.value());
  if (found == m_implementation->guest_index.end()) return std::nullopt;
  return GuestVirtAddr(m_implementation->blocks.at(found->second).code.tc_address);
}

std::optional<ExitSite> TranslationCache::exit_at(GuestVirtAddr tc_address) const {
  const Block* block = m_implementation->block_containing(tc_address.value());
  if (block == nullptr) return std::nullopt;
  for (const detail::ExitRecord& exit : block->code.exits) {
    if (exit.address == tc_address.value()) return exit.site;
  }
  return std::nullopt;
}

std::optional<ExitSite> TranslationCache::take_exit(GuestVirtAddr tc_address) {
  std::optional<ExitSite> site = exit_at(tc_address);
  if (!site) return site;
  Statistics& statistics = m_implementation->statistics;
  if (std::holds_alternative<BranchExit>(*site)) ++statistics.branch_exits;
  if (std::holds_alternative<LookupMiss>(*site)) ++statistics.lookup_misses;
  if (const auto* call_out = std::get_if<CallOut>(&*site))
    ++statistics.call_outs[counted_as(*call_out)];
  return site;
}

Result<GuestVirtAddr> TranslationCache::chain(const BranchExit& site, CodeReader& reader) {
  ++m_implementation->statistics.lookups;
  auto target = find_or_translate(site.guest_target, reader);
  if (!target) return target;
  // Translating may have flushed the site's block, or reused its bytes: the
  // link must still be this branch, unchained.
  detail::CacheImplementation& cache = *m_implementation;
  const Block* found = cache.block_containing(site.exit_address.value());
  if (found == nullptr || found->id == detail::kSharedRoutines) return target;
  Block& source = cache.blocks.at(found->id);
  for (std::size_t index = 0; index < source.code.links.size(); ++index) {
    const Link& link = source.code.links[index];
    if (link.stub_address == site.exit_address.value() &&
        link.rel32_address == site.patch_site.value() && link.guest_target == site.guest_target &&
        !link.chained_to) {
      cache.chain_link(source, index,
                       cache.blocks.at(cache.guest_index.at(site.guest_target.value())));
      break;
    }
  }
  return target;
}

std::optional<GuestState> TranslationCache::guest_state_at(GuestVirtAddr tc_address) const {
  const detail::TcInstruction* instruction = m_implementation->instruction_at(tc_address.value());
  if (instruction == nullptr) return std::nullopt;
  return instruction->state;
}

Result<monitor::GuestRegisters> TranslationCache::recover_guest_registers(
    GuestVirtAddr tc_address, const monitor::GuestRegisters& real,
    monitor::GuestVirtualMemory& memory) const {
  const std::optional<GuestState> state = guest_state_at(tc_address);
  if (!state) {
    return Error{TranslationError::kNotInCache,
                 "TC address " + hex(tc_address.value()) +
                     " is not the start of a live translated instruction"};
  }
  const ScratchPage slots = scratch();
  monitor::GuestRegisters guest = real;
  if (state->rax_in_slot) guest.rax = slots.saved_rax;
  if (state->rcx_in_slot) guest.rcx = slots.saved_rcx;
  if (state->rdx_in_slot) guest.rdx = slots.saved_rdx;
  switch (state->rip_location) {
    case RipLocation::kAddress:
      guest.rip = state->rip.value();
      break;
    case RipLocation::kTargetRegister:
      guest.rip = real.rcx;
      break;
    case RipLocation::kTargetSlot:
      guest.rip = slots.guest_target;
      break;
  }
  if (state->flags_on_stack) {
    const std::uint64_t address = real.rsp + static_cast<std::uint64_t>(*state->flags_on_stack);
    std::uint8_t flags[8];
    if (auto fault =
            memory.read(GuestVirtAddr(address), flags, monitor::AccessPrivilege::Supervisor)) {
      return Error{TranslationError::kStackUnreadable,
                   "the guest's flags, saved by the TC at " + hex(address) +
                       " on the guest's stack, cannot be read (page fault, error code " +
                       hex(fault->error_code) + ")"};
    }
    guest.rflags = load_little_endian(flags);
  }
  guest.rsp = real.rsp + static_cast<std::uint64_t>(state->rsp_adjustment);
  return guest;
}

std::optional<VirtualFlagStore> TranslationCache::flag_store_at(GuestVirtAddr tc_address) const {
  const Block* block = m_implementation->block_containing(tc_address.value());
  const detail::TcInstruction* instruction = m_implementation->instruction_at(tc_address.value());
  if (block == nullptr || instruction == nullptr ||
      instruction->guest_index == detail::kNoGuestInstruction) {
    return std::nullopt;
  }
  const detail::GuestInstruction& guest =
      block->code.guest_instructions[instruction->guest_index].instruction;
  VirtualFlagStore store;
  switch (instruction->flag_store) {
    case detail::FlagStoreKind::kNone:
      return std::nullopt;
    case detail::FlagStoreKind::kClear:
      store.value = VirtualFlagStore::Value::kZero;
      break;
    case detail::FlagStoreKind::kSet:
      store.value = VirtualFlagStore::Value::kOne;
      store.opens_interrupt_shadow = true;
      break;
    case detail::FlagStoreKind::kRegisterAl:
      store.value = VirtualFlagStore::Value::kRegisterAl;
      break;
  }
  store.mnemonic = guest.mnemonic;
  store.guest_rip = guest.address;
  store.next_guest_rip = guest.next();
  store.resume_address = tc_address + instruction->length;
  return store;
}

bool TranslationCache::contains(GuestVirtAddr address) const {
  return address >= m_implementation->layout.code_address() &&
         address < m_implementation->layout.end();
}

GuestVirtAddr TranslationCache::lookup_routine() const {
  return GuestVirtAddr(m_implementation->lookup_entry);
}

std::size_t TranslationCache::invalidate_page(GuestPhysAddr page) {
  detail::CacheImplementation& cache = *m_implementation;
  const auto found = cache.frame_index.find(page.value() & ~(kPageSize - 1));
  if (found == cache.frame_index.end()) return 0;
  const std::vector<BlockId> doomed = found->second;  // remove_block changes the index
  for (const BlockId id : doomed)
    cache.remove_block(id);
  ++cache.statistics.page_invalidations;
  return doomed.size();
}

void TranslationCache::flush() {
  m_implementation->flush();
}

ScratchPage TranslationCache::scratch() const {
  ScratchPage page;
  std::memcpy(&page, m_implementation->region.data() + m_implementation->layout.scratch_offset(),
              sizeof page);
  return page;
}

void TranslationCache::write_scratch(const ScratchPage& page) {
  std::memcpy(m_implementation->region.data() + m_implementation->layout.scratch_offset(), &page,
              sizeof page);
}

bool TranslationCache::virtual_interrupt_flag() const {
  return m_implementation->region[m_implementation->layout.interrupt_flag_offset()] != 0;
}

void TranslationCache::set_virtual_interrupt_flag(bool enabled) {
  m_implementation->region[m_implementation->layout.interrupt_flag_offset()] = enabled ? 1 : 0;
}

const Statistics& TranslationCache::statistics() const {
  return m_implementation->statistics;
}

std::string TranslationCache::listing() const {
  return m_implementation->listing();
}

std::optional<std::string> TranslationCache::describe(GuestVirtAddr guest_rip) const {
  const auto found = m_implementation->guest_index.find(guest_rip.value());
  if (found == m_implementation->guest_index.end()) return std::nullopt;
  return m_implementation->describe(m_implementation->blocks.at(found->second));
}

}  // namespace vmlab::bt
