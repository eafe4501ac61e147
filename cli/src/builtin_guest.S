/* The guest kernel, embedded in the vmlab binary so `vmlab run` needs no
 * path: VMLAB_GUEST_ELF_PATH is the file guest/ built. */
  .section .rodata
  .balign 16
  .global vmlab_builtin_guest_start
  .global vmlab_builtin_guest_end
vmlab_builtin_guest_start:
  .incbin VMLAB_GUEST_ELF_PATH
vmlab_builtin_guest_end:
  .section .note.GNU-stack, "", @progbits
