/* vmlab boot protocol: the structure the VMM hands the guest kernel at entry.
 *
 * Shared by the VMM (C++20) and the guest kernel (freestanding C11), so it uses
 * only fixed-width types and explicit padding: both compilers must agree on
 * every offset (checked by static asserts on both sides).
 *
 * vmlab entry (DESIGN.md section 3): the VMM loads the ELF segments at their
 * physical addresses, builds identity page tables and a flat GDT, and starts the
 * vCPU in 64-bit mode at the ELF entry point with
 *   RDI = guest-physical address of struct vmlab_boot_info (identity mapped),
 *   RSP = VMLAB_BOOT_STACK_TOP (a small boot stack in reserved low memory),
 *   RFLAGS = 0x2 (interrupts disabled), EFER = LME | LMA.
 * Everything below 1 MiB is reserved for these boot structures; the memory map
 * says which ranges the guest may use.
 *
 * PVH entry: QEMU (and Xen) start the same image at the PHYS32_ENTRY note in
 * 32-bit protected mode with EBX = struct hvm_start_info; the guest converts
 * that into a vmlab_boot_info itself, with the standard PC device table.
 */
#ifndef VMLAB_ABI_BOOT_INFO_H
#define VMLAB_ABI_BOOT_INFO_H

#include <stdint.h>

#define VMLAB_BOOT_MAGIC 0x4f4f42424c4d56ULL /* "VMLBBOO" little-endian */
#define VMLAB_BOOT_VERSION 2u

/* Fixed guest-physical layout of the boot structures the VMM builds. */
#define VMLAB_BOOT_GDT_ADDR 0x1000ull
#define VMLAB_BOOT_INFO_ADDR 0x2000ull
#define VMLAB_BOOT_CMDLINE_ADDR 0x3000ull
#define VMLAB_BOOT_CMDLINE_MAX 4096u
#define VMLAB_BOOT_STACK_TOP 0x8000ull
#define VMLAB_BOOT_PML4_ADDR 0x8000ull
#define VMLAB_BOOT_PDPT_ADDR 0x9000ull
#define VMLAB_BOOT_PD_ADDR 0xa000ull        /* 4 pages: identity map of the first 4 GiB */
#define VMLAB_BOOT_LOW_RESERVED 0x100000ull /* below this: boot structures only */

#define VMLAB_MAX_MEM_REGIONS 16u
#define VMLAB_MAX_DEVICES 16u

enum vmlab_mem_type {
  VMLAB_MEM_RAM = 1,      /* usable by the guest */
  VMLAB_MEM_RESERVED = 2, /* boot structures, monitor region: never touch */
};

struct vmlab_mem_region {
  uint64_t base;
  uint64_t length;
  uint32_t type; /* enum vmlab_mem_type */
  uint32_t reserved;
};

enum vmlab_device_kind {
  VMLAB_DEVICE_UART16550 = 1,
  VMLAB_DEVICE_PIC8259 = 2,
  VMLAB_DEVICE_PIT8254 = 3,
  VMLAB_DEVICE_DEBUGCON = 4,
  VMLAB_DEVICE_EXIT_PORT = 5,
  /* PIO ATA, primary channel: base = command block (0x1f0, 8 ports), the
   * control block (alternate status / device control) at base + 0x206. */
  VMLAB_DEVICE_ATA = 6,
  /* virtio 1.x over MMIO (version 2 register layout, virtio 1.2 section 4.2):
   * base = guest-physical address of a 0x200-byte register window
   * (VMLAB_DEVICE_FLAG_MMIO set); the DeviceID register says what it is. */
  VMLAB_DEVICE_VIRTIO_MMIO = 7,
  /* The passthrough storage controller (abi/vmlab/passthrough.h):
   * base = guest-physical address of its 4 KiB register window, which is
   * memory, not trapped MMIO (VMLAB_DEVICE_FLAG_MMIO set all the same: it
   * lies outside RAM and is mapped like a device window). */
  VMLAB_DEVICE_PASSTHROUGH = 8,
  /* The MC146818 real-time clock and its CMOS RAM: base = the index port
   * (0x70), size 2 (the data port follows); irq = VMLAB_NO_IRQ when the
   * clock raises no interrupt (vmlab's does not; on a PC it is IRQ 8). */
  VMLAB_DEVICE_RTC_MC146818 = 9,
};

enum vmlab_device_flags {
  VMLAB_DEVICE_FLAG_MMIO = 1u << 0, /* base is a guest-physical address, not a port */
};

struct vmlab_device {
  uint32_t kind;  /* enum vmlab_device_kind */
  uint32_t irq;   /* ISA IRQ line, or 0xffffffff for none */
  uint64_t base;  /* I/O port or guest-physical address */
  uint64_t size;  /* bytes or ports */
  uint32_t flags; /* enum vmlab_device_flags */
  uint32_t reserved;
};

#define VMLAB_NO_IRQ 0xffffffffu

enum vmlab_boot_flags {
  VMLAB_BOOT_FLAG_PVH = 1u << 0, /* filled in by the guest's own PVH trampoline */
};

struct vmlab_boot_info {
  uint64_t magic;   /* VMLAB_BOOT_MAGIC */
  uint32_t version; /* VMLAB_BOOT_VERSION */
  uint32_t size;    /* sizeof(struct vmlab_boot_info) */
  uint64_t cmdline_addr;
  uint32_t cmdline_length; /* bytes, without the terminating NUL */
  uint32_t mem_region_count;
  struct vmlab_mem_region mem_regions[VMLAB_MAX_MEM_REGIONS];
  uint32_t device_count;
  uint32_t flags; /* enum vmlab_boot_flags */
  struct vmlab_device devices[VMLAB_MAX_DEVICES];
  /* What the kernel must not learn from CPUID (PLATFORM.md "Hosts differ"):
   * a kernel deprivileged to CPL3 cannot trust `cpuid`, which a host without
   * CPUID faulting answers itself, with the host's own leaves. So the VMM
   * says here what Xen says in a PV domain's start_info. */
  /* Nonzero only when the VMM started the kernel paravirtualized (--cpu
   * para): the version of the vmlab paravirtual ABI the monitor speaks
   * (VMLAB_PARA_ABI_VERSION, abi/vmlab/hypercall.h). 0: run natively,
   * as under hvm, full, QEMU, or real hardware. */
  uint32_t paravirtual_abi;
  /* The guest's TSC rate in kHz as KVM reports it (KVM_GET_TSC_KHZ), 0 if
   * unknown (then the kernel asks CPUID, which it may at CPL0). */
  uint32_t tsc_khz;
};

#define VMLAB_BOOT_INFO_SIZE (32u + 24u * VMLAB_MAX_MEM_REGIONS + 8u + 32u * VMLAB_MAX_DEVICES + 8u)

#ifdef __cplusplus
static_assert(sizeof(struct vmlab_boot_info) == VMLAB_BOOT_INFO_SIZE, "boot_info layout");
#else
_Static_assert(sizeof(struct vmlab_boot_info) == VMLAB_BOOT_INFO_SIZE, "boot_info layout");
#endif

#endif /* VMLAB_ABI_BOOT_INFO_H */
