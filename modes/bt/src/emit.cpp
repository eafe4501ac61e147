// Emitting translated blocks and the shared lookup routine: the TC's own
// instruction sequences, encoded by hand (each with its Intel SDM vol. 2
// form), and for every TC instruction the GuestState that rebuilds the
// guest's registers at it.
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <optional>

#include "translator.hpp"
#include "vmlab/little_endian.hpp"

namespace vmlab::bt::detail {

namespace {

constexpr std::uint8_t kInt3 = 0xcc;
constexpr std::uint8_t kRexW = 0x48;
constexpr std::size_t kRel32Length = 4;

using Scratch = BorrowedRegister;

// RFLAGS bits (Intel SDM vol. 1, 3.4.3).
constexpr std::uint32_t kCarry = 1u << 0;
constexpr std::uint32_t kParity = 1u << 2;
constexpr std::uint32_t kAuxiliaryCarry = 1u << 4;
constexpr std::uint32_t kZero = 1u << 6;
constexpr std::uint32_t kSign = 1u << 7;
constexpr std::uint32_t kTrap = 1u << 8;
constexpr std::uint32_t kInterrupt = 1u << 9;
constexpr std::uint32_t kDirection = 1u << 10;
constexpr std::uint32_t kOverflow = 1u << 11;
constexpr std::uint32_t kIopl = 3u << 12;
constexpr std::uint32_t kNestedTask = 1u << 14;
constexpr std::uint32_t kAlignmentCheck = 1u << 18;
constexpr std::uint32_t kIdentification = 1u << 21;
// What the TC keeps of the guest's flags on its pages: IF in the flag byte,
// IOPL and AC in ScratchPage::virtual_rflags.
constexpr std::uint32_t kVirtualFlags = kInterrupt | kIopl | kAlignmentCheck;
// What a popf loads at CPL0 (vol. 2B POPF, "Operation"), AC aside: the
// status flags, TF, DF, NT, IF and IOPL from the low 16 bits, and ID with a
// 64-bit operand. At CPL3 the CPU itself ignores IF and IOPL.
constexpr std::uint32_t kPoppedWord = kCarry | kParity | kAuxiliaryCarry | kZero | kSign | kTrap |
                                      kInterrupt | kDirection | kOverflow | kIopl | kNestedTask;
constexpr std::uint32_t kPoppedQuad = kPoppedWord | kIdentification;

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

  std::uint64_t append(const GuestState& state, std::initializer_list<std::uint8_t> bytes) {
    return append(state, std::span(bytes.begin(), bytes.size()));
  }
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

  // `code` with its disp32 (at displacement_offset) aimed at `target`.
  void append_rip_relative(const GuestState& state, std::span<const std::uint8_t> code,
                           std::size_t displacement_offset, std::uint64_t target) {
    std::vector<std::uint8_t> bytes(code.begin(), code.end());
    store_little_endian(std::span(bytes).subspan(displacement_offset, 4),
                        rip_displacement(address(), bytes.size(), target));
    append(state, bytes);
  }
  // An instruction whose last four bytes are a disp32 aimed at `target`.
  void append_rip_relative(const GuestState& state, std::initializer_list<std::uint8_t> opcode,
                           std::uint64_t target) {
    std::vector<std::uint8_t> bytes(opcode);
    bytes.insert(bytes.end(), 4, 0);
    append_rip_relative(state, bytes, bytes.size() - 4, target);
  }

  // Marks the last instruction as the store of the virtual IF that
  // flag_store_at describes.
  void mark_flag_store(FlagStoreKind kind) { m_block.instructions.back().flag_store = kind; }

