// The translator's two steps, inside the bt library: decode a guest block
// (decide what each instruction becomes, with every position-independent
// piece encoded already), then emit it at a TC address. Decoding is where
// every error arises; emitting cannot fail, so a block that does not fit can
// be emitted again after a flush.
#pragma once

#include <Zydis/Zydis.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "vmlab/bt/translation_cache.hpp"

namespace vmlab::bt::detail {

// What the translator does with one guest instruction.
enum class Treatment {
  kIdent,               // copied as it is
  kRipRelative,         // copied with its RIP-relative operand made absolute
  kClearInterruptFlag,  // cli: vIF := 0
  kSetInterruptFlag,    // sti: vIF := 1
  kDirectJump,          // jmp rel8/rel32
  kConditionalJump,     // jcc rel8/rel32
  kLoop,                // loop, loope, loopne, jrcxz, jecxz (rel8)
  kDirectCall,          // call rel32
  kReturn,              // ret, ret imm16
  kIndirectJump,        // jmp r/m64
  kIndirectCall,        // call r/m64
  // The x86 holes, inline on the scratch page's virtual values (no exit):
  kScratchLoad,   // one instruction reading a slot: mov r, sreg; sldt/str/smsw r; push fs/gs
  kScratchStore,  // slots to guest memory through a borrowed register: mov m16, sreg;
                  // sldt/str/smsw m16; sgdt/sidt m
  kPushFlags,     // pushf, pushfq: the real flags with the virtual IF, IOPL and AC
  kPopFlags,      // popf, popfq: the real flags, the virtual IF, IOPL and AC
  kCallOut,       // int3 to the VMM
};

// The registers the TC borrows, by their number in ModRM.reg (Intel SDM vol.
// 2A, table 2-2), each with its save slot on the scratch page.
enum class BorrowedRegister : std::uint8_t { kRax = 0, kRcx = 1, kRdx = 2 };

// One store of a kScratchStore: `code` is `mov <the guest's operand>, <the
// borrowed register>` (16 or 64 bits; sgdt's base at the operand + 2), after
// the register is loaded from ScratchPage at `scratch_offset`.
struct ScratchStore {
  std::size_t scratch_offset = 0;
  std::vector<std::uint8_t> code;
};

struct GuestInstruction {
  GuestVirtAddr address;
  std::vector<std::uint8_t> bytes;  // as the guest has them (the first byte only, if undecodable)
  std::uint8_t length = 0;          // 0: undecodable
  Treatment treatment = Treatment::kCallOut;
  CallOutReason reason = CallOutReason::kInvalidInstruction;  // kCallOut
  std::string mnemonic;
  // kIdent, kRipRelative: the bytes to run. kLoop: the guest's bytes with
  // rel8 = 5. kIndirectJump, kIndirectCall: `mov rcx, <the operand>`.
  std::vector<std::uint8_t> code;
  GuestVirtAddr target;                   // direct branches: the taken target
  std::optional<std::uint64_t> absolute;  // kRipRelative and RIP-relative indirect operands
  std::uint8_t condition = 0;             // kConditionalJump: tttn (Intel SDM vol. 2, B.1.4.7)
  std::uint16_t stack_release = 0;        // ret imm16
  // kScratchLoad: `code` reads ScratchPage at scratch_offset RIP-relative;
  // its disp32 is at code[displacement_offset] (filled in when emitted).
  std::size_t scratch_offset = 0;
  std::uint8_t displacement_offset = 0;
  // kScratchStore: the register borrowed (one the guest's operand does not
  // use) and the stores made through it.
  BorrowedRegister borrowed = BorrowedRegister::kRax;
  std::vector<ScratchStore> stores;
  std::uint8_t operand_size = 0;  // kPushFlags, kPopFlags: 2 (0x66) or 8 bytes
  std::string virtual_value;      // kScratchLoad, kScratchStore: what is read, for the listing

