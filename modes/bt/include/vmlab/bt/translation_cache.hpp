// The translator and translation cache of `--cpu bt` (DESIGN.md 1): guest
// kernel code is never executed as it is; the VMM translates it, one basic
// block at a time, into a translation cache (TC) mapped into the guest, and
// the guest kernel runs at CPL3 from there, with its own registers in the
// real ones and its own stack.
//
// What the translator does to each guest instruction:
//   - innocuous instructions (arithmetic, logic, data transfer, string
//     operations, ...) are copied as they are (IDENT); a RIP-relative memory
//     operand is rewritten to the absolute guest address;
//   - cli and sti are one store each to the virtual IF byte
//     (mov byte [rip+vif], 0 or 1): no trap while no interrupt is pending;
//   - direct jumps, conditional jumps, loop/jrcxz and direct calls become
//     rel32 branches to exit sites, patched to go straight to the target's
//     block once it is translated (chaining); call pushes the guest's return
//     address, never a TC address, so the guest sees its own stack;
//   - ret, indirect jmp and indirect call compute the guest target into rcx
//     and go to one shared lookup routine, which finds the target's block in
//     the indirect-branch table and jumps there without leaving the VM;
//   - the x86 holes, sensitive but unprivileged (at CPL3 they would run with
//     the real CPU's answer), become inline sequences on the virtual values
//     the VMM keeps on the scratch page (ScratchPage), with no exit:
//       mov r/m, sreg and push fs/gs   the virtual selector (a register gets
//                                      it as the CPU writes it; memory 16 bits)
//       sgdt, sidt                     the virtual limit, then base (memory)
//       sldt, str, smsw                the virtual LDTR, TR, CR0 (register or
//                                      memory)
//       pushf, pushfq                  the real flags with the virtual IF,
//                                      IOPL and AC
//       popf, popfq                    the real flags; IF to the flag byte,
//                                      IOPL and AC to the scratch page; one
//                                      whose image sets TF calls out
//     A memory form borrows a register its operand does not name, saved in
//     its slot. lar, lsl, verr and verw stay call-outs: each is a walk of the
//     virtual GDT with its type and privilege rules, and kernels rarely run
//     them (the listing says "call-out: rare");
//   - privileged and sensitive instructions become call-outs: an int3 the VMM
//     handles (it emulates the instruction with `full`'s emulator).
// A guest instruction on no list stops translation with
// TranslationError::kUnknownInstruction: nothing is copied unless it is known
// to be harmless.
//
// How the VMM drives it (the run loop of a bt CpuMode):
//   1. Entering guest-kernel code at guest RIP r: lookup_or_translate(r)
//      gives the TC address to run at.
//   2. The TC leaves only through int3 (#BP from CPL3 reaches the monitor);
//      with T = the trap frame's RIP - 1, take_exit(T) says what it was:
//        BranchExit  chain(site) translates the target, patches the branch
//                    and returns where to resume; the registers are the
//                    guest's already.
//        LookupMiss  recover_guest_registers(T) gives the guest's registers
//                    and, as their rip, the branch target;
//                    lookup_or_translate(target) gives where to resume
//                    (with the recovered registers: rcx is the guest's again).
//        CallOut     the registers are the guest's, rip = site.guest_rip;
//                    emulate; resume at resume_after(site) if the guest's
//                    next RIP is site.guest_rip + site.length, else at
//                    lookup_or_translate(next RIP) (or in user mode).
//   3. Any other stop with a RIP inside the code area (contains()): a fault of
//      a translated instruction, or an interrupt that kicked the vCPU out:
//      recover_guest_registers(RIP) gives the guest's registers and RIP to
//      reflect the fault at, or to deliver the interrupt with; the guest goes
//      on from lookup_or_translate(its new RIP).
//   4. A write fault on the interrupt-flag page (the VMM write-protects it
//      while an interrupt is pending): flag_store_at(RIP) says which value
//      cli, sti or popf stored (popf's: the real al at the fault) and where
//      the TC continues; the VMM sets the virtual IF, delivers what is due
//      (after sti's one-instruction shadow; popf has none) and resumes.
//   The VMM keeps the scratch page's virtual values current before the guest
//   kernel runs from the TC (write_scratch), and after an exit takes back
//   the IOPL and AC popf may have stored there (GuestState::
//   virtual_flags_ahead says when they are not the guest's yet).
//   5. A write to a guest page that holds translated code (the VMM
//      write-protects code pages): invalidate_page(frame). Recover the guest
//      state first if the vCPU stopped inside a block that may go, and resume
//      through lookup_or_translate: invalidated code is overwritten with int3.
// Blocks are keyed by guest-virtual address and record guest-physical frames;
// a guest that maps kernel code differently in different address spaces
// needs a flush() when CR3 changes.
//
// Where blocks go: each at its guest address modulo CacheLayout::
// block_alignment (int3 between them), and each translation brings up to
// CacheLayout::translate_ahead more with it, along its direct branches and
// to the return addresses of its calls, all chained. The second is what
// matters on kvm_pvm: there every exit to chain a branch costs ~90 us, and
// kernel-compute's loop paid five of them between its two rdtsc (about 1M
// cycles, a fixed cost that looked like a slow loop: 4.9-5.1 cycles per
// round at n=1000000 against the user loop's 4.0; per round both take 4.1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "vmlab/address.hpp"
#include "vmlab/bt/cache_layout.hpp"
#include "vmlab/bt/code_reader.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/result.hpp"

