// The listing for students (`--translations FILE`): each block, guest
// instruction by guest instruction, with the TC instructions that translate
// it beside it and what the translator did. The TC side is disassembled from
// the cache as it is now, so chained branches show their current targets.
#include <algorithm>
#include <cstdio>

#include "cache_implementation.hpp"
#include "vmlab/format.hpp"

namespace vmlab::bt::detail {

namespace {

std::string padded(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

std::string address_text(std::uint64_t address) {
  char text[24];
  std::snprintf(text, sizeof text, "%#018llx", static_cast<unsigned long long>(address));
  return text;
}

std::string bytes_text(std::span<const std::uint8_t> bytes) {
  std::string text;
  for (const std::uint8_t byte : bytes) {
    char pair[4];
    std::snprintf(pair, sizeof pair, "%02x ", byte);
    text += pair;
  }
  if (!text.empty()) text.pop_back();
  return text;
}

const char* borrowed_name(BorrowedRegister borrowed) {
  switch (borrowed) {
    case BorrowedRegister::kRax:
      return "rax";
    case BorrowedRegister::kRcx:
      return "rcx";
    case BorrowedRegister::kRdx:
      return "rdx";
  }
  return "?";
}

std::string treatment_note(const GuestInstruction& instruction) {
  switch (instruction.treatment) {
    case Treatment::kIdent:
      return "IDENT";
    case Treatment::kRipRelative:
      return "IDENT, rip-relative made absolute [" + hex(instruction.absolute.value_or(0)) + "]";
    case Treatment::kClearInterruptFlag:
      return "cli: vIF := 0 (one store)";
    case Treatment::kSetInterruptFlag:
      return "sti: vIF := 1 (one store)";
    case Treatment::kDirectJump:
      return "jmp";
    case Treatment::kConditionalJump:
      return "jcc: taken, then fall-through";
    case Treatment::kLoop:
      return "loop: rel8 to the taken jmp";
    case Treatment::kDirectCall:
      return "call: push guest return " + hex(instruction.next().value());
    case Treatment::kReturn:
      return "ret: target into rcx";
    case Treatment::kIndirectJump:
    case Treatment::kIndirectCall:
      return "indirect: target into rcx";
    case Treatment::kScratchLoad:
    case Treatment::kScratchStore:
      return instruction.mnemonic + ": " + instruction.virtual_value +
             " from the scratch page, no exit" +
             (instruction.treatment == Treatment::kScratchStore
                  ? std::string(" (") + borrowed_name(instruction.borrowed) +
                        " borrowed, saved in its slot)"
                  : std::string());
    case Treatment::kPushFlags:
      return instruction.mnemonic +
             ": the real flags with the virtual IF (flag byte), IOPL and AC (scratch), no exit";
    case Treatment::kPopFlags:
      return instruction.mnemonic +
             ": the flags; IF to the flag byte (the last store), IOPL and AC to the scratch "
             "page, never to the real flags; TF set: call-out";
    case Treatment::kCallOut:
      if (instruction.reason == CallOutReason::kSegmentCheck) {
        return "call-out: rare: " + instruction.mnemonic + " (" + to_string(instruction.reason) +
               ", a walk of the virtual GDT the VMM's emulator does)";
      }
      return "call-out: " + instruction.mnemonic + " (" + to_string(instruction.reason) + ")";
  }
  return "";
}

}  // namespace

std::string CacheImplementation::describe(const Block& block) const {
  const EmittedBlock& code = block.code;
  std::string text = "block guest " + hex(block.guest_start.value()) + ".." +
                     hex(block.guest_end.value()) + " -> tc " + hex(code.tc_address) + " (" +
                     std::to_string(code.guest_instructions.size()) + " guest instructions, " +
                     std::to_string(code.code.size()) + " TC bytes; frames";
  for (const GuestPhysAddr frame : block.frames)
    text += " " + hex(frame.value());
  text += ")\n";

  const auto link_note = [&](const TcInstruction& instruction) -> std::string {
    for (const Link& link : code.links) {
      if (link.rel32_address < instruction.address ||
          link.rel32_address >= instruction.address + instruction.length) {
        continue;
      }
      if (!link.chained_to) return "exit -> guest " + hex(link.guest_target.value());
      const auto target = blocks.find(*link.chained_to);
      return "chained -> tc " + hex(target == blocks.end() ? 0 : target->second.code.tc_address) +
             " (guest " + hex(link.guest_target.value()) + ")";
    }
    return "";
  };
  const auto tc_line = [&](const TcInstruction& instruction, std::string note) {
    const std::span<const std::uint8_t> bytes =
        region.subspan(instruction.address - layout.base.value(), instruction.length);
    std::string line = address_text(instruction.address) + "  " +
                       padded(decoder.disassemble(bytes, instruction.address), 44);
    const std::string linked = link_note(instruction);
    if (!linked.empty()) note += note.empty() ? linked : "; " + linked;
    if (decoder.branch_target(bytes, instruction.address) == lookup_entry) {
      note += note.empty() ? "-> lookup routine" : "; -> lookup routine";
    }
    return line + "  " + note;
  };
  constexpr std::size_t kGuestColumns = 18 + 2 + 30 + 2 + 34;
  const std::string blank(kGuestColumns, ' ');

  std::size_t next_tc = 0;
  for (const GuestInstructionRecord& record : code.guest_instructions) {
    const GuestInstruction& instruction = record.instruction;
    const std::string guest =
        address_text(instruction.address.value()) + "  " +
        padded(bytes_text(instruction.bytes), 30) + "  " +
        padded(decoder.disassemble(instruction.bytes, instruction.address.value()), 34);
    for (std::size_t index = 0; index < record.tc_count; ++index) {
      const TcInstruction& tc = code.instructions[record.first_tc + index];
      text += "  " + (index == 0 ? guest : blank) + " | " +
              tc_line(tc, index == 0 ? treatment_note(instruction) : "") + "\n";
    }
    next_tc = record.first_tc + record.tc_count;
  }
  // The closing jmp of a block that falls through, and the exit stubs.
  for (std::size_t index = next_tc; index < code.instructions.size(); ++index) {
    const TcInstruction& tc = code.instructions[index];
    std::string note;
    std::string label;
    for (const ExitRecord& exit : code.exits) {
      if (exit.address != tc.address) continue;
      if (const auto* branch = std::get_if<BranchExit>(&exit.site)) {
        note = "exit site: to guest " + hex(branch->guest_target.value());
        label = "  (exit site)";
      }
      if (const auto* call_out = std::get_if<CallOut>(&exit.site)) {
        note = "call-out: " + call_out->mnemonic + " (" + to_string(call_out->reason) +
               "): its image sets TF";
      }
    }
    if (tc.guest_index != kNoGuestInstruction) {
      const GuestInstruction& owner = code.guest_instructions[tc.guest_index].instruction;
      label =
          "  (out of line, for the " + owner.mnemonic + " at " + hex(owner.address.value()) + ")";
    } else if (label.empty()) {
      label = "  (falls through to " + hex(block.guest_end.value()) + ")";
    }
    label = padded(label, kGuestColumns);
    text += "  " + label + " | " + tc_line(tc, note) + "\n";
  }
  return text;
}

std::string CacheImplementation::listing() const {
  std::string text = "translation cache " + hex(layout.base.value()) + ".." +
                     hex(layout.end().value()) + ": interrupt flag " +
                     hex(layout.interrupt_flag_address().value()) + ", scratch " +
                     hex(layout.scratch_address().value()) + ", indirect table " +
                     hex(layout.indirect_table_address().value()) + " (" +
                     std::to_string(layout.indirect_entries) + " entries), code " +
                     hex(layout.code_address().value()) + "\n";
  text += "code area: " + std::to_string(statistics.tc_bytes_used) + " bytes used, " +
          std::to_string(statistics.tc_padding_bytes) +
          " of them int3 padding that puts each block at its guest address modulo " +
          std::to_string(layout.block_alignment) + "; " +
          std::to_string(statistics.blocks_translated) + " blocks translated, " +
          std::to_string(statistics.blocks_translated_ahead) + " of them ahead of the guest\n";
  text += "TC hit rate: " + hit_rate(statistics) + "\n";
  text += "lookup routine " + hex(lookup_entry) + " (ret, indirect jmp and call come here)\n";
  const Block& shared = blocks.at(kSharedRoutines);
  for (const TcInstruction& instruction : shared.code.instructions) {
    const std::span<const std::uint8_t> bytes =
        region.subspan(instruction.address - layout.base.value(), instruction.length);
    std::string line = "  " + address_text(instruction.address) + "  " +
                       decoder.disassemble(bytes, instruction.address);
    if (instruction.address == empty_entry_exit) {
      line = padded(line, 66) + "lookup miss (an empty entry)";
    } else if (bytes[0] == 0xcc) {
      line = padded(line, 66) + "lookup miss: the target is in rcx";
    }
    text += line + "\n";
  }
  std::vector<const Block*> ordered;
  for (const auto& [id, block] : blocks) {
    if (id != kSharedRoutines) ordered.push_back(&block);
  }
  std::sort(ordered.begin(), ordered.end(), [](const Block* left, const Block* right) {
    return left->guest_start < right->guest_start;
  });
  for (const Block* block : ordered)
    text += "\n" + describe(*block);
  return text;
}

}  // namespace vmlab::bt::detail

namespace vmlab::bt {

std::string hit_rate(const Statistics& statistics) {
  if (statistics.lookups == 0) return "no lookups yet";
  char percent[16];
  std::snprintf(percent, sizeof percent, "%.1f%%",
                100.0 * static_cast<double>(statistics.lookup_hits) /
                    static_cast<double>(statistics.lookups));
  return std::string(percent) + " (" + std::to_string(statistics.lookup_hits) + " of " +
         std::to_string(statistics.lookups) +
         " lookups of a block to run found it translated already)";
}

}  // namespace vmlab::bt
