// Decoding guest blocks and deciding, instruction by instruction, what the
// translator does with each: the allow-lists. Nothing is copied unless a
// list names it.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdio>
#include <optional>

#include "translator.hpp"
#include "vmlab/format.hpp"

namespace vmlab::bt::detail {

namespace {

constexpr std::size_t kMaximumInstructionLength = 15;  // Intel SDM vol. 2A, 2.3.11

// What the translator does with each mnemonic it knows (STYLE.md 12: one
// table). A mnemonic not in it is refused.
enum class Family : std::uint8_t {
  kUnlisted,
  // Copied as they are (IDENT): they compute on general-purpose registers,
  // memory and the arithmetic flags only, and behave the same at CPL3 as at
  // CPL0. Each is also checked for operands: a segment, control or debug
  // register makes a mov, push or pop a call-out, and any other register
  // class (x87, SSE, ...) keeps it off the list.
  kInnocuous,
  kCallOut,  // privileged or sensitive: the reason says which kind
  kClearInterruptFlag,
  kSetInterruptFlag,
  kPushFlags,   // pushf, pushfq: inline, on the virtual IF, IOPL and AC
  kPopFlags,    // popf, popfq: inline, likewise
  kSystemRead,  // sgdt, sidt, sldt, str, smsw: inline, from the scratch page
  kJumpOrCall,  // near relative, near indirect, or far
  kReturn,      // near or far
  kConditionalJump,
  kLoop,
};

struct Listed {
  ZydisMnemonic mnemonic = ZYDIS_MNEMONIC_INVALID;
  Family family = Family::kUnlisted;
  CallOutReason reason = CallOutReason::kInvalidInstruction;
};

constexpr Listed kListed[] = {
    // Arithmetic and logic.
    {ZYDIS_MNEMONIC_ADD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_ADC, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SUB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SBB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_AND, Family::kInnocuous},
    {ZYDIS_MNEMONIC_OR, Family::kInnocuous},
    {ZYDIS_MNEMONIC_XOR, Family::kInnocuous},
    {ZYDIS_MNEMONIC_NOT, Family::kInnocuous},
    {ZYDIS_MNEMONIC_NEG, Family::kInnocuous},
    {ZYDIS_MNEMONIC_INC, Family::kInnocuous},
    {ZYDIS_MNEMONIC_DEC, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMP, Family::kInnocuous},
    {ZYDIS_MNEMONIC_TEST, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MUL, Family::kInnocuous},
    {ZYDIS_MNEMONIC_IMUL, Family::kInnocuous},
    {ZYDIS_MNEMONIC_DIV, Family::kInnocuous},  // a #DE is reported at the guest RIP (GuestState)
    {ZYDIS_MNEMONIC_IDIV, Family::kInnocuous},
    {ZYDIS_MNEMONIC_ADCX, Family::kInnocuous},
    {ZYDIS_MNEMONIC_ADOX, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MULX, Family::kInnocuous},
    // Shifts, rotates, bits.
    {ZYDIS_MNEMONIC_SHL, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SHR, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SAR, Family::kInnocuous},
    {ZYDIS_MNEMONIC_ROL, Family::kInnocuous},
    {ZYDIS_MNEMONIC_ROR, Family::kInnocuous},
    {ZYDIS_MNEMONIC_RCL, Family::kInnocuous},
    {ZYDIS_MNEMONIC_RCR, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SHLD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SHRD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SHLX, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SHRX, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SARX, Family::kInnocuous},
    {ZYDIS_MNEMONIC_RORX, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BT, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BTS, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BTR, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BTC, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BSF, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BSR, Family::kInnocuous},
    {ZYDIS_MNEMONIC_LZCNT, Family::kInnocuous},
    {ZYDIS_MNEMONIC_TZCNT, Family::kInnocuous},
    {ZYDIS_MNEMONIC_POPCNT, Family::kInnocuous},
    {ZYDIS_MNEMONIC_ANDN, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BEXTR, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BLSI, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BLSMSK, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BLSR, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BZHI, Family::kInnocuous},
    {ZYDIS_MNEMONIC_PDEP, Family::kInnocuous},
    {ZYDIS_MNEMONIC_PEXT, Family::kInnocuous},
    {ZYDIS_MNEMONIC_BSWAP, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CRC32, Family::kInnocuous},
    // Data transfer (mov with a segment, control or debug register is not
    // this: the operand check sends it to a call-out).
    {ZYDIS_MNEMONIC_MOV, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MOVZX, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MOVSX, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MOVSXD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MOVBE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MOVNTI, Family::kInnocuous},
    {ZYDIS_MNEMONIC_LEA, Family::kInnocuous},
    {ZYDIS_MNEMONIC_XCHG, Family::kInnocuous},
    {ZYDIS_MNEMONIC_XADD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMPXCHG, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMPXCHG8B, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMPXCHG16B, Family::kInnocuous},
    {ZYDIS_MNEMONIC_PUSH, Family::kInnocuous},
    {ZYDIS_MNEMONIC_POP, Family::kInnocuous},
    {ZYDIS_MNEMONIC_ENTER, Family::kInnocuous},
    {ZYDIS_MNEMONIC_LEAVE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_XLAT, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CBW, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CWDE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CDQE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CWD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CDQ, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CQO, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVO, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVNO, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVNB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVZ, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVNZ, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVBE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVNBE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVS, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVNS, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVP, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVNP, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVL, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVNL, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVLE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMOVNLE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETO, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETNO, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETNB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETZ, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETNZ, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETBE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETNBE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETS, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETNS, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETP, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETNP, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETL, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETNL, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETLE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SETNLE, Family::kInnocuous},
    // String operations, with or without rep (the SSE movsd/cmpsd share
    // these mnemonics: their XMM operands fail the operand check).
    {ZYDIS_MNEMONIC_MOVSB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MOVSW, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MOVSD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MOVSQ, Family::kInnocuous},
    {ZYDIS_MNEMONIC_STOSB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_STOSW, Family::kInnocuous},
    {ZYDIS_MNEMONIC_STOSD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_STOSQ, Family::kInnocuous},
    {ZYDIS_MNEMONIC_LODSB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_LODSW, Family::kInnocuous},
    {ZYDIS_MNEMONIC_LODSD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_LODSQ, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SCASB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SCASW, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SCASD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SCASQ, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMPSB, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMPSW, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMPSD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMPSQ, Family::kInnocuous},
    // Flags the guest may change at any privilege.
    {ZYDIS_MNEMONIC_CLC, Family::kInnocuous},
    {ZYDIS_MNEMONIC_STC, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CMC, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CLD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_STD, Family::kInnocuous},
    {ZYDIS_MNEMONIC_LAHF, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SAHF, Family::kInnocuous},
    // Hints, fences, time (CR4.TSD is 0 for the guest: rdtsc runs at CPL3).
    {ZYDIS_MNEMONIC_NOP, Family::kInnocuous},
    {ZYDIS_MNEMONIC_PAUSE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_ENDBR64, Family::kInnocuous},
    {ZYDIS_MNEMONIC_LFENCE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_MFENCE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_SFENCE, Family::kInnocuous},
    {ZYDIS_MNEMONIC_PREFETCH, Family::kInnocuous},
    {ZYDIS_MNEMONIC_PREFETCHW, Family::kInnocuous},
    {ZYDIS_MNEMONIC_PREFETCHNTA, Family::kInnocuous},
    {ZYDIS_MNEMONIC_PREFETCHT0, Family::kInnocuous},
    {ZYDIS_MNEMONIC_PREFETCHT1, Family::kInnocuous},
    {ZYDIS_MNEMONIC_PREFETCHT2, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CLFLUSH, Family::kInnocuous},
    {ZYDIS_MNEMONIC_CLFLUSHOPT, Family::kInnocuous},
    {ZYDIS_MNEMONIC_RDTSC, Family::kInnocuous},
    {ZYDIS_MNEMONIC_RDTSCP, Family::kInnocuous},
    {ZYDIS_MNEMONIC_RDRAND, Family::kInnocuous},
    {ZYDIS_MNEMONIC_RDSEED, Family::kInnocuous},
    // Privileged, or sensitive at CPL3: call-outs.
    {ZYDIS_MNEMONIC_IN, Family::kCallOut, CallOutReason::kPortIo},
    {ZYDIS_MNEMONIC_OUT, Family::kCallOut, CallOutReason::kPortIo},
    {ZYDIS_MNEMONIC_INSB, Family::kCallOut, CallOutReason::kPortIo},
    {ZYDIS_MNEMONIC_INSW, Family::kCallOut, CallOutReason::kPortIo},
    {ZYDIS_MNEMONIC_INSD, Family::kCallOut, CallOutReason::kPortIo},
    {ZYDIS_MNEMONIC_OUTSB, Family::kCallOut, CallOutReason::kPortIo},
    {ZYDIS_MNEMONIC_OUTSW, Family::kCallOut, CallOutReason::kPortIo},
    {ZYDIS_MNEMONIC_OUTSD, Family::kCallOut, CallOutReason::kPortIo},
    {ZYDIS_MNEMONIC_CLTS, Family::kCallOut, CallOutReason::kControlRegister},
    {ZYDIS_MNEMONIC_LMSW, Family::kCallOut, CallOutReason::kControlRegister},
    {ZYDIS_MNEMONIC_RDMSR, Family::kCallOut, CallOutReason::kModelSpecificRegister},
    {ZYDIS_MNEMONIC_WRMSR, Family::kCallOut, CallOutReason::kModelSpecificRegister},
    {ZYDIS_MNEMONIC_LGDT, Family::kCallOut, CallOutReason::kDescriptorTableLoad},
    {ZYDIS_MNEMONIC_LIDT, Family::kCallOut, CallOutReason::kDescriptorTableLoad},
    {ZYDIS_MNEMONIC_LLDT, Family::kCallOut, CallOutReason::kDescriptorTableLoad},
    {ZYDIS_MNEMONIC_LTR, Family::kCallOut, CallOutReason::kDescriptorTableLoad},
    {ZYDIS_MNEMONIC_LSS, Family::kCallOut, CallOutReason::kSegmentLoad},
    {ZYDIS_MNEMONIC_LFS, Family::kCallOut, CallOutReason::kSegmentLoad},
    {ZYDIS_MNEMONIC_LGS, Family::kCallOut, CallOutReason::kSegmentLoad},
    {ZYDIS_MNEMONIC_INVLPG, Family::kCallOut, CallOutReason::kTlbInvalidation},
    {ZYDIS_MNEMONIC_INVPCID, Family::kCallOut, CallOutReason::kTlbInvalidation},
    {ZYDIS_MNEMONIC_WBINVD, Family::kCallOut, CallOutReason::kCacheControl},
    {ZYDIS_MNEMONIC_INVD, Family::kCallOut, CallOutReason::kCacheControl},
    {ZYDIS_MNEMONIC_HLT, Family::kCallOut, CallOutReason::kHalt},
    {ZYDIS_MNEMONIC_CPUID, Family::kCallOut, CallOutReason::kCpuid},
    {ZYDIS_MNEMONIC_SWAPGS, Family::kCallOut, CallOutReason::kSwapgs},
    {ZYDIS_MNEMONIC_RDPMC, Family::kCallOut, CallOutReason::kPerformanceCounter},
    {ZYDIS_MNEMONIC_MONITOR, Family::kCallOut, CallOutReason::kMonitorWait},
    {ZYDIS_MNEMONIC_MWAIT, Family::kCallOut, CallOutReason::kMonitorWait},
    {ZYDIS_MNEMONIC_CLAC, Family::kCallOut, CallOutReason::kAccessControl},
    {ZYDIS_MNEMONIC_STAC, Family::kCallOut, CallOutReason::kAccessControl},
    {ZYDIS_MNEMONIC_IRET, Family::kCallOut, CallOutReason::kInterruptReturn},
    {ZYDIS_MNEMONIC_IRETD, Family::kCallOut, CallOutReason::kInterruptReturn},
    {ZYDIS_MNEMONIC_IRETQ, Family::kCallOut, CallOutReason::kInterruptReturn},
    {ZYDIS_MNEMONIC_SYSCALL, Family::kCallOut, CallOutReason::kSystemCall},
    {ZYDIS_MNEMONIC_SYSRET, Family::kCallOut, CallOutReason::kSystemCall},
    {ZYDIS_MNEMONIC_SYSENTER, Family::kCallOut, CallOutReason::kSystemCall},
    {ZYDIS_MNEMONIC_SYSEXIT, Family::kCallOut, CallOutReason::kSystemCall},
    {ZYDIS_MNEMONIC_INT, Family::kCallOut, CallOutReason::kSoftwareInterrupt},
    {ZYDIS_MNEMONIC_INT1, Family::kCallOut, CallOutReason::kSoftwareInterrupt},
    {ZYDIS_MNEMONIC_INT3, Family::kCallOut, CallOutReason::kSoftwareInterrupt},
    {ZYDIS_MNEMONIC_UD0, Family::kCallOut, CallOutReason::kInvalidInstruction},
    {ZYDIS_MNEMONIC_UD1, Family::kCallOut, CallOutReason::kInvalidInstruction},
    {ZYDIS_MNEMONIC_UD2, Family::kCallOut, CallOutReason::kInvalidInstruction},
    // The x86 holes (sensitive, unprivileged): inline sequences on the
    // scratch page's virtual values. pushf/popf keep their reasons for the
    // exits they still take (popf setting TF).
    {ZYDIS_MNEMONIC_PUSHF, Family::kPushFlags, CallOutReason::kFlagsRead},
    {ZYDIS_MNEMONIC_PUSHFQ, Family::kPushFlags, CallOutReason::kFlagsRead},
    {ZYDIS_MNEMONIC_POPF, Family::kPopFlags, CallOutReason::kFlagsWrite},
    {ZYDIS_MNEMONIC_POPFQ, Family::kPopFlags, CallOutReason::kFlagsWrite},
    {ZYDIS_MNEMONIC_SGDT, Family::kSystemRead, CallOutReason::kSystemTableRead},
    {ZYDIS_MNEMONIC_SIDT, Family::kSystemRead, CallOutReason::kSystemTableRead},
    {ZYDIS_MNEMONIC_SLDT, Family::kSystemRead, CallOutReason::kSystemTableRead},
    {ZYDIS_MNEMONIC_STR, Family::kSystemRead, CallOutReason::kSystemTableRead},
    {ZYDIS_MNEMONIC_SMSW, Family::kSystemRead, CallOutReason::kSystemTableRead},
    // Rare in kernels, and each a walk of the virtual GDT with its type and
    // privilege rules: left to the VMM's emulator.
    {ZYDIS_MNEMONIC_LAR, Family::kCallOut, CallOutReason::kSegmentCheck},
    {ZYDIS_MNEMONIC_LSL, Family::kCallOut, CallOutReason::kSegmentCheck},
    {ZYDIS_MNEMONIC_VERR, Family::kCallOut, CallOutReason::kSegmentCheck},
    {ZYDIS_MNEMONIC_VERW, Family::kCallOut, CallOutReason::kSegmentCheck},
    // Control flow.
    {ZYDIS_MNEMONIC_CLI, Family::kClearInterruptFlag},
    {ZYDIS_MNEMONIC_STI, Family::kSetInterruptFlag},
    {ZYDIS_MNEMONIC_JMP, Family::kJumpOrCall},
    {ZYDIS_MNEMONIC_CALL, Family::kJumpOrCall},
    {ZYDIS_MNEMONIC_RET, Family::kReturn},
    {ZYDIS_MNEMONIC_JO, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JNO, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JB, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JNB, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JZ, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JNZ, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JBE, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JNBE, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JS, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JNS, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JP, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JNP, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JL, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JNL, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JLE, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_JNLE, Family::kConditionalJump},
    {ZYDIS_MNEMONIC_LOOP, Family::kLoop},
    {ZYDIS_MNEMONIC_LOOPE, Family::kLoop},
    {ZYDIS_MNEMONIC_LOOPNE, Family::kLoop},
    {ZYDIS_MNEMONIC_JRCXZ, Family::kLoop},
    {ZYDIS_MNEMONIC_JECXZ, Family::kLoop},
};

// kListed indexed by mnemonic, so that classifying is one load.
constexpr auto kByMnemonic = [] {
  std::array<Listed, ZYDIS_MNEMONIC_MAX_VALUE + 1> table{};
  for (const Listed& entry : kListed)
    table[entry.mnemonic] = entry;
  return table;
}();

// The call-outs after which the guest does not go on with the next
// instruction, so the block ends there.
bool ends_block(CallOutReason reason) {
  switch (reason) {
    case CallOutReason::kInterruptReturn:
    case CallOutReason::kFarTransfer:
    case CallOutReason::kSystemCall:
    case CallOutReason::kSoftwareInterrupt:
    case CallOutReason::kInvalidInstruction:
      return true;
    case CallOutReason::kPortIo:
    case CallOutReason::kControlRegister:
    case CallOutReason::kDebugRegister:
    case CallOutReason::kModelSpecificRegister:
    case CallOutReason::kDescriptorTableLoad:
    case CallOutReason::kSegmentLoad:
    case CallOutReason::kTlbInvalidation:
    case CallOutReason::kCacheControl:
    case CallOutReason::kHalt:
    case CallOutReason::kCpuid:
    case CallOutReason::kSwapgs:
    case CallOutReason::kPerformanceCounter:
    case CallOutReason::kMonitorWait:
    case CallOutReason::kAccessControl:
    case CallOutReason::kFlagsRead:
    case CallOutReason::kFlagsWrite:
    case CallOutReason::kSegmentRead:
    case CallOutReason::kSystemTableRead:
    case CallOutReason::kSegmentCheck:
      return false;
  }
  return true;
}

bool ends_block(const GuestInstruction& instruction) {
  switch (instruction.treatment) {
    case Treatment::kIdent:
    case Treatment::kRipRelative:
    case Treatment::kClearInterruptFlag:
    case Treatment::kSetInterruptFlag:
    case Treatment::kScratchLoad:
    case Treatment::kScratchStore:
    case Treatment::kPushFlags:
    case Treatment::kPopFlags:
      return false;
    case Treatment::kDirectJump:
    case Treatment::kConditionalJump:
    case Treatment::kLoop:
    case Treatment::kDirectCall:
    case Treatment::kReturn:
    case Treatment::kIndirectJump:
    case Treatment::kIndirectCall:
      return true;
    case Treatment::kCallOut:
      return ends_block(instruction.reason);
  }
  return true;
}

std::string bytes_text(std::span<const std::uint8_t> bytes) {
  std::string text;
  for (const std::uint8_t byte : bytes) {
    char pair[4];
    std::snprintf(pair, sizeof pair, text.empty() ? "%02x" : " %02x", byte);
    text += pair;
  }
  return text;
}

Error unknown_instruction(GuestVirtAddr address, std::span<const std::uint8_t> bytes,
                          const char* mnemonic, const std::string& why) {
  return Error{TranslationError::kUnknownInstruction,
               "guest kernel instruction at " + hex(address.value()) + " (" + bytes_text(bytes) +
                   ", " + mnemonic + "): " + why +
                   "; the translator copies only what it knows to be harmless, so the guest "
                   "stops here"};
}

bool is_general_register(ZydisRegister reg) {
  const ZydisRegisterClass register_class = ZydisRegisterGetClass(reg);
  return register_class == ZYDIS_REGCLASS_GPR8 || register_class == ZYDIS_REGCLASS_GPR16 ||
         register_class == ZYDIS_REGCLASS_GPR32 || register_class == ZYDIS_REGCLASS_GPR64 ||
         register_class == ZYDIS_REGCLASS_FLAGS;
}

// The class of a register operand that makes a mov, push or pop sensitive.
std::optional<CallOutReason> special_register_reason(const ZydisDecodedInstruction& instruction,
                                                     const ZydisDecodedOperand* operands) {
  for (std::size_t index = 0; index < instruction.operand_count; ++index) {
    const ZydisDecodedOperand& operand = operands[index];
    if (operand.type != ZYDIS_OPERAND_TYPE_REGISTER) continue;
    const ZydisRegisterClass register_class = ZydisRegisterGetClass(operand.reg.value);
    if (register_class == ZYDIS_REGCLASS_SEGMENT) {
      const bool written = (operand.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) != 0;
      return written ? CallOutReason::kSegmentLoad : CallOutReason::kSegmentRead;
    }
    if (register_class == ZYDIS_REGCLASS_CONTROL) return CallOutReason::kControlRegister;
    if (register_class == ZYDIS_REGCLASS_DEBUG) return CallOutReason::kDebugRegister;
  }
  return std::nullopt;
}

bool is_sign_extended_32(std::uint64_t value) {
  return static_cast<std::int64_t>(value) == static_cast<std::int32_t>(value);
}

const ZydisDecodedOperand* rip_relative_operand(const ZydisDecodedInstruction& instruction,
                                                const ZydisDecodedOperand* operands) {
  for (std::size_t index = 0; index < instruction.operand_count_visible; ++index) {
    const ZydisDecodedOperand& operand = operands[index];
    if (operand.type == ZYDIS_OPERAND_TYPE_MEMORY &&
        (operand.mem.base == ZYDIS_REGISTER_RIP || operand.mem.base == ZYDIS_REGISTER_EIP)) {
      return &operand;
    }
  }
  return nullptr;
}

// The absolute address a RIP-relative operand names, if a [disp32] operand
// can name it: disp32 without a base is sign-extended to 64 bits (Intel SDM
// vol. 2A, 2.2.1.6), so the guest's target must lie in the low or the high
// 2 GiB (the kernel is linked low).
Result<std::uint64_t> absolute_operand(GuestVirtAddr address, std::span<const std::uint8_t> bytes,
                                       const ZydisDecodedInstruction& instruction,
                                       const ZydisDecodedOperand& operand) {
  if (operand.mem.base == ZYDIS_REGISTER_EIP) {
    return unknown_instruction(address, bytes, ZydisMnemonicGetString(instruction.mnemonic),
                               "EIP-relative addressing (an address-size prefix)");
  }
  std::uint64_t absolute = 0;
  if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&instruction, &operand, address.value(), &absolute))) {
    return unknown_instruction(address, bytes, ZydisMnemonicGetString(instruction.mnemonic),
                               "its RIP-relative address cannot be computed");
  }
  if (!is_sign_extended_32(absolute)) {
    return Error{TranslationError::kRipRelativeOutOfReach,
                 "guest kernel instruction at " + hex(address.value()) + " (" + bytes_text(bytes) +
                     ") addresses " + hex(absolute) +
                     " RIP-relative: an absolute [disp32] operand reaches only the low and high "
                     "2 GiB; link the guest kernel there"};
  }
  return absolute;
}

