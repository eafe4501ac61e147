/* Both ways into the kernel.
 *
 * vmlab entry (_start, the ELF entry point): already in 64-bit mode at CPL0
 * with the VMM's identity map of the first 4 GiB, RDI = boot_info address,
 * interrupts disabled (abi/vmlab/boot_info.h).
 *
 * PVH entry (pvh_start32, named by the Xen ELF note below): 32-bit protected
 * mode with paging off, flat CS/DS/ES/SS, EBX = hvm_start_info, no stack (Xen
 * docs/misc/pvh.pandoc). The trampoline enters long mode itself, converts
 * hvm_start_info into a vmlab_boot_info and joins the common path.
 */
#include "boot.h"
#include "cpu.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define CR0_PROTECTION_ENABLE 0x00000001
#define CR0_PAGING 0x80000000
#define CR4_PHYSICAL_ADDRESS_EXTENSION 0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LONG_MODE_ENABLE 0x00000100
#define PAGE_PRESENT_WRITABLE 0x003
#define PAGE_PRESENT_WRITABLE_LARGE 0x083

/* Xen public elfnote.h: name "Xen", type PHYS32_ENTRY, the 32-bit physical
 * entry address as the descriptor. QEMU reads the descriptor as a 64-bit
 * value, so it is a .quad (as Linux emits it); Xen accepts 4 or 8 bytes. */
  .pushsection .note.Xen, "a", @note
  .balign 4
  .long 2f - 1f
  .long 4f - 3f
  .long XEN_ELFNOTE_PHYS32_ENTRY
1:.asciz "Xen"
2:.balign 4
3:.quad pvh_start32
4:.balign 4
  .popsection

  .section .text.entry, "ax"
  .code64
  .globl _start
_start:
  cld
  lea boot_stack_top(%rip), %rsp
  mov $BOOT_ENTRY_VMLAB, %esi
  call kernel_main
1:hlt
  jmp 1b

  .code32
  .globl pvh_start32
pvh_start32:
  cld
  mov %ebx, %edi
  /* The kernel's own GDT; its flat 4 GiB data descriptor is valid in
   * protected mode, its 64-bit code descriptor is the far-jump target. */
  lgdt gdt_pointer
  mov $SELECTOR_KERNEL_DATA, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %ss
  mov %eax, %fs
  mov %eax, %gs

  /* Identity map of the first 1 GiB with 2 MiB pages: the kernel, the
   * loader's start_info, memory map and command line, and the first frames
   * the kernel allocates for its own page tables. The tables are in .bss,
   * which the ELF loader has zeroed. */
  xor %ecx, %ecx
1:mov %ecx, %eax
  shl $21, %eax
  or $PAGE_PRESENT_WRITABLE_LARGE, %eax
  mov %eax, pvh_page_directory(, %ecx, 8)
  movl $0, pvh_page_directory + 4(, %ecx, 8)
  inc %ecx
  cmp $512, %ecx
  jne 1b
  movl $(pvh_page_directory + PAGE_PRESENT_WRITABLE), pvh_page_directory_pointers
  movl $(pvh_page_directory_pointers + PAGE_PRESENT_WRITABLE), pvh_page_map_level4

  /* Entering IA-32e mode (Intel SDM vol. 3A, 10.8.5 "Initializing IA-32e
   * Mode"): PAE on, CR3 loaded, EFER.LME set, then paging on; the far jump
   * to a 64-bit code segment leaves compatibility mode. */
  mov %cr4, %eax
  or $CR4_PHYSICAL_ADDRESS_EXTENSION, %eax
  mov %eax, %cr4
  mov $pvh_page_map_level4, %eax
  mov %eax, %cr3
  mov $MSR_EFER, %ecx
  rdmsr
  or $EFER_LONG_MODE_ENABLE, %eax
  wrmsr
  mov %cr0, %eax
  or $(CR0_PAGING | CR0_PROTECTION_ENABLE), %eax
  mov %eax, %cr0
  ljmp $SELECTOR_KERNEL_CODE, $pvh_start64

  .code64
pvh_start64:
  mov $SELECTOR_KERNEL_DATA, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %ss
  lea boot_stack_top(%rip), %rsp
  /* Upper register halves are undefined after the switch from 32-bit code
   * (Intel SDM vol. 1, 3.4.1.1): zero-extend the start_info address. */
  mov %edi, %edi
  call pvh_build_boot_info
  mov %rax, %rdi
  mov $BOOT_ENTRY_PVH, %esi
  call kernel_main
1:hlt
  jmp 1b

  .section .bss, "aw", @nobits
  .balign 4096
pvh_page_map_level4:
  .skip 4096
pvh_page_directory_pointers:
  .skip 4096
pvh_page_directory:
  .skip 4096

  .balign 16
  .skip 8192
boot_stack_top:

  /* TSS.RSP0 and the syscall entry: interrupts, exceptions and system calls
   * from user mode. Separate from the boot stack, which holds the kernel's
   * frames (and user_enter's saved registers) while the task runs. */
  .globl trap_stack_top
  .skip 8192
trap_stack_top:

  .globl double_fault_stack_top
  .skip 4096
double_fault_stack_top:

  .section .note.GNU-stack, "", @progbits
