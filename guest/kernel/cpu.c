#include "cpu.h"

#include "arch.h"
#include "boot.h"
#include "vmlab/cpuid.h"

struct descriptor_table_pointer {
  uint16_t limit;
  uint64_t base;
} __attribute__((packed));

/* Intel SDM vol. 3A, 3.4.5 (segment descriptors) and 5.2.1 (64-bit code
 * segments: L = 1, D = 0; base and limit are ignored in 64-bit mode but the
 * data descriptors stay flat 4 GiB because the PVH trampoline loads them in
 * 32-bit protected mode). */
#define DESCRIPTOR_KERNEL_CODE64 0x00af9a000000ffffull /* P, DPL 0, code, L */
#define DESCRIPTOR_KERNEL_DATA 0x00cf92000000ffffull   /* P, DPL 0, data, writable, G, D/B */
#define DESCRIPTOR_USER_DATA 0x00cff2000000ffffull     /* as kernel data, DPL 3 */
#define DESCRIPTOR_USER_CODE64 0x00affa000000ffffull   /* as kernel code, DPL 3 */

#define GDT_ENTRY_COUNT 7 /* null, 4 segments, 16-byte TSS descriptor */

/* The PVH trampoline (boot.S) loads this same table before entering long mode. */
uint64_t gdt[GDT_ENTRY_COUNT] = {
    0,
    DESCRIPTOR_KERNEL_CODE64,
    DESCRIPTOR_KERNEL_DATA,
    DESCRIPTOR_USER_DATA,
    DESCRIPTOR_USER_CODE64,
    0, /* TSS, filled in by cpu_init: its base is only known at link time */
    0,
};
/* boot.S's PVH trampoline loads the GDT through this. */
const struct descriptor_table_pointer gdt_pointer = {sizeof gdt - 1, (uint64_t)(uintptr_t)gdt};

/* 64-bit TSS (Intel SDM vol. 3A, 8.7 "Task Management in 64-bit Mode"). */
struct task_state_segment {
  uint32_t reserved0;
  uint64_t rsp[3]; /* stack for entering each privilege level from a less privileged one */
  uint64_t reserved1;
  uint64_t interrupt_stack[7]; /* IST1..IST7 */
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t io_map_base;
} __attribute__((packed));
_Static_assert(sizeof(struct task_state_segment) == 104, "64-bit TSS is 104 bytes");

static struct task_state_segment tss;

/* Interrupt gates clear IF on entry, so handlers start with interrupts off. */
#define GATE_PRESENT_INTERRUPT_DPL0 0x8e
#define DOUBLE_FAULT_STACK_INDEX 1

static struct interrupt_gate idt[VECTOR_TABLE_SIZE];

/* entry.S and boot.S */
extern const uint64_t trap_stub_table[VECTOR_TABLE_SIZE];
extern char trap_stack_top[];
extern char double_fault_stack_top[];

/* System-segment descriptor for an available 64-bit TSS (Intel SDM vol. 3A,
 * 8.2.3 "TSS Descriptor in 64-bit mode"): type 9, present, 16 bytes long. */