Result<std::vector<std::uint8_t>> encode(const ZydisEncoderRequest& request, GuestVirtAddr address,
                                         std::span<const std::uint8_t> bytes) {
  std::uint8_t buffer[ZYDIS_MAX_INSTRUCTION_LENGTH];
  ZyanUSize length = sizeof buffer;
  if (!ZYAN_SUCCESS(ZydisEncoderEncodeInstruction(&request, buffer, &length))) {
    return unknown_instruction(address, bytes, ZydisMnemonicGetString(request.mnemonic),
                               "Zydis cannot encode its translation");
  }
  return std::vector<std::uint8_t>(buffer, buffer + length);
}

// The instruction again, its RIP-relative operand made [disp32] absolute.
Result<std::vector<std::uint8_t>> reencode_absolute(const ZydisDecodedInstruction& instruction,
                                                    const ZydisDecodedOperand* operands,
                                                    const ZydisDecodedOperand& operand,
                                                    std::uint64_t absolute, GuestVirtAddr address,
                                                    std::span<const std::uint8_t> bytes) {
  ZydisEncoderRequest request{};
  if (!ZYAN_SUCCESS(ZydisEncoderDecodedInstructionToEncoderRequest(
          &instruction, operands, instruction.operand_count_visible, &request))) {
    return unknown_instruction(address, bytes, ZydisMnemonicGetString(instruction.mnemonic),
                               "Zydis cannot re-encode it");
  }
  const auto index = static_cast<std::size_t>(&operand - operands);
  request.operands[index].mem.base = ZYDIS_REGISTER_NONE;
  request.operands[index].mem.displacement = static_cast<std::int64_t>(absolute);
  return encode(request, address, bytes);
}

