// The state the monitor works on when the deprivileged guest traps: the
// guest's registers and the virtual CPU it believes it runs on (DESIGN.md 1,
// trap-and-emulate). Shared by the emulator, the shadow pager and FullMode.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "vmlab/address.hpp"
#include "vmlab/x86.hpp"

namespace vmlab::monitor {

// General-purpose registers and the interrupted context. rsp, rip and rflags
// are the guest's own (from the hardware frame), not the monitor stub's.
struct GuestRegisters {
  std::uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0, rbp = 0, rsp = 0;
  std::uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
  std::uint64_t rip = 0;
  std::uint64_t rflags = 0x2;  // as the guest would see them: IF and IOPL are virtual
};

struct TableRegister {
  std::uint64_t base = 0;
  std::uint16_t limit = 0;
};

// DS, ES, FS or GS as the guest last loaded it: the selector (mov from a
// segment register and push fs/gs give it back) and what the hidden part of
// the register keeps of the descriptor that a return to an outer privilege
// level checks: iret and far ret make the register null if it holds a data
// or non-conforming code segment whose DPL is below the new CPL (Intel SDM
// vol. 2A IRET and vol. 2B RET, "RETURN-TO-OUTER-PRIVILEGE-LEVEL"). The
// default is what the VMM loads at boot: the boot GDT's DPL0 data segment
// (vmm/src/boot.cpp).
struct DataSegmentRegister {
  std::uint16_t selector = 0x10;
  std::uint8_t privilege_level = 0;        // the descriptor's DPL
  bool data_or_nonconforming_code = true;  // false: a null selector, or conforming code
};

// What the guest kernel believes about the CPU. The real CPU runs it at CPL3
// with IF=1 and IOPL=0; everything privileged lives here.
struct VirtualCpu {
  std::uint8_t cpl = 0;         // 0: virtual kernel mode, 3: virtual user mode
  bool interrupt_flag = false;  // virtual RFLAGS.IF
  std::uint8_t iopl = 0;        // virtual RFLAGS.IOPL
  std::uint16_t cs = 0x08;      // selectors the guest believes are loaded
  std::uint16_t ss = 0x10;
  DataSegmentRegister ds, es, fs, gs;  // their bases: 0 in 64-bit mode, fs_base and gs_base
  std::uint64_t cr0 = 0x80050033, cr2 = 0, cr3 = 0, cr4 = 0x20, cr8 = 0;
  std::uint64_t efer = 0x501;  // SCE, LME, LMA: the vmlab entry state
  std::uint64_t star = 0, lstar = 0, cstar = 0, fmask = 0;
  std::uint64_t fs_base = 0, gs_base = 0, kernel_gs_base = 0;
  TableRegister gdtr, idtr;
  std::uint16_t tr = 0, ldtr = 0;
  std::uint64_t tss_base = 0;   // base of the TSS that ltr loaded (from the virtual GDT)
  std::uint32_t tss_limit = 0;  // its limit (bytes - 1): bounds RSPn/IST reads and the I/O bitmap
  bool halted = false;          // emulated hlt: waiting for a virtual interrupt
};

enum class AccessPrivilege { Supervisor, User };

// Guest-virtual memory through the guest's own page tables (virtual CR3), as
// the virtual CPU would access it. An access that the guest's tables do not
// allow returns the page fault the guest would take (address and the error
// code of the guest's #PF), and changes nothing.
class GuestVirtualMemory {
 public:
  struct Fault {
    GuestVirtAddr address{};  // the guest's CR2
    std::uint32_t error_code = 0;
  };
  virtual ~GuestVirtualMemory() = default;
  virtual std::optional<Fault> read(GuestVirtAddr address, std::span<std::uint8_t> out,
                                    AccessPrivilege privilege) = 0;
  virtual std::optional<Fault> write(GuestVirtAddr address, std::span<const std::uint8_t> in,
                                     AccessPrivilege privilege) = 0;
  virtual std::optional<Fault> fetch(GuestVirtAddr address, std::span<std::uint8_t> out,
                                     AccessPrivilege privilege) = 0;
};

}  // namespace vmlab::monitor
