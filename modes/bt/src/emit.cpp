// Emitting translated blocks and the shared lookup routine: the TC's own
// instruction sequences, encoded by hand (each with its Intel SDM vol. 2
// form), and for every TC instruction the GuestState that rebuilds the
// guest's registers at it.
#include <cstring>

#include "translator.hpp"
#include "vmlab/little_endian.hpp"

namespace vmlab::bt::detail {

namespace {

constexpr std::uint8_t kInt3 = 0xcc;
constexpr std::uint8_t kRexW = 0x48;
constexpr std::size_t kRel32Length = 4;

// The registers the TC borrows, by their number in ModRM.reg (Intel SDM vol.
// 2A, table 2-2).
enum class Scratch : std::uint8_t { kRax = 0, kRcx = 1, kRdx = 2 };

std::uint8_t modrm(std::uint8_t mod, std::uint8_t reg, std::uint8_t rm) {
  return static_cast<std::uint8_t>(mod << 6 | reg << 3 | rm);
}

void append_u32(std::vector<std::uint8_t>& bytes, std::uint32_t value) {
  std::uint8_t field[4];
  store_little_endian(field, value);
  bytes.insert(bytes.end(), field, field + 4);
}

// A RIP-relative displacement: relative to the end of the instruction (Intel
// SDM vol. 2A, 2.2.1.6). The layout keeps the region under 2 GiB, so every
// target the TC names is in reach.
std::uint32_t rip_displacement(std::uint64_t instruction_address, std::size_t length,
                               std::uint64_t target) {
  return static_cast<std::uint32_t>(target - (instruction_address + length));
}

// Appends TC instructions, each with the guest state at it.
class Builder {
 public:
  explicit Builder(std::uint64_t tc_address) { m_block.tc_address = tc_address; }

  std::uint64_t address() const { return m_block.tc_address + m_block.code.size(); }
  EmittedBlock& block() { return m_block; }

  void set_guest_instruction(std::size_t index) { m_guest_index = index; }

  // Appends one instruction; returns its address.
  std::uint64_t append(const GuestState& state, std::span<const std::uint8_t> bytes) {
    const std::uint64_t at = address();
    m_block.instructions.push_back(
        {at, static_cast<std::uint8_t>(bytes.size()), state, m_guest_index});
    m_block.code.insert(m_block.code.end(), bytes.begin(), bytes.end());
    return at;
  }

  // mov byte [rip+target], value: C6 /0 ib.
  void store_byte(const GuestState& state, std::uint64_t target, std::uint8_t value) {
    std::vector<std::uint8_t> bytes{0xc6, modrm(0, 0, 5)};
    append_u32(bytes, rip_displacement(address(), 7, target));
    bytes.push_back(value);
    append(state, bytes);
  }

  // mov [rip+slot], r64: REX.W 89 /r.  mov r64, [rip+slot]: REX.W 8B /r.
  void store_register(const GuestState& state, Scratch source, std::uint64_t slot) {
    rip_relative(state, 0x89, static_cast<std::uint8_t>(source), slot);
  }
  void load_register(const GuestState& state, Scratch destination, std::uint64_t slot) {
    rip_relative(state, 0x8b, static_cast<std::uint8_t>(destination), slot);
  }
  // lea r64, [rip+target]: REX.W 8D /r.
  void load_address(const GuestState& state, Scratch destination, std::uint64_t target) {
    rip_relative(state, 0x8d, static_cast<std::uint8_t>(destination), target);
  }

  // jmp rel32: E9 cd. jcc rel32: 0F 80+cc cd. A branch to a guest target is
  // recorded as a link: its rel32 is filled in when the exit stubs exist.
  void jump(const GuestState& state, std::uint64_t target) {
    const std::uint8_t bytes[] = {0xe9, 0, 0, 0, 0};
    patch_rel32(append(state, bytes) + 1, target);
  }
  void jump_to_guest(const GuestState& state, GuestVirtAddr guest_target) {
    const std::uint8_t bytes[] = {0xe9, 0, 0, 0, 0};
    link(append(state, bytes) + 1, guest_target);
  }
  void conditional_jump_to_guest(const GuestState& state, std::uint8_t condition,
                                 GuestVirtAddr guest_target) {
    const std::uint8_t bytes[] = {0x0f, static_cast<std::uint8_t>(0x80 | condition), 0, 0, 0, 0};
    link(append(state, bytes) + 2, guest_target);
  }