// mov rcx, <the branch's operand>: what an indirect jmp or call reads, with
// the same base, index, displacement and fs/gs override (Intel SDM vol. 2A,
// 3.4.1: in 64-bit mode only fs and gs overrides change an address).
Result<std::vector<std::uint8_t>> load_target(const ZydisDecodedInstruction& instruction,
                                              const ZydisDecodedOperand& operand,
                                              std::optional<std::uint64_t> absolute,
                                              GuestVirtAddr address,
                                              std::span<const std::uint8_t> bytes) {
  ZydisEncoderRequest request{};
  request.machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
  request.mnemonic = ZYDIS_MNEMONIC_MOV;
  request.operand_count = 2;
  request.operands[0].type = ZYDIS_OPERAND_TYPE_REGISTER;
  request.operands[0].reg.value = ZYDIS_REGISTER_RCX;
  ZydisEncoderOperand& source = request.operands[1];
  source.type = operand.type;
  if (operand.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    source.reg.value = operand.reg.value;
  } else {
    source.mem.base = absolute ? ZYDIS_REGISTER_NONE : operand.mem.base;
    source.mem.index = operand.mem.index;
    source.mem.scale = operand.mem.scale;
    source.mem.displacement =
        absolute ? static_cast<std::int64_t>(*absolute) : operand.mem.disp.value;
    source.mem.size = 8;
    request.prefixes =
        instruction.attributes & (ZYDIS_ATTRIB_HAS_SEGMENT_FS | ZYDIS_ATTRIB_HAS_SEGMENT_GS);
  }
  return encode(request, address, bytes);
}

