/* The interface between the guest kernel and its user program: system call
 * numbers, workload identifiers and the fixed user address-space layout.
 *
 * System calls: number in RAX, arguments in RDI, RSI, RDX, result in RAX;
 * `syscall` clobbers RCX and R11 (Intel SDM vol. 2B, SYSCALL).
 * The user program starts at VMLAB_USER_IMAGE_BASE with
 * RDI = VMLAB_USER_WORKLOAD_*, RSI = the workload's count n,
 * RSP = VMLAB_USER_STACK_TOP.
 */
#ifndef VMLAB_GUEST_USER_ABI_H
#define VMLAB_GUEST_USER_ABI_H

/* Plain macros, not enums: the user program's assembly entry uses them too. */
#define VMLAB_SYSCALL_EXIT 0   /* exit(status): ends the task, does not return */
#define VMLAB_SYSCALL_WRITE 1  /* write(buffer, length): console text, returns length or -1 */
#define VMLAB_SYSCALL_TICKS 2  /* ticks(): timer interrupts seen so far */
#define VMLAB_SYSCALL_NULL 3   /* null(): returns 0, measures the bare syscall round trip */
#define VMLAB_SYSCALL_REPORT 4 /* report(cycles, check): the user's own measurement */

#define VMLAB_SYSCALL_UNKNOWN_RESULT (-1)

/* The workload the kernel asks the user program to run (RDI at entry). */
#define VMLAB_USER_WORKLOAD_HELLO 0
#define VMLAB_USER_WORKLOAD_SYSCALLS 1
#define VMLAB_USER_WORKLOAD_PAGEFAULTS 2
#define VMLAB_USER_WORKLOAD_COMPUTE 3
#define VMLAB_USER_WORKLOAD_SEGFAULT 4
#define VMLAB_USER_WORKLOAD_PRIVILEGED 5 /* n selects one VMLAB_USER_PRIVILEGED_* */

/* What the privileged workload tries at CPL3 (the `hostile` kernel workload
 * runs each once). Every one must fault: #GP for the instructions, #PF for
 * the two memory accesses. */
#define VMLAB_USER_PRIVILEGED_CLI 0
#define VMLAB_USER_PRIVILEGED_HLT 1
#define VMLAB_USER_PRIVILEGED_MOV_CR3 2
#define VMLAB_USER_PRIVILEGED_OUT 3
#define VMLAB_USER_PRIVILEGED_LGDT 4
#define VMLAB_USER_PRIVILEGED_WRMSR 5
#define VMLAB_USER_PRIVILEGED_INVLPG 6
#define VMLAB_USER_PRIVILEGED_KERNEL_WRITE 7
#define VMLAB_USER_PRIVILEGED_MONITOR_JUMP 8
#define VMLAB_USER_PRIVILEGED_COUNT 9

#define VMLAB_PAGE_SIZE 0x1000ull

/* User virtual address space (4 KiB pages). The kernel's own mappings are in
 * the same address space, supervisor-only. */
#define VMLAB_USER_IMAGE_BASE 0x400000ull
#define VMLAB_USER_STACK_TOP 0x800000ull
#define VMLAB_USER_STACK_PAGES 4ull
#define VMLAB_USER_DEMAND_BASE 0x10000000ull
#define VMLAB_USER_DEMAND_SIZE 0x4000000ull /* 64 MiB, mapped one page per first touch */

/* Where the kernel image starts: mapped in every address space, never for user mode. */
#define VMLAB_KERNEL_IMAGE_BASE 0x100000ull

/* Where vmlab's --cpu full keeps its monitor region (modes/full,
 * monitor_region.hpp): virtual PML4 slot 511, supervisor-only, with the CPL0
 * entry stubs 0x3000 bytes in. No guest mapping can reach it; the hostile
 * workload tries anyway. */
#define VMLAB_MONITOR_VIRTUAL_BASE 0xffffff8000000000ull
#define VMLAB_MONITOR_STUBS (VMLAB_MONITOR_VIRTUAL_BASE + 0x3000ull)

#define VMLAB_HELLO_MESSAGE "Hello from user mode\n"

#endif /* VMLAB_GUEST_USER_ABI_H */
