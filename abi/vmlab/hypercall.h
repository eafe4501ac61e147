/* The vmlab paravirtual interface (DESIGN.md 1, `para`): how a guest kernel
 * finds the monitor, the hypercalls it may make, and the page it shares with
 * the monitor. Shared by the guest kernel (freestanding C11) and the monitor
 * (C++20): fixed-width types and explicit padding only.
 *
 * Discovery. The boot protocol says it, as a Xen PV domain's start_info
 * does: boot_info.paravirtual_abi (boot_info.h) is VMLAB_PARA_ABI_VERSION when
 * the VMM started the kernel paravirtualized, 0 otherwise (hvm, full, QEMU:
 * the kernel runs natively). Never CPUID: at CPL3 a host without CPUID
 * faulting answers `cpuid` with its own leaves (PLATFORM.md, cpuid.h).
 *
 * Calling convention. A hypercall is `syscall` executed in virtual kernel
 * mode, as in Xen's 64-bit PV ABI: RAX = number, arguments in RDI, RSI, RDX,
 * R10, R8 (R10, not RCX, which SYSCALL overwrites); the result comes back in
 * RAX: 0 or a positive value on success, a negative VMLAB_E* code on failure.
 * RCX and R11 are clobbered (SYSCALL saves RIP and RFLAGS in them); every
 * other register is preserved. A `syscall` from virtual user mode is the user
 * program's system call and goes to the kernel's syscall callback instead.
 *
 * Pointers. Arguments called "address" are guest-virtual addresses in the
 * current kernel address space; "frame" and "entry pointer" arguments are
 * guest-physical. A pointer the monitor cannot follow is VMLAB_EFAULT.
 */
#ifndef VMLAB_ABI_HYPERCALL_H
#define VMLAB_ABI_HYPERCALL_H

#include <stdint.h>

#define VMLAB_PARA_ABI_VERSION 1u

enum vmlab_hypercall {
  /* (address, count): install `count` struct vmlab_trap_info entries, the
   * paravirtual IDT. An entry with handler 0 removes that vector's handler. */
  VMLAB_HYPERCALL_SET_TRAP_TABLE = 0,
  /* (address, count): apply `count` struct vmlab_mmu_update requests in
   * order. Each request's result is written back into it; the call returns
   * the number of requests that succeeded (all of them when it equals count),
   * or VMLAB_EFAULT if the array itself could not be read or written back
   * (the requests before that point were applied). */
  VMLAB_HYPERCALL_MMU_UPDATE = 1,
  /* (virtual address, new leaf entry): mmu_update on the 4 KiB entry that
   * maps the address in the current kernel address space. */
  VMLAB_HYPERCALL_UPDATE_VA_MAPPING = 2,
  /* (root frame, enum vmlab_baseptr_kind): validate a PML4 and make it the
   * kernel-mode or user-mode root (Xen's MMUEXT_NEW_BASEPTR and
   * MMUEXT_NEW_USER_BASEPTR). The user-mode root is what runs in virtual user
   * mode; 0 means "the kernel-mode root". */
  VMLAB_HYPERCALL_NEW_BASEPTR = 3,
  /* (address, entry count): register the kernel's GDT. Each entry must be
   * null, a flat 64-bit code or data segment, or a 64-bit TSS descriptor. */
  VMLAB_HYPERCALL_SET_GDT = 4,
  /* (kernel stack pointer): the stack events from virtual user mode start on
   * (the TSS RSP0 of a native kernel). */
  VMLAB_HYPERCALL_STACK_SWITCH = 5,
  /* (enum vmlab_sched_op): BLOCK unmasks events and sleeps until one is
   * pending (the paravirtual `sti; hlt`); YIELD returns at once, delivering
   * whatever is pending (how a kernel takes an event it found pending when
   * it unmasked). */
  VMLAB_HYPERCALL_SCHED_OP = 6,
  /* (): return from an event. RSP points at struct vmlab_iret_frame. */
  VMLAB_HYPERCALL_IRET = 7,
  /* (VMLAB_CONSOLE_WRITE, count, address): text for the VMM's console. */
  VMLAB_HYPERCALL_CONSOLE_IO = 8,
  /* (address, count): run `count` struct vmlab_multicall entries in order,
   * each result written back into its entry. Returns the number that ran,
   * or VMLAB_EFAULT for an array it cannot follow; IRET, SCHED_OP BLOCK and
   * MULTICALL itself cannot be batched (VMLAB_EINVAL in their entry). */
  VMLAB_HYPERCALL_MULTICALL = 9,
  /* (frame): the page the monitor shares with this vCPU (struct
   * vmlab_shared_info). Until it is registered, events stay masked. */
  VMLAB_HYPERCALL_REGISTER_SHARED_INFO = 10,
  /* (syscall entry address): where a user program's `syscall` enters the
   * kernel (the LSTAR of a native kernel). */
  VMLAB_HYPERCALL_SET_CALLBACKS = 11,
  /* (port, enum vmlab_port_flags | size, value or address, count): port I/O
   * on the kernel's behalf; a string transfer moves `count` elements from or
   * to the buffer at `address` in one call. Returns the value read. */
  VMLAB_HYPERCALL_PORT_IO = 12,
  /* (virtual address or VMLAB_FLUSH_ALL): drop cached translations. */
  VMLAB_HYPERCALL_FLUSH_TLB = 13,
  VMLAB_HYPERCALL_COUNT = 14,
};