// --- The holes, inline -------------------------------------------------------

// A segment register's slot on the scratch page, and its name.
struct Slot {
  std::size_t offset = 0;
  const char* name = "";
};

struct SegmentSlot {
  ZydisRegister segment = ZYDIS_REGISTER_NONE;
  Slot slot;
};

constexpr SegmentSlot kSegmentSlots[] = {
    {ZYDIS_REGISTER_CS, {offsetof(ScratchPage, cs), "cs"}},
    {ZYDIS_REGISTER_SS, {offsetof(ScratchPage, ss), "ss"}},
    {ZYDIS_REGISTER_DS, {offsetof(ScratchPage, ds), "ds"}},
    {ZYDIS_REGISTER_ES, {offsetof(ScratchPage, es), "es"}},
    {ZYDIS_REGISTER_FS, {offsetof(ScratchPage, fs), "fs"}},
    {ZYDIS_REGISTER_GS, {offsetof(ScratchPage, gs), "gs"}},
};

std::optional<Slot> segment_slot(ZydisRegister segment) {
  for (const auto& each : kSegmentSlots) {
    if (each.segment == segment) return each.slot;
  }
  return std::nullopt;
}

ZydisRegister borrowed_register(BorrowedRegister borrowed, ZydisRegisterClass width) {
  return ZydisRegisterEncode(width, static_cast<ZyanU8>(borrowed));
}