  // jcc rel32 to a place not emitted yet: returns the rel32's address.
  std::uint64_t conditional_jump_forward(const GuestState& state, std::uint8_t condition) {
    const std::uint8_t bytes[] = {0x0f, static_cast<std::uint8_t>(0x80 | condition), 0, 0, 0, 0};
    return append(state, bytes) + 2;
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

// Code that a sequence branches to out of line, emitted after the block's
// last instruction: the exit of a popf that sets TF.
struct SlowPath {
  std::size_t guest_index = 0;
  std::uint64_t branch_rel32 = 0;  // the jcc that goes there
  std::uint64_t resume = 0;        // the TC address after the sequence
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

std::size_t save_slot(BorrowedRegister borrowed) {
  switch (borrowed) {
    case BorrowedRegister::kRax:
      return offsetof(ScratchPage, saved_rax);
    case BorrowedRegister::kRcx:
      return offsetof(ScratchPage, saved_rcx);
    case BorrowedRegister::kRdx:
      return offsetof(ScratchPage, saved_rdx);
  }
  return offsetof(ScratchPage, saved_rax);
}

GuestState with_borrowed(GuestState state, BorrowedRegister borrowed) {
  switch (borrowed) {
    case BorrowedRegister::kRax:
      state.rax_in_slot = true;
      break;
    case BorrowedRegister::kRcx:
      state.rcx_in_slot = true;
      break;
    case BorrowedRegister::kRdx:
      state.rdx_in_slot = true;
      break;
  }
  return state;
}

GuestState flags_at(GuestState state, std::int64_t rsp_adjustment,
                    std::optional<std::int32_t> flags_on_stack) {
  state.rsp_adjustment = rsp_adjustment;
  state.flags_on_stack = flags_on_stack;
  return state;
}

// mov r/m, sreg; sldt, str, smsw; sgdt, sidt in memory: save the borrowed
// register, then for each part load it from its slot and store it where the
// guest's operand says (a fault there is the guest instruction's, with its
// registers: the borrowed one is in its save slot), then give it back. The
// guest instruction has completed once the last store has.
void emit_scratch_store(Builder& builder, const GuestInstruction& instruction,
                        const CacheLayout& layout) {
  const BorrowedRegister borrowed = instruction.borrowed;
  const std::uint64_t save = slot_address(layout, save_slot(borrowed));
  const GuestState before = at_guest(instruction.address);
  const GuestState lent = with_borrowed(before, borrowed);
  builder.store_register(before, borrowed, save);
  for (const ScratchStore& store : instruction.stores) {
    builder.load_register(lent, borrowed, slot_address(layout, store.scratch_offset));
    builder.append(lent, store.code);
  }
  builder.load_register(with_borrowed(at_guest(instruction.next()), borrowed), borrowed, save);
}

// pushf (16 bits with 0x66) and pushfq: the guest's image is the real flags
// with the virtual IF, IOPL and AC in place of the real ones (IF=1, IOPL=0,
// AC=0: the VMM keeps the real AC clear in virtual kernel mode, bt_mode.cpp);
// VM and RF read as 0 in it, as the real pushf makes them (Intel SDM vol. 2B
// PUSHF, "Operation"). A second pushfq keeps the real flags below it, so
// that the arithmetic on the image can clobber them and a popfq restores
// them exactly (at CPL3 popfq ignores IF and IOPL and the copy has the real
// AC: nothing changes but the arithmetic flags, back to what they were).
//
//   pushf(q)                     the image's slot; its #PF is the guest's
//   pushfq                       a copy of the real flags, 8 bytes below
//   mov [saved_rax], rax
//   movzx eax, byte [vif]
//   and eax, 1
//   shl eax, 9                   IF
//   or rax, [virtual_rflags]
//   and eax, IF|IOPL|AC          (IF|IOPL for 16 bits: AC is bit 18)
//   and [rsp+8], ~(IF|IOPL|AC)
//   or [rsp+8], rax/ax           the image is the guest's: pushf completed
//   mov rax, [saved_rax]
//   popfq                        the real flags back
//
// Like the lookup routine's, the copy below the guest's RSP assumes the
// guest kernel keeps no data there (no red zone), as an interrupt frame
// would overwrite it.
void emit_push_flags(Builder& builder, const GuestInstruction& instruction,
                     const CacheLayout& layout) {
  const bool word = instruction.operand_size == 2;
  const std::int64_t size = word ? 2 : 8;
  const std::uint32_t mask = word ? (kInterrupt | kIopl) : kVirtualFlags;
  const std::uint64_t rax_slot = slot_address(layout, offsetof(ScratchPage, saved_rax));
  const GuestState before = at_guest(instruction.address);
  if (word) {
    builder.append(before, {0x66, 0x9c});
  } else {
    builder.append(before, {0x9c});
  }
  builder.append(flags_at(before, size, std::nullopt), {0x9c});
  builder.store_register(flags_at(before, size + 8, std::nullopt), Scratch::kRax, rax_slot);
  const GuestState lent = with_borrowed(flags_at(before, size + 8, std::nullopt), Scratch::kRax);
  builder.append_rip_relative(lent, {0x0f, 0xb6, modrm(0, 0, 5)},  // movzx eax, byte [rip+d]
                              layout.interrupt_flag_address().value());
  const GuestState clobbered = with_borrowed(flags_at(before, size + 8, 0), Scratch::kRax);
  builder.append(clobbered, {0x83, modrm(3, 4, 0), 0x01});               // and eax, 1: 83 /4 ib
  builder.append(clobbered, {0xc1, modrm(3, 4, 0), 9});                  // shl eax, 9: C1 /4 ib
  builder.append_rip_relative(clobbered, {kRexW, 0x0b, modrm(0, 0, 5)},  // or rax, [rip+d]
                              slot_address(layout, offsetof(ScratchPage, virtual_rflags)));
  std::vector<std::uint8_t> keep{0x25};  // and eax, imm32: 25 id
  append_u32(keep, mask);
  builder.append(clobbered, keep);
  // and [rsp+8], imm: 81 /4 with SIB (base rsp) and disp8.
  if (word) {
    const auto clear = static_cast<std::uint16_t>(~mask);
    builder.append(clobbered,
                   {0x66, 0x81, modrm(1, 4, 4), 0x24, 8, static_cast<std::uint8_t>(clear),
                    static_cast<std::uint8_t>(clear >> 8)});
    builder.append(clobbered, {0x66, 0x09, modrm(1, 0, 4), 0x24, 8});  // or [rsp+8], ax
  } else {
    std::vector<std::uint8_t> clear{kRexW, 0x81, modrm(1, 4, 4), 0x24, 8};
    append_u32(clear, ~mask);  // sign-extended: the upper half stays
    builder.append(clobbered, clear);
    builder.append(clobbered, {kRexW, 0x09, modrm(1, 0, 4), 0x24, 8});  // or [rsp+8], rax
  }
  const GuestState after = flags_at(at_guest(instruction.next()), 8, 0);
  builder.load_register(with_borrowed(after, Scratch::kRax), Scratch::kRax, rax_slot);
  builder.append(after, {0x9d});  // popfq
}

// popf (16 bits with 0x66) and popfq, as at CPL0 (Intel SDM vol. 2B POPF):
// the status flags, DF, NT and (popfq) ID into the real flags; the new IF
// into the flag byte; the new IOPL and (popfq) AC into
// ScratchPage::virtual_rflags, never into the real flags: at CPL3 with the
// real CR0.AM set, a real AC would raise #AC on misaligned accesses, which a
// CPL0 kernel never takes; and a CPL0 kernel's AC has no other effect here
// but relaxing SMAP, which the monitor does not enforce on the deprivileged
// kernel. An image with TF set leaves through the
// call-out the instruction was before: a real TF would single-step the TC's
// instructions, not the guest's. Setting IF opens no interrupt shadow (only
// sti and mov ss do: vol. 2B STI). RF clears, as popf completes.
//
//   mov [saved_rax], rax
//   mov rax, [rsp] / movzx eax, word [rsp]   the image; its #PF is the guest's
//   pushfq                                   the guest's flags, kept below
//   test eax, TF
//   jnz <call-out>
//   push rax                                 the image again
//   and eax, IOPL|AC (IOPL)
//   mov [virtual_rflags], rax / mov [virtual_rflags+1], ah
//                                            the new IOPL and AC (ahead)
//   mov rax, [rsp]
//   and rax, what popf loads, AC aside
//   mov [rsp], rax
//   shr eax, 9
//   and eax, 1                               al = the new IF
//   popfq / popf                             the real flags: the guest's new ones
//   mov byte [vif], al                       the commit: popf has completed
//   mov rax, [saved_rax]
//   lea rsp, [rsp+16]
//
// Before the commit the guest has not executed the popf: its flags are the
// ones kept below (flags_on_stack), and after the IOPL store its IOPL and AC
// are the VMM's own still (GuestState::virtual_flags_ahead). The commit is
// the one store that changes the flag byte: while the VMM write-protects the
// page, it faults, and flag_store_at tells the VMM the value (al).
void emit_pop_flags(Builder& builder, const GuestInstruction& instruction,
                    const CacheLayout& layout, std::vector<SlowPath>& slow_paths,
                    std::size_t guest_index) {
  const bool word = instruction.operand_size == 2;
  const std::uint64_t rax_slot = slot_address(layout, offsetof(ScratchPage, saved_rax));
  const std::uint64_t virtual_rflags = slot_address(layout, offsetof(ScratchPage, virtual_rflags));
  const GuestState before = at_guest(instruction.address);
  const GuestState lent = with_borrowed(before, Scratch::kRax);
  builder.store_register(before, Scratch::kRax, rax_slot);
  if (word) {
    builder.append(lent, {0x0f, 0xb7, modrm(0, 0, 4), 0x24});  // movzx eax, word [rsp]
  } else {
    builder.append(lent, {kRexW, 0x8b, modrm(0, 0, 4), 0x24});  // mov rax, [rsp]
  }
  builder.append(lent, {0x9c});  // pushfq
  const GuestState kept = flags_at(lent, 8, 0);
  std::vector<std::uint8_t> test{0xa9};  // test eax, imm32: A9 id
  append_u32(test, kTrap);
  builder.append(kept, test);
  const std::uint64_t to_call_out = builder.conditional_jump_forward(kept, 0x5);  // jnz
  slow_paths.push_back({guest_index, to_call_out, 0});
  builder.append(kept, {0x50});  // push rax
  const GuestState both = flags_at(lent, 16, 8);
  std::vector<std::uint8_t> virtual_part{0x25};  // and eax, imm32
  append_u32(virtual_part, word ? kIopl : (kIopl | kAlignmentCheck));
  builder.append(both, virtual_part);
  if (word) {
    builder.append_rip_relative(both, {0x88, modrm(0, 4, 5)}, virtual_rflags + 1);  // mov [d], ah
  } else {
    builder.append_rip_relative(both, {kRexW, 0x89, modrm(0, 0, 5)}, virtual_rflags);
  }
  GuestState ahead = both;
  ahead.virtual_flags_ahead = true;
  builder.append(ahead, {kRexW, 0x8b, modrm(0, 0, 4), 0x24});  // mov rax, [rsp]
  std::vector<std::uint8_t> loaded{kRexW, 0x25};               // and rax, imm32 (sign-extended)
  append_u32(loaded, word ? kPoppedWord : kPoppedQuad);
  builder.append(ahead, loaded);
  builder.append(ahead, {kRexW, 0x89, modrm(0, 0, 4), 0x24});  // mov [rsp], rax
  builder.append(ahead, {0xc1, modrm(3, 5, 0), 9});            // shr eax, 9: C1 /5 ib
  builder.append(ahead, {0x83, modrm(3, 4, 0), 0x01});         // and eax, 1
  if (word) {
    builder.append(ahead, {0x66, 0x9d});  // popf: the low 16 bits
  } else {
    builder.append(ahead, {0x9d});
  }
  // The real popf released 8 (2) of the 16 bytes below the image; the
  // guest's flags are 8 bytes below the image still.
  GuestState committing = ahead;
  committing.rsp_adjustment = word ? 14 : 8;
  committing.flags_on_stack = word ? 6 : 0;
  builder.append_rip_relative(committing, {0x88, modrm(0, 0, 5)},  // mov byte [rip+d], al
                              layout.interrupt_flag_address().value());
  builder.mark_flag_store(FlagStoreKind::kRegisterAl);
  const GuestState after = flags_at(at_guest(instruction.next()), 16, std::nullopt);
  builder.load_register(with_borrowed(after, Scratch::kRax), Scratch::kRax, rax_slot);
  std::vector<std::uint8_t> release{kRexW, 0x8d, modrm(2, 4, 4), 0x24};  // lea rsp, [rsp+16]
  append_u32(release, 16);
  builder.append(after, release);
  slow_paths.back().resume = builder.address();
}

// The way out of a popf whose image sets TF: the guest's rax and flags
// back, then the call-out, after which the block goes on.
void emit_slow_path(Builder& builder, const SlowPath& path, const GuestInstruction& instruction,
                    const CacheLayout& layout) {
  builder.set_guest_instruction(path.guest_index);
  builder.patch_rel32(path.branch_rel32, builder.address());
  const GuestState before = at_guest(instruction.address);
  const GuestState kept = flags_at(before, 8, 0);
  builder.load_register(with_borrowed(kept, Scratch::kRax), Scratch::kRax,
                        slot_address(layout, offsetof(ScratchPage, saved_rax)));
  builder.append(kept, {0x9d});  // popfq: the guest's flags, RSP the guest's
  builder.exit(before, CallOut{GuestVirtAddr(0), instruction.address, instruction.length,
                               instruction.mnemonic, instruction.reason});
  builder.jump(at_guest(instruction.next()), path.resume);
}

void emit_instruction(Builder& builder, const GuestInstruction& instruction,
                      const CacheLayout& layout, std::uint64_t lookup_routine,
                      std::vector<SlowPath>& slow_paths, std::size_t guest_index) {
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
      builder.mark_flag_store(instruction.treatment == Treatment::kSetInterruptFlag
                                  ? FlagStoreKind::kSet
                                  : FlagStoreKind::kClear);
      return;
    case Treatment::kScratchLoad:
      // One instruction, the guest's own with the slot as its source: it
      // completes or faults (push fs/gs: the push) as the guest's would.
      builder.append_rip_relative(before, instruction.code, instruction.displacement_offset,
                                  slot_address(layout, instruction.scratch_offset));
      return;
    case Treatment::kScratchStore:
      emit_scratch_store(builder, instruction, layout);
      return;
    case Treatment::kPushFlags:
      emit_push_flags(builder, instruction, layout);
      return;
    case Treatment::kPopFlags:
      emit_pop_flags(builder, instruction, layout, slow_paths, guest_index);
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
      builder.exit(before, CallOut{GuestVirtAddr(0), instruction.address, instruction.length,
                                   instruction.mnemonic, instruction.reason});
      return;
  }
}

}  // namespace

EmittedBlock emit_block(const GuestBlock& block, const CacheLayout& layout,
                        std::uint64_t tc_address, std::uint64_t lookup_routine) {
  Builder builder(tc_address);
  std::vector<SlowPath> slow_paths;
  for (std::size_t index = 0; index < block.instructions.size(); ++index) {
    const GuestInstruction& instruction = block.instructions[index];
    builder.set_guest_instruction(index);
    const std::size_t first = builder.block().instructions.size();
    emit_instruction(builder, instruction, layout, lookup_routine, slow_paths, index);
    builder.block().guest_instructions.push_back(
        {instruction, first, builder.block().instructions.size() - first});
  }
  if (block.falls_through) {
    builder.set_guest_instruction(kNoGuestInstruction);
    builder.jump_to_guest(at_guest(block.end), block.end);
  }
  for (const SlowPath& path : slow_paths)
    emit_slow_path(builder, path, block.instructions[path.guest_index], layout);
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
