/* The loops of the single-operation workloads (operation_workloads.c), in
 * assembly so that exactly the instruction being measured and a counted
 * loop around it run: no compiler-chosen spills or reloads, nothing the
 * optimizer could hoist out. Each takes the count in RDI (System V AMD64
 * ABI) and is called only with a count above 0. */

  .text
  .code64

/* void cr8_write_loop(uint64_t count): count writes of 0 to CR8, the task
 * priority register (Intel SDM vol. 3A, 10.8.6.1; vol. 2A, MOV to control
 * registers). 0 masks nothing, which is what the kernel runs with. */
  .globl cr8_write_loop
cr8_write_loop:
  xor %eax, %eax
1:mov %rax, %cr8
  dec %rdi
  jnz 1b
  ret

/* uint64_t call_ret_loop(uint64_t count): count near calls of call_ret_callee,
 * each returning with a near ret; returns what the callee counted (count). */
  .globl call_ret_loop
call_ret_loop:
  xor %eax, %eax
1:call call_ret_callee
  dec %rdi
  jnz 1b
  ret

call_ret_callee:
  inc %rax
  ret

/* void divide_error_loop(uint64_t count): count unsigned divisions by a
 * zero register, each raising #DE (Intel SDM vol. 3A, 6.15, interrupt 0),
 * a fault: the saved RIP is the div's. The kernel's handler (trap.c, through
 * the fault site that operation_workloads.c arms with these two labels)
 * resumes at divide_error_resume, after the instruction. RAX:RDX is set
 * each time so that the division is well defined but for its divisor. */
  .globl divide_error_loop
  .globl divide_error_instruction
  .globl divide_error_resume
divide_error_loop:
  xor %ecx, %ecx
1:mov $1, %eax
  xor %edx, %edx
divide_error_instruction:
  div %rcx
divide_error_resume:
  dec %rdi
  jnz 1b
  ret

/* void page_fault_loop(uint64_t count, const uint64_t* address): count
 * loads from address, a kernel page whose entry is not present, each raising
 * #PF (Intel SDM vol. 3A, 4.7), a fault: the saved RIP is the load's. The
 * kernel's handler (the fault site operation_workloads.c arms with these two
 * labels) resumes at page_fault_resume; no mapping changes. */
  .globl page_fault_loop
  .globl page_fault_instruction
  .globl page_fault_resume
page_fault_loop:
page_fault_instruction:
  mov (%rsi), %rax
page_fault_resume:
  dec %rdi
  jnz page_fault_loop
  ret

  .section .note.GNU-stack, "", @progbits