// The first of rax, rcx and rdx that the guest's memory operand does not
// name (it names two registers at most).
BorrowedRegister free_register(const ZydisDecodedOperand& memory) {
  const auto largest = [](ZydisRegister reg) {
    return reg == ZYDIS_REGISTER_NONE
               ? ZYDIS_REGISTER_NONE
               : ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, reg);
  };
  const ZydisRegister base = largest(memory.mem.base);
  const ZydisRegister index = largest(memory.mem.index);
  for (const BorrowedRegister candidate :
       {BorrowedRegister::kRax, BorrowedRegister::kRcx, BorrowedRegister::kRdx}) {
    const ZydisRegister reg = borrowed_register(candidate, ZYDIS_REGCLASS_GPR64);
    if (reg != base && reg != index) return candidate;
  }
  return BorrowedRegister::kRdx;  // unreachable: three candidates, two registers
}

// An instruction with a [rip+0] memory operand, encoded, and where its disp32
// is, for the emitter to aim at a scratch slot.
struct RipRelativeCode {
  std::vector<std::uint8_t> bytes;
  std::uint8_t displacement_offset = 0;
};

Result<RipRelativeCode> encode_rip_relative(const ZydisEncoderRequest& request,
                                            const ZydisDecoder& decoder, GuestVirtAddr address,
                                            std::span<const std::uint8_t> bytes) {
  auto code = encode(request, address, bytes);
  if (!code) return code.error();
  ZydisDecodedInstruction encoded;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  if (!ZYAN_SUCCESS(
          ZydisDecoderDecodeFull(&decoder, code->data(), code->size(), &encoded, operands)) ||
      encoded.raw.disp.size != 32) {
    return unknown_instruction(address, bytes, ZydisMnemonicGetString(request.mnemonic),
                               "its translation has no disp32 to aim at the scratch page");
  }
  return RipRelativeCode{std::move(*code), encoded.raw.disp.offset};
}

ZydisEncoderRequest request_for(ZydisMnemonic mnemonic) {
  ZydisEncoderRequest request{};
  request.machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
  request.mnemonic = mnemonic;
  return request;
}

void set_slot_operand(ZydisEncoderOperand& operand, unsigned size) {
  operand.type = ZYDIS_OPERAND_TYPE_MEMORY;
  operand.mem.base = ZYDIS_REGISTER_RIP;
  operand.mem.size = static_cast<ZyanU16>(size);
}

// Loads a register destination the way mov r, sreg, sldt r, str r and smsw r
// write it (Intel SDM vol. 2B MOV, SLDT, STR, SMSW): a 16-bit register gets
// the low 16 bits and keeps its upper 48; a 32- or 64-bit one the value
// zero-extended to the operand size (smsw: CR0 truncated to it, "In 64-bit
// mode"), and a 32-bit write clears bits 63:32 (vol. 1, 3.4.1.1).
// `value_bytes`: 2 for a selector, the operand size for smsw.
Result<RipRelativeCode> load_register_from_slot(ZydisRegister destination, unsigned value_bytes,
                                                const ZydisDecoder& decoder, GuestVirtAddr address,
                                                std::span<const std::uint8_t> bytes) {
  const ZydisRegisterClass register_class = ZydisRegisterGetClass(destination);
  const bool zero_extend_word = value_bytes == 2 && register_class != ZYDIS_REGCLASS_GPR16;
  ZydisEncoderRequest request =
      request_for(zero_extend_word ? ZYDIS_MNEMONIC_MOVZX : ZYDIS_MNEMONIC_MOV);
  request.operand_count = 2;
  request.operands[0].type = ZYDIS_OPERAND_TYPE_REGISTER;
  request.operands[0].reg.value =
      zero_extend_word ? ZydisRegisterEncode(ZYDIS_REGCLASS_GPR32,
                                             static_cast<ZyanU8>(ZydisRegisterGetId(destination)))
                       : destination;
  const unsigned width = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, destination);
  set_slot_operand(request.operands[1], zero_extend_word ? 2 : width / 8);
  return encode_rip_relative(request, decoder, address, bytes);
}