  // Pushes a guest return address without touching the flags (Intel SDM vol.
  // 2B PUSH): push imm32 sign-extends, so it serves when the address is a
  // sign-extended 32-bit value; otherwise lea rsp, [rsp-8] and two 32-bit
  // stores. A fault in either store reports the call with the guest's RSP.
  void push_return_address(const GuestState& state, GuestVirtAddr return_address) {
    const std::uint64_t value = return_address.value();
    if (static_cast<std::int64_t>(value) == static_cast<std::int32_t>(value)) {
      std::vector<std::uint8_t> push{0x68};  // push imm32
      append_u32(push, static_cast<std::uint32_t>(value));
      append(state, push);
      return;
    }
    const std::uint8_t lea[] = {kRexW, 0x8d, modrm(1, 4, 4), 0x24, 0xf8};  // lea rsp, [rsp-8]
    append(state, lea);
    GuestState pushed = state;
    pushed.rsp_adjustment += 8;
    std::vector<std::uint8_t> low{0xc7, modrm(0, 0, 4), 0x24};  // mov dword [rsp], imm32
    append_u32(low, static_cast<std::uint32_t>(value));
    append(pushed, low);
    std::vector<std::uint8_t> high{0xc7, modrm(1, 0, 4), 0x24, 0x04};  // mov dword [rsp+4], imm32
    append_u32(high, static_cast<std::uint32_t>(value >> 32));
    append(pushed, high);
  }

  // One int3 per exit site.
  void exit(const GuestState& state, const ExitSite& site) {
    const std::uint8_t bytes[] = {kInt3};
    const std::uint64_t at = append(state, bytes);
    ExitSite placed = site;
    std::visit([at](auto& exit_site) { exit_site.exit_address = GuestVirtAddr(at); }, placed);
    m_block.exits.push_back({at, placed});
  }

  // After the last instruction: one exit stub per link, which the link's
  // rel32 points at until chain() points it at the target's block.
  void emit_exit_stubs() {
    set_guest_instruction(kNoGuestInstruction);
    for (Link& each : m_block.links) {
      each.stub_address = address();
      patch_rel32(each.rel32_address, each.stub_address);
      GuestState at_target;
      at_target.rip = each.guest_target;
      exit(at_target, BranchExit{GuestVirtAddr(each.stub_address), each.guest_target,
                                 GuestVirtAddr(each.rel32_address)});
    }
  }

  void patch_rel32(std::uint64_t rel32_address, std::uint64_t target) {
    const auto value = static_cast<std::uint32_t>(target - (rel32_address + kRel32Length));
    store_little_endian(
        std::span(m_block.code).subspan(rel32_address - m_block.tc_address, kRel32Length), value);
  }

 private:
  void rip_relative(const GuestState& state, std::uint8_t opcode, std::uint8_t reg,
                    std::uint64_t target) {
    std::vector<std::uint8_t> bytes{kRexW, opcode, modrm(0, reg, 5)};
    append_u32(bytes, rip_displacement(address(), 7, target));
    append(state, bytes);
  }
  void link(std::uint64_t rel32_address, GuestVirtAddr guest_target) {
    m_block.links.push_back({rel32_address, 0, guest_target, std::nullopt});
  }