/* Results: negative errno-style codes, as Xen's hypercalls return. */
#define VMLAB_OK 0
#define VMLAB_EPERM (-1)   /* a valid request the rules forbid (monitor mapping, writable table) */
#define VMLAB_ENOMEM (-12) /* the monitor ran out of room for what was asked */
#define VMLAB_EFAULT (-14) /* a pointer outside guest RAM or not mapped */
#define VMLAB_EBUSY (-16)  /* the frame is in use as another kind of page */
#define VMLAB_EINVAL (-22) /* a malformed argument */
#define VMLAB_ENOSYS (-38) /* no such hypercall */

struct vmlab_trap_info {
  uint8_t vector;
  uint8_t flags; /* enum vmlab_trap_flags */
  uint16_t reserved0;
  uint32_t reserved1;
  uint64_t handler; /* kernel virtual address, 0 to remove */
};

enum vmlab_trap_flags {
  /* Mask events on entry, as an interrupt gate clears IF. */
  VMLAB_TRAP_MASK_EVENTS = 1u << 0,
};

/* One page-table write: `pointer` is the guest-physical address of an
 * 8-byte entry in a frame the guest uses as a page table (or is building
 * one in), `value` the new entry. */
struct vmlab_mmu_update {
  uint64_t pointer;
  uint64_t value;
  int64_t result; /* written by the monitor: VMLAB_OK or a VMLAB_E* code */
};

enum vmlab_baseptr_kind {
  VMLAB_BASEPTR_KERNEL = 0,
  VMLAB_BASEPTR_USER = 1,
};

enum vmlab_sched_op {
  VMLAB_SCHED_BLOCK = 0,
  VMLAB_SCHED_YIELD = 1,
};

#define VMLAB_CONSOLE_WRITE 0u
#define VMLAB_FLUSH_ALL (~0ull)

enum vmlab_port_flags {
  VMLAB_PORT_SIZE_MASK = 0xfu, /* 1, 2 or 4 bytes per element */
  VMLAB_PORT_INPUT = 1u << 4,  /* in, else out */
  VMLAB_PORT_STRING = 1u << 5, /* ins/outs: `count` elements through memory */
};

/* What IRET finds at RSP: the kernel pushes RCX, R11 and RAX (which the
 * SYSCALL of the hypercall itself overwrites) below the frame an event
 * delivered, and the monitor restores all of it. */
struct vmlab_iret_frame {
  uint64_t rax;
  uint64_t rcx;
  uint64_t r11;
  uint64_t rip;
  uint64_t cs;
  uint64_t rflags;
  uint64_t rsp;
  uint64_t ss;
};

struct vmlab_multicall {
  uint64_t op; /* enum vmlab_hypercall */
  uint64_t arguments[5];
  int64_t result;
};

/* The shared page. Events (virtual interrupts) reach the kernel at the
 * handler its trap table names for the vector, with a native exception
 * frame, only while upcall_mask is 0: the paravirtual cli and sti are stores
 * to upcall_mask, and no instruction traps. When an event arrives while it
 * is masked the monitor sets upcall_pending; a kernel that unmasks and finds
 * it set makes a SCHED_OP YIELD hypercall to take the event. */
struct vmlab_shared_info {
  uint8_t upcall_mask;    /* 1: events masked (the virtual IF is 0) */
  uint8_t upcall_pending; /* an event waits for the mask to clear */
  uint8_t reserved[6];
  uint64_t cr2; /* the address of the last page fault delivered */
  uint64_t events_delivered;
  uint64_t hypercalls; /* how many the monitor has handled for this guest */
};

#define VMLAB_SHARED_INFO_SIZE 32u

#ifdef __cplusplus
static_assert(sizeof(struct vmlab_trap_info) == 16, "trap_info layout");
static_assert(sizeof(struct vmlab_mmu_update) == 24, "mmu_update layout");
static_assert(sizeof(struct vmlab_iret_frame) == 64, "iret frame layout");
static_assert(sizeof(struct vmlab_multicall) == 56, "multicall layout");
static_assert(sizeof(struct vmlab_shared_info) == VMLAB_SHARED_INFO_SIZE, "shared_info layout");
#else
_Static_assert(sizeof(struct vmlab_trap_info) == 16, "trap_info layout");
_Static_assert(sizeof(struct vmlab_mmu_update) == 24, "mmu_update layout");
_Static_assert(sizeof(struct vmlab_iret_frame) == 64, "iret frame layout");
_Static_assert(sizeof(struct vmlab_multicall) == 56, "multicall layout");
_Static_assert(sizeof(struct vmlab_shared_info) == VMLAB_SHARED_INFO_SIZE, "shared_info layout");
#endif

#endif /* VMLAB_ABI_HYPERCALL_H */