namespace vmlab::bt {

// Why the translator or the cache refused.
enum class TranslationError {
  kUnknownInstruction = 1,  // a guest instruction on no list: stop the guest (bytes and RIP said)
  kCodeNotMapped,           // the guest cannot fetch code there: it takes a #PF on the fetch
  kCacheFull,               // a block does not fit even in an empty code area: enlarge the layout
  kRipRelativeOutOfReach,   // a RIP-relative target is outside the sign-extended 32-bit range
  kInvalidLayout,           // the CacheLayout or the region does not hold together
  kNotInCache,              // the TC address is not the start of a live TC instruction
  kStackUnreadable,         // the guest flags the TC saved on the guest's stack cannot be read
};
constexpr const char* error_domain(TranslationError) {
  return "translation";
}
// A kind converts to std::error_code through make_error_code, which argument-
// dependent lookup seeks in the kind's own namespace.
using vmlab::make_error_code;

// Why an instruction is a call-out. The last five classes are sensitive but
// unprivileged (the x86 holes: at CPL3 they run without a trap and with the
// wrong answer); all but kSegmentCheck are inline sequences on the scratch
// page's virtual values, and call out only where the sequence cannot do the
// work: a popf whose image sets TF, an operand Zydis cannot re-encode.
enum class CallOutReason {
  kPortIo = 1,             // in, out, ins, outs
  kControlRegister,        // mov to or from CR0-CR8, clts, lmsw
  kDebugRegister,          // mov to or from DR0-DR7
  kModelSpecificRegister,  // rdmsr, wrmsr
  kDescriptorTableLoad,    // lgdt, lidt, lldt, ltr
  kSegmentLoad,            // mov to a segment register, pop fs/gs, lss/lfs/lgs
  kTlbInvalidation,        // invlpg, invpcid
  kCacheControl,           // wbinvd, invd
  kHalt,                   // hlt
  kCpuid,                  // cpuid (PLATFORM.md: never trusted at CPL3)
  kSwapgs,                 // swapgs
  kPerformanceCounter,     // rdpmc
  kMonitorWait,            // monitor, mwait
  kAccessControl,          // clac, stac
  kInterruptReturn,        // iret, iretd, iretq
  kFarTransfer,            // far jmp, far call, far ret
  kSystemCall,             // syscall, sysret, sysenter, sysexit
  kSoftwareInterrupt,      // int n, int3, int1: the VMM reflects the guest's own exception
  kInvalidInstruction,     // ud0/ud1/ud2 and bytes that decode to nothing: the VMM reflects #UD
  kFlagsRead,              // pushf
  kFlagsWrite,             // popf
  kSegmentRead,            // mov from a segment register, push fs/gs
  kSystemTableRead,        // sgdt, sidt, sldt, str, smsw
  kSegmentCheck,           // lar, lsl, verr, verw
};
const char* to_string(CallOutReason reason);

// Where the guest's RIP is at a TC instruction.
enum class RipLocation {
  kAddress,         // GuestState::rip
  kTargetRegister,  // the real rcx: an indirect branch that has completed, target not stored yet
  kTargetSlot,      // ScratchPage::guest_target: inside the lookup routine
};

// How to rebuild the guest's state from the real one when the CPU stops at a
// TC instruction (the instruction not executed yet: a fault in it, or an
// interrupt before it). One per TC instruction; recover_guest_registers
// applies it.
struct GuestState {
  // The guest instruction to report: its start when it has not completed (a
  // fault re-executes it), or the next guest RIP when it has (a ret whose pop
  // is done is at its target).
  RipLocation rip_location = RipLocation::kAddress;
  GuestVirtAddr rip;
  std::int64_t rsp_adjustment = 0;  // guest RSP = real RSP + this
  // The guest's RFLAGS (arithmetic flags) pushed at real RSP + this; none:
  // the real RFLAGS are the guest's.
  std::optional<std::int32_t> flags_on_stack;
  bool rax_in_slot = false;  // the guest's rax is ScratchPage::saved_rax, not the real rax
  bool rcx_in_slot = false;
  bool rdx_in_slot = false;
  // Inside a popf that has stored its new IOPL and AC in
  // ScratchPage::virtual_rflags but not yet committed (stored the new IF):
  // the guest's IOPL and AC are still the ones the VMM last wrote there, not
  // what the page holds now.
  bool virtual_flags_ahead = false;

