/* Entry stubs: interrupts and exceptions, the syscall entry, and the switch
 * into and out of the user task. Every path into the kernel builds the same
 * struct trap_frame (cpu.h) and every return to user mode is iretq (sysretq
 * is broken on this platform's KVM backend, PLATFORM.md). */
#include "cpu.h"
#include "register_save.h"

/* hypercall.h's VMLAB_HYPERCALL_IRET (an enum, which the assembler cannot
 * read); pv_ops.c checks that the two agree. */
#define VMLAB_HYPERCALL_IRET_NUMBER 7

#define USER_INITIAL_RFLAGS 0x202 /* IF, and bit 1, which is always 1 */

/* Vectors for which the CPU pushes an error code (Intel SDM vol. 3A, 6.13
 * and Table 6-1): #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX. The
 * other stubs push a zero so that every frame has the same layout. */
.macro trap_stub vector
  .balign 16
trap_stub_\vector:
  .if !((\vector == 8) || ((\vector >= 10) && (\vector <= 14)) || (\vector == 17) || (\vector == 21) || (\vector == 29) || (\vector == 30))
  push $0
  .endif
  push $\vector
  jmp trap_common
.endm

  .text
  .code64
.irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
  trap_stub \vector
.endr

trap_common:
  push_general_registers
  /* The CPU aligned RSP to 16 bytes before pushing its frame (Intel SDM vol.
   * 3A, 6.14.2); 22 quadwords later it is still aligned for the call. */
  mov %rsp, %rdi
  call trap_dispatch
trap_return:
  pop_general_registers
  add $16, %rsp /* vector and error code */
  jmp *pv_iret(%rip) /* pv_ops.h: iretq, or the IRET hypercall */

/* Natively: iretq. */
  .globl native_iret
native_iret:
  iretq

/* Paravirtualized (abi/vmlab/hypercall.h): push what SYSCALL is about
 * to overwrite (RCX, R11) and the RAX the call number needs, below the frame
 * the event left; the monitor restores all of it and returns to the frame's
 * RIP at the frame's privilege level. */
  .globl para_iret
para_iret:
  push %r11
  push %rcx
  push %rax
  mov $VMLAB_HYPERCALL_IRET_NUMBER, %eax
  syscall
  ud2 /* IRET does not come back here */

/* SYSCALL saved the user RIP in RCX and RFLAGS in R11, left RSP on the user
 * stack and cleared IF (FMASK), so nothing can interrupt the stack switch
 * (Intel SDM vol. 3A, 5.8.8). One CPU, one task: a variable holds the user
 * RSP. The frame built here is what iretq needs to return to user mode. */
  .globl syscall_entry
syscall_entry:
  mov %rsp, syscall_user_stack(%rip)
  lea trap_stack_top(%rip), %rsp
  push $SELECTOR_USER_DATA
  push syscall_user_stack(%rip)
  push %r11
  push $SELECTOR_USER_CODE
  push %rcx
  push $0
  push $VECTOR_SYSCALL
  push_general_registers
  mov %rsp, %rdi
  call syscall_dispatch
  jmp trap_return

/* uint64_t user_enter(entry, stack_top, argument0, argument1): saves the
 * callee-saved registers and this stack position, then enters user mode at
 * entry with RDI, RSI = the two arguments. It returns when the kernel calls
 * user_return(value) on the task's exit or fault. */
  .globl user_enter
user_enter:
  push_callee_saved
  mov %rsp, user_return_stack(%rip)
  push $SELECTOR_USER_DATA
  push %rsi
  push $USER_INITIAL_RFLAGS
  push $SELECTOR_USER_CODE
  push %rdi
  mov %rdx, %rdi
  mov %rcx, %rsi
  /* No kernel values leak into user registers. */
  xor %eax, %eax
  xor %ebx, %ebx
  xor %ecx, %ecx
  xor %edx, %edx
  xor %ebp, %ebp
  xor %r8d, %r8d
  xor %r9d, %r9d
  xor %r10d, %r10d
  xor %r11d, %r11d
  xor %r12d, %r12d
  xor %r13d, %r13d
  xor %r14d, %r14d
  xor %r15d, %r15d
  jmp *pv_iret(%rip)

/* _Noreturn void user_return(uint64_t value): abandons the trap stack and
 * returns value from user_enter. */
  .globl user_return
user_return:
  mov user_return_stack(%rip), %rsp
  mov %rdi, %rax
  pop_callee_saved
  ret

/* void gdt_load(const struct descriptor_table_pointer*): lgdt, then reload
 * every segment register; CS only changes through a far transfer. */
  .globl gdt_load
gdt_load:
  lgdt (%rdi)
  mov $SELECTOR_KERNEL_DATA, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %ss
  xor %eax, %eax
  mov %eax, %fs
  mov %eax, %gs
  lea 1f(%rip), %rax
  push $SELECTOR_KERNEL_CODE
  push %rax
  lretq
1:ret

  .section .rodata
  .balign 8
  .globl trap_stub_table
trap_stub_table:
.irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
  .quad trap_stub_\vector
.endr

  .section .bss, "aw", @nobits
  .balign 8
syscall_user_stack:
  .skip 8
user_return_stack:
  .skip 8

  .section .note.GNU-stack, "", @progbits