// mov <the guest's memory operand, plus `extra` bytes>, <borrowed register>:
// the same base, index, scale, displacement, fs/gs override and address size
// (Intel SDM vol. 2A, 3.4.1: in 64-bit mode only fs and gs change an address).
Result<std::vector<std::uint8_t>> store_through(const ZydisDecodedInstruction& instruction,
                                                const ZydisDecodedOperand& memory,
                                                std::optional<std::uint64_t> absolute,
                                                std::int64_t extra, BorrowedRegister borrowed,
                                                unsigned size, GuestVirtAddr address,
                                                std::span<const std::uint8_t> bytes) {
  ZydisEncoderRequest request = request_for(ZYDIS_MNEMONIC_MOV);
  request.operand_count = 2;
  ZydisEncoderOperand& destination = request.operands[0];
  destination.type = ZYDIS_OPERAND_TYPE_MEMORY;
  destination.mem.base = absolute ? ZYDIS_REGISTER_NONE : memory.mem.base;
  destination.mem.index = memory.mem.index;
  destination.mem.scale = memory.mem.scale;
  const std::int64_t displacement =
      (absolute ? static_cast<std::int64_t>(*absolute) : memory.mem.disp.value) + extra;
  if (!is_sign_extended_32(static_cast<std::uint64_t>(displacement))) {
    return unknown_instruction(address, bytes, ZydisMnemonicGetString(instruction.mnemonic),
                               "the displacement of its second store does not fit 32 bits");
  }
  destination.mem.displacement = displacement;
  destination.mem.size = static_cast<ZyanU16>(size);
  request.operands[1].type = ZYDIS_OPERAND_TYPE_REGISTER;
  request.operands[1].reg.value =
      borrowed_register(borrowed, size == 2 ? ZYDIS_REGCLASS_GPR16 : ZYDIS_REGCLASS_GPR64);
  request.prefixes =
      instruction.attributes & (ZYDIS_ATTRIB_HAS_SEGMENT_FS | ZYDIS_ATTRIB_HAS_SEGMENT_GS);
  if (instruction.address_width == 32) request.address_size_hint = ZYDIS_ADDRESS_SIZE_HINT_32;
  return encode(request, address, bytes);
}

// The memory form of a hole: each (slot, width, offset into the operand)
// through one borrowed register. sgdt/sidt store a 2-byte limit, then an
// 8-byte base (Intel SDM vol. 2B SGDT, "64-bit mode"); the others 16 bits,
// whatever the operand size (vol. 2B MOV, SLDT, STR, SMSW).
struct StorePart {
  std::size_t offset = 0;
  unsigned size = 2;
  std::int64_t into_operand = 0;
};

Status store_slots_inline(GuestInstruction& result, const ZydisDecodedInstruction& instruction,
                          const ZydisDecodedOperand* operands, const ZydisDecodedOperand& memory,
                          std::span<const StorePart> parts, GuestVirtAddr address,
                          std::span<const std::uint8_t> bytes) {
  std::optional<std::uint64_t> absolute;
  if (rip_relative_operand(instruction, operands) == &memory) {
    auto computed = absolute_operand(address, bytes, instruction, memory);
    if (!computed) return computed.error();
    absolute = *computed;
  }
  result.borrowed = free_register(memory);
  result.stores.clear();
  for (const StorePart& part : parts) {
    auto code = store_through(instruction, memory, absolute, part.into_operand, result.borrowed,
                              part.size, address, bytes);
    if (!code) return code.error();
    result.stores.push_back({part.offset, std::move(*code)});
  }
  result.absolute = absolute;
  result.treatment = Treatment::kScratchStore;
  return {};
}

}  // namespace

Decoder::Decoder() {
  ZydisDecoderInit(&m_decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  ZydisFormatterInit(&m_formatter, ZYDIS_FORMATTER_STYLE_INTEL);
  ZydisFormatterSetProperty(&m_formatter, ZYDIS_FORMATTER_PROP_HEX_UPPERCASE, ZYAN_FALSE);
}

std::string Decoder::disassemble(std::span<const std::uint8_t> bytes, std::uint64_t runtime_address,
                                 std::size_t* length) const {
  ZydisDecodedInstruction instruction;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  if (!ZYAN_SUCCESS(
          ZydisDecoderDecodeFull(&m_decoder, bytes.data(), bytes.size(), &instruction, operands))) {
    if (length != nullptr) *length = 1;
    return "(bad)";
  }
  char text[256];
  if (!ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&m_formatter, &instruction, operands,
                                                    instruction.operand_count_visible, text,
                                                    sizeof text, runtime_address, nullptr))) {
    text[0] = '\0';
  }
  if (length != nullptr) *length = instruction.length;
  return text;
}

std::optional<std::uint64_t> Decoder::branch_target(std::span<const std::uint8_t> bytes,
                                                    std::uint64_t runtime_address) const {
  ZydisDecodedInstruction instruction;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  if (!ZYAN_SUCCESS(
          ZydisDecoderDecodeFull(&m_decoder, bytes.data(), bytes.size(), &instruction, operands)) ||
      instruction.operand_count_visible == 0 || operands[0].type != ZYDIS_OPERAND_TYPE_IMMEDIATE ||
      !operands[0].imm.is_relative) {
    return std::nullopt;
  }
  std::uint64_t target = 0;
  if (!ZYAN_SUCCESS(
          ZydisCalcAbsoluteAddress(&instruction, &operands[0], runtime_address, &target))) {
    return std::nullopt;
  }
  return target;
}