  EmittedBlock m_block;
  std::size_t m_guest_index = kNoGuestInstruction;
};

GuestState at_guest(GuestVirtAddr rip) {
  GuestState state;
  state.rip = rip;
  return state;
}

// After an indirect branch has completed: the target is in rcx, the guest's
// rcx in its slot.
GuestState target_in_rcx() {
  GuestState state;
  state.rip_location = RipLocation::kTargetRegister;
  state.rcx_in_slot = true;
  return state;
}

std::uint64_t slot_address(const CacheLayout& layout, std::size_t offset) {
  return layout.scratch_address().value() + offset;
}

void emit_instruction(Builder& builder, const GuestInstruction& instruction,
                      const CacheLayout& layout, std::uint64_t lookup_routine) {
  const GuestState before = at_guest(instruction.address);
  GuestState rcx_saved = before;
  rcx_saved.rcx_in_slot = true;
  const std::uint64_t rcx_slot = slot_address(layout, offsetof(ScratchPage, saved_rcx));

  switch (instruction.treatment) {
    case Treatment::kIdent:
    case Treatment::kRipRelative:
      builder.append(before, instruction.code);
      return;
    case Treatment::kClearInterruptFlag:
    case Treatment::kSetInterruptFlag:
      // One store, no flags, no stack, no scratch register: while no
      // interrupt is pending it runs at full speed; while one is, the VMM
      // write-protects the page and the store faults into the VMM.
      builder.store_byte(before, layout.interrupt_flag_address().value(),
                         instruction.treatment == Treatment::kSetInterruptFlag ? 1 : 0);
      return;
    case Treatment::kDirectJump:
      builder.jump_to_guest(before, instruction.target);
      return;
    case Treatment::kConditionalJump:
      builder.conditional_jump_to_guest(before, instruction.condition, instruction.target);
      builder.jump_to_guest(at_guest(instruction.next()), instruction.next());
      return;
    case Treatment::kLoop:
      // loop rel8 to the second jmp; the first is the way out (not taken).
      builder.append(before, instruction.code);
      builder.jump_to_guest(at_guest(instruction.next()), instruction.next());
      builder.jump_to_guest(at_guest(instruction.target), instruction.target);
      return;
    case Treatment::kDirectCall:
      builder.push_return_address(before, instruction.next());
      builder.jump_to_guest(at_guest(instruction.target), instruction.target);
      return;
    case Treatment::kReturn: {
      builder.store_register(before, Scratch::kRcx, rcx_slot);
      const std::uint8_t pop_rcx[] = {0x59};  // pop rcx: 58+rd
      builder.append(rcx_saved, pop_rcx);
      if (instruction.stack_release != 0) {
        // lea rsp, [rsp+imm16]: the ret's release of its arguments, flag-free.
        GuestState released = target_in_rcx();
        released.rsp_adjustment = instruction.stack_release;
        std::vector<std::uint8_t> lea{kRexW, 0x8d, modrm(2, 4, 4), 0x24};
        append_u32(lea, instruction.stack_release);
        builder.append(released, lea);
      }
      builder.jump(target_in_rcx(), lookup_routine);
      return;
    }
    case Treatment::kIndirectJump:
    case Treatment::kIndirectCall:
      // The operand is evaluated first, with rsp and every register still
      // the guest's (it may name rcx or rsp), as the CPU does.
      builder.store_register(before, Scratch::kRcx, rcx_slot);
      builder.append(rcx_saved, instruction.code);
      if (instruction.treatment == Treatment::kIndirectCall) {
        builder.push_return_address(rcx_saved, instruction.next());
      }
      builder.jump(target_in_rcx(), lookup_routine);
      return;
    case Treatment::kCallOut:
      // Every reason is an int3 in this version; the sensitive unprivileged
      // ones (kFlagsRead ... kSegmentCheck) are where inline sequences on the
      // scratch page's virtual values will take over, one reason at a time.
      builder.exit(before, CallOut{GuestVirtAddr(0), instruction.address, instruction.length,
                                   instruction.mnemonic, instruction.reason});
      return;
  }
}

}  // namespace

EmittedBlock emit_block(const GuestBlock& block, const CacheLayout& layout,
                        std::uint64_t tc_address, std::uint64_t lookup_routine) {
  Builder builder(tc_address);
  for (std::size_t index = 0; index < block.instructions.size(); ++index) {
    const GuestInstruction& instruction = block.instructions[index];
    builder.set_guest_instruction(index);
    const std::size_t first = builder.block().instructions.size();
    emit_instruction(builder, instruction, layout, lookup_routine);
    builder.block().guest_instructions.push_back(
        {instruction, first, builder.block().instructions.size() - first});
  }
  if (block.falls_through) {
    builder.set_guest_instruction(kNoGuestInstruction);
    builder.jump_to_guest(at_guest(block.end), block.end);
  }
  builder.emit_exit_stubs();
  return std::move(builder.block());
}

// The lookup routine. On entry the guest target is in rcx, the guest's rcx
// in its slot, every other register and the flags the guest's. It hashes the
// target into the indirect-branch table (index = target & (entries - 1)),
// compares, and on a hit jumps to the entry's TC address with every register
// and flag the guest's; on a miss it stops at an int3 with the target in rcx.
// The flags are kept on the guest's stack across the compare (pushfq/popfq:
// at CPL3 popfq changes neither IF nor IOPL, Intel SDM vol. 2B POPF, and the
// real IF is 1 whenever the guest runs); the guest kernel is built without a
// red zone, so the bytes below its RSP are free, as for an interrupt frame.
LookupRoutine emit_lookup_routine(const CacheLayout& layout, std::uint64_t tc_address) {
  Builder builder(tc_address);
  const std::uint64_t rax_slot = slot_address(layout, offsetof(ScratchPage, saved_rax));
  const std::uint64_t rcx_slot = slot_address(layout, offsetof(ScratchPage, saved_rcx));
  const std::uint64_t rdx_slot = slot_address(layout, offsetof(ScratchPage, saved_rdx));
  const std::uint64_t target_slot = slot_address(layout, offsetof(ScratchPage, guest_target));
  const std::uint64_t tc_target_slot = slot_address(layout, offsetof(ScratchPage, tc_target));

  GuestState state = target_in_rcx();
  const std::uint64_t entry = builder.address();
  const std::uint8_t pushfq[] = {0x9c};
  builder.append(state, pushfq);
  state.flags_on_stack = 0;
  state.rsp_adjustment = 8;
  GuestState flags_saved = state;  // for the miss path
  builder.store_register(state, Scratch::kRcx, target_slot);
  state.rip_location = RipLocation::kTargetSlot;
  flags_saved.rip_location = RipLocation::kTargetSlot;
  builder.store_register(state, Scratch::kRax, rax_slot);
  state.rax_in_slot = true;
  builder.store_register(state, Scratch::kRdx, rdx_slot);
  state.rdx_in_slot = true;
  const std::uint8_t index_from_target[] = {0x89, modrm(3, 1, 0)};  // mov eax, ecx: 89 /r
  builder.append(state, index_from_target);
  std::vector<std::uint8_t> mask{0x25};  // and eax, imm32: 25 id
  append_u32(mask, static_cast<std::uint32_t>(layout.indirect_entries - 1));
  builder.append(state, mask);
  const std::uint8_t scale[] = {0xc1, modrm(3, 4, 0), 4};  // shl eax, 4: C1 /4 ib
  builder.append(state, scale);
  builder.load_address(state, Scratch::kRdx, layout.indirect_table_address().value());
  // cmp rcx, [rdx+rax]: REX.W 3B /r, SIB base rdx index rax.
  const std::uint8_t compare[] = {kRexW, 0x3b, modrm(0, 1, 4), 0x02};
  builder.append(state, compare);
  const std::uint8_t jump_if_not_equal[] = {0x0f, 0x85, 0, 0, 0, 0};  // jne rel32
  const std::uint64_t miss_branch = builder.append(state, jump_if_not_equal);
  // mov rax, [rdx+rax+8]: REX.W 8B /r, disp8.
  const std::uint8_t load_tc_address[] = {kRexW, 0x8b, modrm(1, 0, 4), 0x02, 0x08};
  builder.append(state, load_tc_address);
  builder.store_register(state, Scratch::kRax, tc_target_slot);
  builder.load_register(state, Scratch::kRax, rax_slot);
  state.rax_in_slot = false;
  builder.load_register(state, Scratch::kRdx, rdx_slot);
  state.rdx_in_slot = false;
  builder.load_register(state, Scratch::kRcx, rcx_slot);
  state.rcx_in_slot = false;
  const std::uint8_t popfq[] = {0x9d};
  builder.append(state, popfq);
  state.flags_on_stack.reset();
  state.rsp_adjustment = 0;
  const std::uint8_t jump_through_slot[] = {0xff, modrm(0, 4, 5), 0, 0, 0, 0};  // jmp [rip+d]
  const std::uint64_t final_jump = builder.append(state, jump_through_slot);
  store_little_endian(std::span(builder.block().code).subspan(final_jump + 2 - tc_address, 4),
                      rip_displacement(final_jump, 6, tc_target_slot));

  // Miss: give rax and rdx back, then the flags; rcx keeps the target.
  builder.patch_rel32(miss_branch + 2, builder.address());
  GuestState miss = flags_saved;
  miss.rax_in_slot = true;
  miss.rdx_in_slot = true;
  builder.load_register(miss, Scratch::kRax, rax_slot);
  miss.rax_in_slot = false;
  builder.load_register(miss, Scratch::kRdx, rdx_slot);
  miss.rdx_in_slot = false;
  builder.append(miss, popfq);
  miss.flags_on_stack.reset();
  miss.rsp_adjustment = 0;
  builder.exit(miss, LookupMiss{});

  // Where an empty entry points: reached only by a target equal to
  // kEmptyGuestAddress, with every register the guest's.
  GuestState empty;
  empty.rip_location = RipLocation::kTargetSlot;
  const std::uint64_t empty_entry_exit = builder.address();
  builder.exit(empty, LookupMiss{});
  return {std::move(builder.block()), entry, empty_entry_exit};
}

}  // namespace vmlab::bt::detail