  bool operator==(const GuestState&) const = default;
};

// The end of a direct branch whose target had no block yet. chain() makes the
// branch jump straight to the target's block.
struct BranchExit {
  GuestVirtAddr exit_address;  // the int3
  GuestVirtAddr guest_target;
  GuestVirtAddr patch_site;  // the rel32 field chain() rewrites
};

// The lookup routine found no entry for the target: the target is in rcx and
// in ScratchPage::guest_target, the guest's rcx in its slot.
struct LookupMiss {
  GuestVirtAddr exit_address;
};

// An instruction the VMM carries out. The real registers are the guest's.
struct CallOut {
  GuestVirtAddr exit_address;
  GuestVirtAddr guest_rip;
  std::uint8_t length = 0;  // of the guest instruction; 0 for bytes that decode to nothing
  std::string mnemonic;     // Zydis's ("in", "mov", "hlt", "(bad)")
  CallOutReason reason = CallOutReason::kInvalidInstruction;
};

using ExitSite = std::variant<BranchExit, LookupMiss, CallOut>;

// The store cli, sti or popf makes to the interrupt-flag page (popf: the
// last TC instruction of its sequence, the one that completes it).
struct VirtualFlagStore {
  enum class Value {
    kZero,        // cli
    kOne,         // sti
    kRegisterAl,  // popf: the real al at the store, 0 or 1 (the popped image's IF)
  };
  Value value = Value::kZero;
  // sti's one-instruction interrupt shadow (Intel SDM vol. 2B STI); a popf
  // that sets IF has none.
  bool opens_interrupt_shadow = false;
  std::string mnemonic;          // of the guest instruction
  GuestVirtAddr guest_rip;       // of the guest instruction
  GuestVirtAddr next_guest_rip;  // after it
  GuestVirtAddr resume_address;  // the TC instruction after the store

  // What the store writes, given the real registers at the store.
  bool interrupts_enabled(const monitor::GuestRegisters& real) const {
    switch (value) {
      case Value::kZero:
        return false;
      case Value::kOne:
        return true;
      case Value::kRegisterAl:
        return (real.rax & 0xff) != 0;
    }
    return false;
  }
};

struct Statistics {
  std::uint64_t blocks_translated = 0;
  std::uint64_t blocks_translated_ahead = 0;  // of those, before the guest asked (translate_ahead)
  std::uint64_t guest_instructions_translated = 0;
  std::uint64_t tc_bytes_used = 0;  // of the code area now, dead blocks included
  // Of those, the int3 between blocks that places each block at its guest
  // address modulo CacheLayout::block_alignment.
  std::uint64_t tc_padding_bytes = 0;
  // lookup_or_translate and chain calls (each once), and of those the ones
  // whose target's block existed already (translated before, or ahead):
  // the TC hit rate is lookup_hits / lookups.
  std::uint64_t lookups = 0;
  std::uint64_t lookup_hits = 0;
  std::uint64_t branch_exits = 0;  // take_exit()s of BranchExit sites
  std::uint64_t chained_branches = 0;
  std::uint64_t lookup_misses = 0;
  std::uint64_t blocks_invalidated = 0;
  std::uint64_t page_invalidations = 0;  // invalidate_page calls that removed a block
  std::uint64_t flushes = 0;
  // Taken, by mnemonic; a mov, push or pop by what it moves ("mov cr",
  // "mov dr", "mov sreg": to a segment register).
  std::map<std::string, std::uint64_t> call_outs;
};

// "97.3% (1234 of 1268 lookups ...)": the TC hit rate, for people.
std::string hit_rate(const Statistics& statistics);

class TranslationCache {
 public:
  // `region` is the host's view of the whole TC region (layout.size bytes);
  // the cache writes the table and the code area, never the two pages. The
  // layout must be page-aligned, under 2 GiB, with a power-of-two table.
  static Result<TranslationCache> create(CacheLayout layout, std::span<std::uint8_t> region);
  TranslationCache(TranslationCache&&) noexcept;
  TranslationCache& operator=(TranslationCache&&) noexcept;
  ~TranslationCache();