Result<GuestInstruction> Decoder::translate(GuestVirtAddr address,
                                            std::span<const std::uint8_t> bytes,
                                            const ZydisDecodedInstruction& instruction,
                                            const ZydisDecodedOperand* operands) const {
  GuestInstruction result;
  result.address = address;
  result.bytes.assign(bytes.begin(), bytes.end());
  result.length = instruction.length;
  result.mnemonic = ZydisMnemonicGetString(instruction.mnemonic);
  const char* mnemonic = result.mnemonic.c_str();
  const auto call_out = [&](CallOutReason reason) {
    result.treatment = Treatment::kCallOut;
    result.reason = reason;
    return result;
  };
  const bool is_far = instruction.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR;
  // On a near branch, an operand-size prefix truncates RIP to 16 bits on
  // AMD and is ignored on Intel (Intel SDM vol. 2A JMP, "64-bit mode"; AMD
  // APM vol. 3): a guest relying on either is refused.
  const Listed& listed = kByMnemonic[static_cast<std::size_t>(instruction.mnemonic)];
  const bool is_near_branch =
      listed.family == Family::kJumpOrCall || listed.family == Family::kReturn ||
      listed.family == Family::kConditionalJump || listed.family == Family::kLoop;
  if (is_near_branch && !is_far && (instruction.attributes & ZYDIS_ATTRIB_HAS_OPERANDSIZE) != 0) {
    return unknown_instruction(address, bytes, mnemonic, "an operand-size prefix on a near branch");
  }

  switch (listed.family) {
    case Family::kUnlisted:
      return unknown_instruction(address, bytes, mnemonic, "not on any of the translator's lists");
    case Family::kCallOut:
      return call_out(listed.reason);
    case Family::kClearInterruptFlag:
      result.treatment = Treatment::kClearInterruptFlag;
      return result;
    case Family::kSetInterruptFlag:
      result.treatment = Treatment::kSetInterruptFlag;
      return result;
    case Family::kPushFlags:
    case Family::kPopFlags:
      // 64 bits, or 16 with 0x66 (a 32-bit operand size cannot be encoded in
      // 64-bit mode: Intel SDM vol. 2B PUSHF, POPF).
      result.treatment =
          listed.family == Family::kPushFlags ? Treatment::kPushFlags : Treatment::kPopFlags;
      result.reason = listed.reason;
      result.operand_size = static_cast<std::uint8_t>(instruction.operand_width / 8);
      return result;
    case Family::kSystemRead:
      return translate_system_read(result, instruction, operands);
    case Family::kJumpOrCall: {
      if (is_far) return call_out(CallOutReason::kFarTransfer);
      const bool is_call = instruction.mnemonic == ZYDIS_MNEMONIC_CALL;
      const ZydisDecodedOperand& operand = operands[0];
      if (operand.type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
        std::uint64_t target = 0;
        ZydisCalcAbsoluteAddress(&instruction, &operand, address.value(), &target);
        result.treatment = is_call ? Treatment::kDirectCall : Treatment::kDirectJump;
        result.target = GuestVirtAddr(target);
        return result;
      }
      std::optional<std::uint64_t> absolute;
      if (operand.type == ZYDIS_OPERAND_TYPE_MEMORY &&
          rip_relative_operand(instruction, operands)) {
        auto computed = absolute_operand(address, bytes, instruction, operand);
        if (!computed) return computed.error();
        absolute = *computed;
      }
      auto code = load_target(instruction, operand, absolute, address, bytes);
      if (!code) return code.error();
      result.treatment = is_call ? Treatment::kIndirectCall : Treatment::kIndirectJump;
      result.code = std::move(*code);
      result.absolute = absolute;
      return result;
    }
    case Family::kReturn:
      if (is_far) return call_out(CallOutReason::kFarTransfer);
      result.treatment = Treatment::kReturn;
      if (instruction.operand_count_visible > 0) {
        result.stack_release = static_cast<std::uint16_t>(operands[0].imm.value.u);
      }
      return result;
    case Family::kConditionalJump:
    case Family::kLoop: {
      std::uint64_t target = 0;
      ZydisCalcAbsoluteAddress(&instruction, &operands[0], address.value(), &target);
      result.target = GuestVirtAddr(target);
      if (listed.family == Family::kLoop) {
        // loop and jrcxz have only rel8, their last byte: the translation
        // keeps the instruction (and its address-size prefix) and aims it 5
        // bytes on, past the jmp rel32 that follows it.
        result.treatment = Treatment::kLoop;
        result.code = result.bytes;
        result.code.back() = 5;
      } else {
        // jcc is 70+cc cb or 0F 80+cc cd: the condition is the opcode's low
        // nibble (Intel SDM vol. 2, B.1.4.7).
        result.treatment = Treatment::kConditionalJump;
        result.condition = static_cast<std::uint8_t>(instruction.opcode & 0x0f);
      }
      return result;
    }
    case Family::kInnocuous:
      break;
  }

  if (auto reason = special_register_reason(instruction, operands)) {
    if (*reason == CallOutReason::kSegmentRead) {
      return translate_segment_read(result, instruction, operands);
    }
    return call_out(*reason);
  }
  for (std::size_t index = 0; index < instruction.operand_count; ++index) {
    const ZydisDecodedOperand& operand = operands[index];
    if (operand.type == ZYDIS_OPERAND_TYPE_REGISTER && !is_general_register(operand.reg.value)) {
      return unknown_instruction(address, bytes, mnemonic,
                                 std::string("an operand in ") +
                                     ZydisRegisterGetString(operand.reg.value) +
                                     ", not a general-purpose register");
    }
  }
  if (const ZydisDecodedOperand* operand = rip_relative_operand(instruction, operands)) {
    auto absolute = absolute_operand(address, bytes, instruction, *operand);
    if (!absolute) return absolute.error();
    auto code = reencode_absolute(instruction, operands, *operand, *absolute, address, bytes);
    if (!code) return code.error();
    result.treatment = Treatment::kRipRelative;
    result.code = std::move(*code);
    result.absolute = *absolute;
    return result;
  }
  result.treatment = Treatment::kIdent;
  result.code = result.bytes;
  return result;
}

// mov r/m, sreg and push fs/gs: the selector the guest loaded, from the
// scratch page. A translation Zydis cannot encode (an operand it would not
// take back) stays a call-out: the VMM's emulator does the same thing.
Result<GuestInstruction> Decoder::translate_segment_read(
    GuestInstruction result, const ZydisDecodedInstruction& instruction,
    const ZydisDecodedOperand* operands) const {
  const std::span<const std::uint8_t> bytes = result.bytes;
  const bool is_push = instruction.mnemonic == ZYDIS_MNEMONIC_PUSH;
  const ZydisDecodedOperand& segment = is_push ? operands[0] : operands[1];
  const auto slot = segment_slot(segment.reg.value);
  const auto fallback = [&]() {
    result.treatment = Treatment::kCallOut;
    result.reason = CallOutReason::kSegmentRead;
    return result;
  };
  if (!slot) return fallback();
  result.scratch_offset = slot->offset;
  result.virtual_value = std::string("the virtual ") + slot->name + " selector";
  if (is_push) {
    // push fs/gs: the selector zero-extended to the operand size, 8 bytes or
    // 2 with 0x66 (Intel SDM vol. 2B PUSH): push qword/word [the slot], whose
    // upper bytes the VMM keeps zero.
    ZydisEncoderRequest request = request_for(ZYDIS_MNEMONIC_PUSH);
    request.operand_count = 1;
    set_slot_operand(request.operands[0], instruction.operand_width / 8);
    auto code = encode_rip_relative(request, m_decoder, result.address, bytes);
    if (!code) return fallback();
    result.code = std::move(code->bytes);
    result.displacement_offset = code->displacement_offset;
    result.treatment = Treatment::kScratchLoad;
    return result;
  }
  const ZydisDecodedOperand& destination = operands[0];
  if (destination.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    auto code = load_register_from_slot(destination.reg.value, 2, m_decoder, result.address, bytes);
    if (!code) return fallback();
    result.code = std::move(code->bytes);
    result.displacement_offset = code->displacement_offset;
    result.treatment = Treatment::kScratchLoad;
    return result;
  }
  const StorePart part{slot->offset, 2, 0};
  if (auto stored = store_slots_inline(result, instruction, operands, destination,
                                       std::span(&part, 1), result.address, bytes);
      !stored) {
    if (stored.error().kind == make_error_code(TranslationError::kRipRelativeOutOfReach)) {
      return stored.error();
    }
    return fallback();
  }
  return result;
}

