/* Assembler macros that save and restore registers in the two orders the
 * kernel's entry code needs; included by .S files only.
 *
 * push_general_registers builds the register part of struct trap_frame
 * (cpu.h), RAX pushed first so that R15 ends up at the lowest address;
 * pop_general_registers undoes it. push_callee_saved / pop_callee_saved keep
 * what the System V AMD64 ABI (3.2.1) says a function must preserve: RBX,
 * RBP and R12-R15. */
#ifndef VMLAB_GUEST_REGISTER_SAVE_H
#define VMLAB_GUEST_REGISTER_SAVE_H

/* clang-format off */
.macro push_general_registers
  .irp register, rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15
  push %\register
  .endr
.endm

.macro pop_general_registers
  .irp register, r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax
  pop %\register
  .endr
.endm

.macro push_callee_saved
  .irp register, rbx, rbp, r12, r13, r14, r15
  push %\register
  .endr
.endm

.macro pop_callee_saved
  .irp register, r15, r14, r13, r12, rbp, rbx
  pop %\register
  .endr
.endm
/* clang-format on */

#endif