  const CacheLayout& layout() const;

  // The TC address of the block that starts at guest_rip, translated now if
  // there is none (flushing everything first if the code area is full); the
  // block is entered in the indirect-branch table either way.
  Result<GuestVirtAddr> lookup_or_translate(GuestVirtAddr guest_rip, CodeReader& reader);
  std::optional<GuestVirtAddr> find(GuestVirtAddr guest_rip) const;  // never translates

  // The exit site whose int3 is at tc_address.
  std::optional<ExitSite> exit_at(GuestVirtAddr tc_address) const;
  // exit_at, counted in the statistics: the VMM calls it once per exit taken.
  std::optional<ExitSite> take_exit(GuestVirtAddr tc_address);
  // Translates the site's target and patches its branch to jump there;
  // returns the TC address to resume at. A site whose block went since (an
  // invalidation, or the flush that translating the target needed) is not
  // patched; the target's address is returned all the same.
  Result<GuestVirtAddr> chain(const BranchExit& site, CodeReader& reader);
  static GuestVirtAddr resume_after(const CallOut& site) { return site.exit_address + 1; }

  // Precise state: for the start of every live TC instruction (blocks, exit
  // stubs, the lookup routine), how the guest's state is rebuilt.
  std::optional<GuestState> guest_state_at(GuestVirtAddr tc_address) const;
  // The guest's registers for a stop at tc_address, from the real ones there.
  // rflags come out as the real CPU had them (IF=1, IOPL=0): merge the
  // virtual IF and IOPL. `memory` reads the guest's stack (the lookup routine
  // keeps the guest's flags there).
  Result<monitor::GuestRegisters> recover_guest_registers(
      GuestVirtAddr tc_address, const monitor::GuestRegisters& real,
      monitor::GuestVirtualMemory& memory) const;
  std::optional<VirtualFlagStore> flag_store_at(GuestVirtAddr tc_address) const;

  bool contains(GuestVirtAddr address) const;  // inside the code area
  GuestVirtAddr lookup_routine() const;        // the shared routine's entry

  // Removes every block with bytes on the guest-physical page that holds
  // `page`, unchains the branches into them, clears their table entries, and
  // overwrites their code with int3. Returns how many blocks went.
  std::size_t invalidate_page(GuestPhysAddr page);
  void flush();  // every block, every link, every table entry

  // The two pages the VMM keeps.
  ScratchPage scratch() const;
  void write_scratch(const ScratchPage& page);
  bool virtual_interrupt_flag() const;
  void set_virtual_interrupt_flag(bool enabled);

  const Statistics& statistics() const;
  // For students (`--translations FILE`): each live block, guest instruction
  // by guest instruction: address, bytes, disassembly, and beside it the TC
  // instructions that translate it and what the translator did.
  std::string listing() const;
  std::optional<std::string> describe(GuestVirtAddr guest_rip) const;  // one block

 private:
  struct Implementation;
  explicit TranslationCache(std::unique_ptr<Implementation> implementation);
  // lookup_or_translate without counting the lookup (chain counts its own).
  Result<GuestVirtAddr> find_or_translate(GuestVirtAddr guest_rip, CodeReader& reader);
  std::unique_ptr<Implementation> m_implementation;
};

}  // namespace vmlab::bt

VMLAB_ERROR_KINDS(vmlab::bt::TranslationError);