// sgdt, sidt (memory only), sldt, str and smsw (register or memory): the
// virtual CPU's tables, selectors and CR0 from the scratch page. At CPL0
// CR4.UMIP does not apply (Intel SDM vol. 3A, 2.5), so the guest kernel's
// own UMIP never makes them fault.
Result<GuestInstruction> Decoder::translate_system_read(GuestInstruction result,
                                                        const ZydisDecodedInstruction& instruction,
                                                        const ZydisDecodedOperand* operands) const {
  const std::span<const std::uint8_t> bytes = result.bytes;
  const ZydisDecodedOperand& destination = operands[0];
  Slot slot;
  bool machine_status = false;
  std::vector<StorePart> parts;
  const ZydisMnemonic mnemonic = instruction.mnemonic;
  if (mnemonic == ZYDIS_MNEMONIC_SGDT || mnemonic == ZYDIS_MNEMONIC_SIDT) {
    const bool global = mnemonic == ZYDIS_MNEMONIC_SGDT;
    result.virtual_value = global ? "the virtual GDTR" : "the virtual IDTR";
    parts = {{global ? offsetof(ScratchPage, gdtr_limit) : offsetof(ScratchPage, idtr_limit), 2, 0},
             {global ? offsetof(ScratchPage, gdtr_base) : offsetof(ScratchPage, idtr_base), 8, 2}};
  } else if (mnemonic == ZYDIS_MNEMONIC_SLDT) {
    slot = {offsetof(ScratchPage, ldtr), "the virtual LDTR selector"};
  } else if (mnemonic == ZYDIS_MNEMONIC_STR) {
    slot = {offsetof(ScratchPage, tr), "the virtual TR selector"};
  } else {  // smsw
    slot = {offsetof(ScratchPage, cr0), "the virtual CR0"};
    machine_status = true;
  }
  const auto fallback = [&]() {
    result.treatment = Treatment::kCallOut;
    result.reason = CallOutReason::kSystemTableRead;
    return result;
  };
  if (parts.empty()) {
    result.virtual_value = slot.name;
    result.scratch_offset = slot.offset;
    if (destination.type == ZYDIS_OPERAND_TYPE_REGISTER) {
      const unsigned value_bytes = machine_status ? destination.size / 8 : 2;
      auto code = load_register_from_slot(destination.reg.value, value_bytes, m_decoder,
                                          result.address, bytes);
      if (!code) return fallback();
      result.code = std::move(code->bytes);
      result.displacement_offset = code->displacement_offset;
      result.treatment = Treatment::kScratchLoad;
      return result;
    }
    parts = {{slot.offset, 2, 0}};
  }
  if (destination.type != ZYDIS_OPERAND_TYPE_MEMORY) return fallback();
  if (auto stored = store_slots_inline(result, instruction, operands, destination, parts,
                                       result.address, bytes);
      !stored) {
    if (stored.error().kind == make_error_code(TranslationError::kRipRelativeOutOfReach)) {
      return stored.error();
    }
    return fallback();
  }
  return result;
}

Result<GuestBlock> Decoder::decode_block(GuestVirtAddr start, CodeReader& reader,
                                         std::uint32_t maximum_instructions) const {
  const std::size_t requested = std::size_t{maximum_instructions} * kMaximumInstructionLength;
  auto read = reader.read(start, requested);
  if (!read) return read.error();
  const std::vector<std::uint8_t>& bytes = read->bytes;

  GuestBlock block;
  block.start = start;
  std::size_t offset = 0;
  std::size_t examined = 0;  // bytes whose change would change the block
  bool ended = false;
  while (block.instructions.size() < maximum_instructions) {
    const GuestVirtAddr address = start + offset;
    const std::span<const std::uint8_t> remaining = std::span(bytes).subspan(offset);
    ZydisDecodedInstruction instruction;
    ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
    const ZyanStatus status = ZydisDecoderDecodeFull(&m_decoder, remaining.data(), remaining.size(),
                                                     &instruction, operands);
    const bool cut_short =
        remaining.empty() || (status == ZYDIS_STATUS_NO_MORE_DATA && bytes.size() < requested);
    if (cut_short) {
      // The guest would fault fetching the first byte it cannot read: at
      // this instruction, if the block is to start here; otherwise the block
      // ends before it and the fault comes when the guest gets there.
      if (!block.instructions.empty()) break;
      return Error{TranslationError::kCodeNotMapped,
                   "guest kernel code at " + hex(address.value()) +
                       (remaining.empty() ? std::string(" is not fetchable")
                                          : " runs into " + hex((start + bytes.size()).value()) +
                                                ", which is not fetchable") +
                       ": the guest takes a page fault on the fetch"};
    }
    if (!ZYAN_SUCCESS(status)) {
      // Bytes that are no instruction: the CPU raises #UD (or #GP for more
      // than 15 bytes); the VMM's emulator reflects what the CPU would.
      GuestInstruction bad;
      bad.address = address;
      bad.bytes.assign(remaining.begin(), remaining.begin() + 1);
      bad.mnemonic = "(bad)";
      bad.treatment = Treatment::kCallOut;
      bad.reason = CallOutReason::kInvalidInstruction;
      block.instructions.push_back(std::move(bad));
      examined = offset + std::min(remaining.size(), kMaximumInstructionLength);
      ended = true;
      break;
    }
    auto translated =
        translate(address, remaining.first(instruction.length), instruction, operands);
    if (!translated) {
      if (!block.instructions.empty()) break;
      return translated.error();
    }
    block.instructions.push_back(std::move(*translated));
    offset += instruction.length;
    examined = offset;
    if (ends_block(block.instructions.back())) {
      ended = true;
      break;
    }
  }
  block.end = start + offset;
  block.falls_through = !ended;
  for (const PageFrame& frame : read->pages) {
    const std::uint64_t page = frame.virtual_page.value() & ~(kPageSize - 1);
    if (page < start.value() + examined && page + kPageSize > start.value()) {
      const GuestPhysAddr physical(frame.physical_page.value() & ~(kPageSize - 1));
      // Two virtual pages may map one frame: record it once.
      if (std::find(block.frames.begin(), block.frames.end(), physical) == block.frames.end()) {
        block.frames.push_back(physical);
      }
    }
  }
  return block;
}

}  // namespace vmlab::bt::detail