  GuestVirtAddr next() const { return address + length; }
};

struct GuestBlock {
  GuestVirtAddr start;
  std::vector<GuestInstruction> instructions;
  GuestVirtAddr end;           // after the last instruction
  bool falls_through = false;  // needs a closing jmp to `end`
  std::vector<GuestPhysAddr> frames;
};

class Decoder {
 public:
  Decoder();
  // At most `maximum_instructions`. An instruction that cannot be translated
  // ends the block before it; only the first one's error is returned (the
  // guest stops when it reaches that instruction, not before).
  Result<GuestBlock> decode_block(GuestVirtAddr start, CodeReader& reader,
                                  std::uint32_t maximum_instructions) const;
  // Intel syntax, at `runtime_address`; "(bad)" when the bytes decode to nothing.
  std::string disassemble(std::span<const std::uint8_t> bytes, std::uint64_t runtime_address,
                          std::size_t* length = nullptr) const;
  // Where a relative jmp, jcc or call at `runtime_address` goes.
  std::optional<std::uint64_t> branch_target(std::span<const std::uint8_t> bytes,
                                             std::uint64_t runtime_address) const;

 private:
  Result<GuestInstruction> translate(GuestVirtAddr address, std::span<const std::uint8_t> bytes,
                                     const ZydisDecodedInstruction& instruction,
                                     const ZydisDecodedOperand* operands) const;
  Result<GuestInstruction> translate_segment_read(GuestInstruction result,
                                                  const ZydisDecodedInstruction& instruction,
                                                  const ZydisDecodedOperand* operands) const;
  Result<GuestInstruction> translate_system_read(GuestInstruction result,
                                                 const ZydisDecodedInstruction& instruction,
                                                 const ZydisDecodedOperand* operands) const;
  ZydisDecoder m_decoder{};
  ZydisFormatter m_formatter{};
};

constexpr std::size_t kNoGuestInstruction = std::numeric_limits<std::size_t>::max();

// What a TC instruction that stores the virtual IF stores (flag_store_at).
enum class FlagStoreKind : std::uint8_t {
  kNone,       // not such a store
  kClear,      // cli: 0
  kSet,        // sti: 1
  kRegisterAl  // popf: the al the sequence computed, 0 or 1
};

struct TcInstruction {
  std::uint64_t address = 0;
  std::uint8_t length = 0;
  GuestState state;
  std::size_t guest_index = kNoGuestInstruction;  // into Block::guest_instructions
  FlagStoreKind flag_store = FlagStoreKind::kNone;
};

struct ExitRecord {
  std::uint64_t address = 0;
  ExitSite site;
};

// A direct branch of a block: its rel32 goes to its exit site, or to the
// target's block once chained.
struct Link {
  std::uint64_t rel32_address = 0;
  std::uint64_t stub_address = 0;
  GuestVirtAddr guest_target;
  std::optional<std::uint64_t> chained_to;  // the target block's id
};

struct GuestInstructionRecord {
  GuestInstruction instruction;
  std::size_t first_tc = 0;  // into Block::instructions
  std::size_t tc_count = 0;
};

struct EmittedBlock {
  std::uint64_t tc_address = 0;
  std::vector<std::uint8_t> code;
  std::vector<TcInstruction> instructions;  // in address order, exit stubs included
  std::vector<ExitRecord> exits;
  std::vector<Link> links;
  std::vector<GuestInstructionRecord> guest_instructions;
};

// Lays out `block` at tc_address. `lookup_routine` is where ret and indirect
// branches go.
EmittedBlock emit_block(const GuestBlock& block, const CacheLayout& layout,
                        std::uint64_t tc_address, std::uint64_t lookup_routine);

// The shared lookup routine at tc_address. Its exits: a miss with the
// table's entry empty or different, and the one an empty entry points at.
struct LookupRoutine {
  EmittedBlock code;
  std::uint64_t entry = 0;
  std::uint64_t empty_entry_exit = 0;
};
LookupRoutine emit_lookup_routine(const CacheLayout& layout, std::uint64_t tc_address);

}  // namespace vmlab::bt::detail
