/* The user program's entry, at the first byte of its image
 * (VMLAB_USER_IMAGE_BASE): RDI = workload, RSI = count, RSP = a 16-byte
 * aligned stack top (guest/common/user_abi.h). The call keeps the System V
 * stack alignment; user_main's result becomes the exit status. */
#include "user_abi.h"

  .section .text.entry, "ax"
  .globl _start
_start:
  call user_main
  mov %eax, %edi
  mov $VMLAB_SYSCALL_EXIT, %eax
  syscall
  ud2

  .section .note.GNU-stack, "", @progbits
