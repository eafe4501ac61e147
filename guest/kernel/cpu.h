/* Segmentation, TSS, IDT and the syscall MSRs. The selector values are shared
 * with the assembly entry code. */
#ifndef VMLAB_GUEST_CPU_H
#define VMLAB_GUEST_CPU_H

/* GDT layout (also what the VMM's boot GDT uses for 0x08 and 0x10). SYSCALL
 * loads CS = STAR[47:32] and SS = STAR[47:32] + 8; SYSRET would load
 * CS = STAR[63:48] + 16 and SS = STAR[63:48] + 8 (Intel SDM vol. 2B, SYSCALL,
 * SYSRET), which is why user data precedes user code. */
#define SELECTOR_KERNEL_CODE 0x08
#define SELECTOR_KERNEL_DATA 0x10
#define SELECTOR_USER_DATA 0x1b /* 0x18 | RPL 3 */
#define SELECTOR_USER_CODE 0x23 /* 0x20 | RPL 3 */
#define SELECTOR_TSS 0x28

#define VECTOR_DOUBLE_FAULT 8
#define VECTOR_PAGE_FAULT 14
#define VECTOR_TABLE_SIZE 48 /* 32 exceptions, then the 16 PIC vectors */
/* Not a hardware vector: marks trap frames built by the syscall entry. */
#define VECTOR_SYSCALL 0x100

#ifndef __ASSEMBLER__

#include <stdint.h>

/* Saved by the entry stubs (entry.S), lowest address first. The last five
 * fields are the frame the CPU pushes on an interrupt or exception (Intel SDM
 * vol. 3A, 6.14.2, Figure 6-9); the syscall entry builds the same frame. */
struct trap_frame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
  uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector;
  uint64_t error_code; /* 0 for vectors without one */
  uint64_t rip, cs, rflags, rsp, ss;
};
_Static_assert(sizeof(struct trap_frame) == 22 * 8, "trap frame layout is used by entry.S");

/* IDT gate (Intel SDM vol. 3A, 6.14.1, Figure 6-8). */
struct interrupt_gate {
  uint16_t offset_low;
  uint16_t selector;
  uint8_t interrupt_stack_index;
  uint8_t attributes;
  uint16_t offset_middle;
  uint32_t offset_high;
  uint32_t reserved;
};
_Static_assert(sizeof(struct interrupt_gate) == 16, "64-bit IDT gates are 16 bytes");

/* Loads the kernel's GDT, TSS and IDT. */
void cpu_init(void);

/* EFER.SCE, STAR, LSTAR and FMASK for the syscall entry. */
void syscall_init(void);

/* The kernel's own descriptor tables, as sgdt/sidt would report them natively. */
struct cpu_tables {
  uint64_t gdt_base, gdt_limit, idt_base, idt_limit;
};
struct cpu_tables cpu_descriptor_tables(void);

/* RSP0 of the TSS: the native pv_ops.load_kernel_stack. */
void cpu_set_kernel_stack(uint64_t stack_top);

/* The TSC's rate in Hz: boot_info's (the VMM's), or on the PVH entry what
 * CPUID says; 0 when nothing says. */
uint64_t cpu_tsc_hz(void);

/* entry.S: the SYSCALL entry point (LSTAR). */
void syscall_entry(void);

/* Called by entry.S. */
void trap_dispatch(struct trap_frame* frame);
void syscall_dispatch(struct trap_frame* frame);

#endif /* __ASSEMBLER__ */

#endif /* VMLAB_GUEST_CPU_H */