static void install_tss_descriptor(void) {
  uint64_t base = (uint64_t)(uintptr_t)&tss;
  uint64_t limit = sizeof tss - 1;
  gdt[SELECTOR_TSS / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
                          (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
  gdt[SELECTOR_TSS / 8 + 1] = base >> 32;
}

static void set_gate(unsigned vector, uint64_t handler, uint8_t stack_index) {
  struct interrupt_gate* gate = &idt[vector];
  gate->offset_low = (uint16_t)handler;
  gate->selector = SELECTOR_KERNEL_CODE;
  gate->interrupt_stack_index = stack_index;
  gate->attributes = GATE_PRESENT_INTERRUPT_DPL0;
  gate->offset_middle = (uint16_t)(handler >> 16);
  gate->offset_high = (uint32_t)(handler >> 32);
  gate->reserved = 0;
}

void cpu_init(void) {
  /* Interrupts and exceptions from user mode switch to RSP0; a double fault
   * always switches to its own stack, so a kernel stack overflow still
   * reports (Intel SDM vol. 3A, 6.14.5). No I/O bitmap: its base points past
   * the TSS limit, so user-mode port access faults (Intel SDM vol. 1, 19.5.2
   * "I/O Permission Bit Map"). */
  tss.interrupt_stack[DOUBLE_FAULT_STACK_INDEX - 1] = (uint64_t)(uintptr_t)double_fault_stack_top;
  tss.io_map_base = sizeof tss;
  install_tss_descriptor();
  pv_ops.load_gdt(gdt, sizeof gdt - 1);
  pv_ops.load_kernel_stack((uint64_t)(uintptr_t)trap_stack_top);

  for (unsigned vector = 0; vector < VECTOR_TABLE_SIZE; ++vector) {
    set_gate(vector, trap_stub_table[vector],
             vector == VECTOR_DOUBLE_FAULT ? DOUBLE_FAULT_STACK_INDEX : 0);
  }
  pv_ops.load_idt(idt, sizeof idt - 1);
}

struct cpu_tables cpu_descriptor_tables(void) {
  return (struct cpu_tables){(uint64_t)(uintptr_t)gdt, sizeof gdt - 1, (uint64_t)(uintptr_t)idt,
                             sizeof idt - 1};
}

void cpu_set_kernel_stack(uint64_t stack_top) {
  tss.rsp[0] = stack_top;
}

void syscall_init(void) {
  /* Intel SDM vol. 3A, 5.8.8: SYSCALL enters at LSTAR and clears the RFLAGS
   * bits in FMASK (IF, so the entry's stack switch is atomic; TF, DF, AC).
   * pv_ops writes the MSRs, or registers the entry with the monitor. */
  pv_ops.set_syscall_entry((uint64_t)(uintptr_t)syscall_entry);
}

/* The TSC rate (the disk workloads' MB/s, the rtc workload's time limits).
 * The VMM says it in boot_info: a kernel at CPL3 cannot trust CPUID
 * (abi/vmlab/cpuid.h). On the PVH entry (QEMU), where the kernel runs at
 * CPL0, CPUID: leaf 0x15 (crystal clock times the TSC ratio), else leaf
 * 0x16 (base frequency, which the TSC runs at on Intel parts with an
 * invariant TSC), else the hypervisor timing leaf 0x40000010 (TSC kHz) that
 * KVM and VMware offer; 0 if none says (Intel SDM vol. 2A, CPUID leaves 15H
 * and 16H). */
static void cpuid(uint32_t leaf, uint32_t values[4]) {
  __asm__ volatile("cpuid"
                   : "=a"(values[0]), "=b"(values[1]), "=c"(values[2]), "=d"(values[3])
                   : "a"(leaf), "c"(0));
}

#define CPUID_HYPERVISOR_PRESENT (1u << 31)

uint64_t cpu_tsc_hz(void) {
  if (boot_info()->tsc_khz != 0) return (uint64_t)boot_info()->tsc_khz * 1000;
  /* Started by the vmlab VMM, this kernel may be at CPL3, where cpuid may be
   * the host's: without the VMM's figure the rate is unknown. */
  if (boot_entry_kind() != BOOT_ENTRY_PVH) return 0;
  uint32_t values[4];
  cpuid(0, values);
  uint32_t maximum_leaf = values[0];
  if (maximum_leaf >= 0x15) {
    cpuid(0x15, values);
    if (values[0] != 0 && values[1] != 0 && values[2] != 0) {
      return (uint64_t)values[2] * values[1] / values[0];
    }
  }
  if (maximum_leaf >= 0x16) {
    cpuid(0x16, values);
    if ((values[0] & 0xffff) != 0) return (uint64_t)(values[0] & 0xffff) * 1000000;
  }
  cpuid(1, values);
  if ((values[2] & CPUID_HYPERVISOR_PRESENT) != 0) {
    cpuid(VMLAB_CPUID_HYPERVISOR_LEAF, values);
    if (values[0] >= VMLAB_CPUID_TIMING_LEAF) {
      cpuid(VMLAB_CPUID_TIMING_LEAF, values);
      if (values[0] != 0) return (uint64_t)values[0] * 1000;
    }
  }
  return 0;
}
