/* The user program as a flat binary (built from guest/user, flattened with
 * objcopy); the build passes its directory as an include path, which gcc
 * hands to the assembler for .incbin. */
  .section .rodata.user_image, "a"
  .balign 16
  .globl user_image_start, user_image_end
user_image_start:
  .incbin "vmlab-user.bin"
user_image_end:

  .section .note.GNU-stack, "", @progbits
