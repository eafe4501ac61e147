/* The recovery point of expect_fault.c: a setjmp/longjmp pair shaped as one
 * call, so that C never sees a function return twice. */
#include "expect_fault.h"
#include "register_save.h"

  .text
  .code64

/* uint64_t recovery_call(struct recovery_point* point, void (*attempt)(void*),
 *                        void* argument): saves the callee-saved registers on
 * this stack and RSP and the landing address in *point, arms the point and
 * calls attempt(argument). Returns 0 when attempt returns, 1 when a fault
 * came back through recovery_resume. Either way the caller sees an ordinary
 * call that preserved RBX, RBP and R12-R15 (System V AMD64 ABI, 3.2.1). */
  .globl recovery_call
recovery_call:
  push_callee_saved
  sub $8, %rsp /* with the return address, 8 quadwords: RSP 16-byte aligned for the call */
  mov %rsp, RECOVERY_POINT_RSP(%rdi)
  lea recovery_landing(%rip), %rax
  mov %rax, RECOVERY_POINT_RIP(%rdi)
  mov %rdi, armed_recovery_point(%rip)
  mov %rsi, %rax
  mov %rdx, %rdi
  call *%rax
  xor %eax, %eax
recovery_finish:
  movq $0, armed_recovery_point(%rip)
  add $8, %rsp
  pop_callee_saved
  ret
recovery_landing:
  mov $1, %eax
  jmp recovery_finish

/* _Noreturn void recovery_resume(const struct recovery_point* point,
 * bool enable_interrupts): back onto the stack recovery_call saved, with no
 * segment register or descriptor-table access on the way (no iretq), so it
 * works whatever GDT the attempt left loaded. The attempt's frames and the
 * trap frame below the saved RSP are abandoned. DF is cleared as the ABI
 * requires at a call boundary; sti takes effect after the next instruction
 * (Intel SDM vol. 2B, STI), which is the jump. */
  .globl recovery_resume
recovery_resume:
  mov RECOVERY_POINT_RSP(%rdi), %rsp
  cld
  test %sil, %sil
  jz 1f
  sti
1:jmp *RECOVERY_POINT_RIP(%rdi)

  .section .note.GNU-stack, "", @progbits
