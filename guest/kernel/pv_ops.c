#include "pv_ops.h"

#include "arch.h"
#include "boot.h"
#include "cpu.h"
#include "vmlab/hypercall.h"

/* ---- Native: the instructions themselves. ---- */

static void native_irq_enable(void) {
  __asm__ volatile("sti" : : : "memory");
}

static uint64_t native_save_flags(void) {
  uint64_t flags;
  __asm__ volatile("pushfq; pop %0" : "=r"(flags) : : "memory");
  return flags;
}

/* Both tables restore the flags the same way, through their own irq_enable
 * and irq_disable: only IF is restored (the arithmetic flags are the
 * caller's to keep). */
static void restore_flags(uint64_t flags) {
  if (flags & RFLAGS_INTERRUPT_ENABLE) {
    pv_ops.irq_enable();
  } else {
    pv_ops.irq_disable();
  }
}

static void native_write_user_cr3(uint64_t root) {
  (void)root; /* one root serves both modes: user pages carry the user bit */
}

static void native_set_pte(uint64_t* entry, uint64_t value) {
  *entry = value;
}

static void native_flush_tlb_single(uint64_t address) {
  __asm__ volatile("invlpg (%0)" : : "r"(address) : "memory");
}

struct descriptor_table_pointer {
  uint16_t limit;
  uint64_t base;
} __attribute__((packed));

void gdt_load(const struct descriptor_table_pointer* pointer); /* entry.S */

static void native_load_gdt(const void* table, uint16_t limit) {
  struct descriptor_table_pointer pointer = {limit, (uint64_t)(uintptr_t)table};
  gdt_load(&pointer);
  __asm__ volatile("ltr %w0" : : "r"(SELECTOR_TSS) : "memory");
}

static void native_load_idt(const void* table, uint16_t limit) {
  struct descriptor_table_pointer pointer = {limit, (uint64_t)(uintptr_t)table};
  __asm__ volatile("lidt %0" : : "m"(pointer) : "memory");
}

/* The TSS that cpu.c owns holds RSP0. */
void cpu_set_kernel_stack(uint64_t stack_top);

static void native_set_syscall_entry(uint64_t entry) {
  /* Intel SDM vol. 3A, 5.8.8. EFER is written only if SCE is still clear
   * (the vmlab VMM sets it at entry; some KVM backends refuse a guest's EFER
   * write), and then with LME/LMA unchanged. STAR's SYSRET half is never
   * used (the kernel returns with iretq, PLATFORM.md) but kept consistent. */
  uint64_t efer = read_msr(MSR_EFER);
  if ((efer & EFER_SYSCALL_ENABLE) == 0) write_msr(MSR_EFER, efer | EFER_SYSCALL_ENABLE);
  write_msr(MSR_STAR, ((uint64_t)(SELECTOR_USER_CODE - 3 - 16) << 48) |
                          ((uint64_t)SELECTOR_KERNEL_CODE << 32));
  write_msr(MSR_LSTAR, entry);
  write_msr(MSR_FMASK,
            RFLAGS_INTERRUPT_ENABLE | RFLAGS_TRAP | RFLAGS_DIRECTION | RFLAGS_ALIGNMENT_CHECK);
}

static uint32_t native_port_read(uint16_t port, unsigned size) {
  uint32_t value = 0;
  if (size == 1) {
    value = native_port_read8(port);
  } else if (size == 2) {
    uint16_t word;
    __asm__ volatile("inw %1, %0" : "=a"(word) : "Nd"(port) : "memory");
    value = word;
  } else {
    __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port) : "memory");
  }
  return value;
}

static void native_port_write(uint16_t port, unsigned size, uint32_t value) {
  if (size == 1) {
    native_port_write8(port, (uint8_t)value);
  } else if (size == 2) {
    __asm__ volatile("outw %0, %1" : : "a"((uint16_t)value), "Nd"(port) : "memory");
  } else {
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port) : "memory");
  }
}

/* One string instruction per transfer (CPL0 code may be emulated one
 * instruction at a time, PLATFORM.md). */
static void native_port_read_string(uint16_t port, unsigned size, void* buffer, uint64_t count) {
  if (size == 1) {
    __asm__ volatile("rep insb" : "+D"(buffer), "+c"(count) : "d"(port) : "memory");
  } else if (size == 2) {
    __asm__ volatile("rep insw" : "+D"(buffer), "+c"(count) : "d"(port) : "memory");
  } else {
    __asm__ volatile("rep insl" : "+D"(buffer), "+c"(count) : "d"(port) : "memory");
  }
}

static void native_port_write_string(uint16_t port, unsigned size, const void* buffer,
                                     uint64_t count) {
  if (size == 1) {
    __asm__ volatile("rep outsb" : "+S"(buffer), "+c"(count) : "d"(port) : "memory");
  } else if (size == 2) {
    __asm__ volatile("rep outsw" : "+S"(buffer), "+c"(count) : "d"(port) : "memory");
  } else {
    __asm__ volatile("rep outsl" : "+S"(buffer), "+c"(count) : "d"(port) : "memory");
  }
}

void native_iret(void); /* entry.S: iretq */
void para_iret(void);   /* entry.S: the IRET hypercall */

struct pv_ops pv_ops = {
    .name = "native",
    .paravirtual = false,
    .irq_disable = native_interrupts_disable,
    .irq_enable = native_irq_enable,
    .save_flags = native_save_flags,
    .restore_flags = restore_flags,
    .safe_halt = native_interrupts_enable_and_wait,
    .write_cr3 = native_write_cr3,
    .write_user_cr3 = native_write_user_cr3,
    .read_cr2 = native_read_cr2,
    .set_pte = native_set_pte,
    .flush_tlb_single = native_flush_tlb_single,
    .load_gdt = native_load_gdt,
    .load_idt = native_load_idt,
    .load_kernel_stack = cpu_set_kernel_stack,
    .set_syscall_entry = native_set_syscall_entry,
    .port_read = native_port_read,
    .port_write = native_port_write,
    .port_read_string = native_port_read_string,
    .port_write_string = native_port_write_string,
};

void (*pv_iret)(void) = native_iret;

/* ---- Paravirtual: hypercalls and the shared page. ---- */

/* hypercall.h calling convention: `syscall` with the number in RAX and the
 * arguments in RDI, RSI, RDX, R10, R8; RCX and R11 are clobbered. */
int64_t hypercall(uint64_t number, uint64_t argument0, uint64_t argument1, uint64_t argument2,
                  uint64_t argument3) {
  register uint64_t r10 __asm__("r10") = argument3;
  int64_t result;
  __asm__ volatile("syscall"
                   : "=a"(result), "+D"(argument0), "+S"(argument1), "+d"(argument2), "+r"(r10)
                   : "a"(number)
                   : "rcx", "r11", "r8", "memory");
  return result;
}

static struct vmlab_shared_info shared_info __attribute__((aligned(4096)));

_Noreturn static void para_failure(const char* what, int64_t result) {
  /* The console may not work yet: leave a line on the debug console (a
   * PORT_IO hypercall per byte, which needs nothing set up) and stop. */
  static const char prefix[] = "vmlab: paravirtual setup failed: ";
  for (const char* c = prefix; *c != '\0'; ++c)
    hypercall(VMLAB_HYPERCALL_PORT_IO, 0xe9, 1, (uint8_t)*c, 0);
  for (const char* c = what; *c != '\0'; ++c)
    hypercall(VMLAB_HYPERCALL_PORT_IO, 0xe9, 1, (uint8_t)*c, 0);
  hypercall(VMLAB_HYPERCALL_PORT_IO, 0xe9, 1, '\n', 0);
  hypercall(VMLAB_HYPERCALL_PORT_IO, 0xf4, 4, 3, 0);
  (void)result;
  for (;;)
    hypercall(VMLAB_HYPERCALL_SCHED_OP, VMLAB_SCHED_BLOCK, 0, 0, 0);
}

uint64_t pv_hypercalls_handled(void) {
  return __atomic_load_n(&shared_info.hypercalls, __ATOMIC_SEQ_CST);
}

static void para_irq_disable(void) {
  __atomic_store_n(&shared_info.upcall_mask, 1, __ATOMIC_SEQ_CST);
}

static void para_irq_enable(void) {
  __atomic_store_n(&shared_info.upcall_mask, 0, __ATOMIC_SEQ_CST);
  /* An event that arrived while masked waits for us to ask for it. */
  if (__atomic_load_n(&shared_info.upcall_pending, __ATOMIC_SEQ_CST)) {
    hypercall(VMLAB_HYPERCALL_SCHED_OP, VMLAB_SCHED_YIELD, 0, 0, 0);
  }
}

static uint64_t para_save_flags(void) {
  uint64_t flags = native_save_flags() & ~RFLAGS_INTERRUPT_ENABLE;
  if (__atomic_load_n(&shared_info.upcall_mask, __ATOMIC_SEQ_CST) == 0) {
    flags |= RFLAGS_INTERRUPT_ENABLE;
  }
  return flags;
}

static void para_safe_halt(void) {
  /* BLOCK unmasks and sleeps until an event has been delivered (and
   * returned from); then mask again, as the `cli` after `hlt`. */
  hypercall(VMLAB_HYPERCALL_SCHED_OP, VMLAB_SCHED_BLOCK, 0, 0, 0);
  para_irq_disable();
}

static void para_write_cr3(uint64_t root) {
  pv_flush_page_table_batch();
  int64_t result = hypercall(VMLAB_HYPERCALL_NEW_BASEPTR, root, VMLAB_BASEPTR_KERNEL, 0, 0);
  if (result != VMLAB_OK) para_failure("new_baseptr refused the kernel page tables", result);
}

static void para_write_user_cr3(uint64_t root) {
  pv_flush_page_table_batch();
  int64_t result = hypercall(VMLAB_HYPERCALL_NEW_BASEPTR, root, VMLAB_BASEPTR_USER, 0, 0);
  if (result != VMLAB_OK) para_failure("new_baseptr refused the user page tables", result);
}

static uint64_t para_read_cr2(void) {
  return __atomic_load_n(&shared_info.cr2, __ATOMIC_SEQ_CST);
}

/* The batch of queued page-table writes: one MMU_UPDATE for all of them. */
#define PTE_BATCH_SIZE 64
static struct vmlab_mmu_update pte_batch[PTE_BATCH_SIZE];
static unsigned pte_batch_length;

/* Kernel virtual to guest physical for an entry pointer: page tables are
 * reached through the physical map (memory.h), the kernel image is
 * identity-mapped. */
uint64_t memory_virtual_to_physical(const void* address);

static void para_set_pte(uint64_t* entry, uint64_t value) {
  pv_flush_page_table_batch();
  struct vmlab_mmu_update request = {memory_virtual_to_physical(entry), value, 0};
  int64_t done = hypercall(VMLAB_HYPERCALL_MMU_UPDATE, (uint64_t)(uintptr_t)&request, 1, 0, 0);
  if (done != 1) para_failure("mmu_update refused a page-table entry", request.result);
}

void pv_queue_pte(uint64_t* entry, uint64_t value) {
  if (!pv_ops.paravirtual) {
    *entry = value;
    return;
  }
  if (pte_batch_length == PTE_BATCH_SIZE) pv_flush_page_table_batch();
  pte_batch[pte_batch_length++] =
      (struct vmlab_mmu_update){memory_virtual_to_physical(entry), value, 0};
}

void pv_flush_page_table_batch(void) {
  if (pte_batch_length == 0) return;
  unsigned length = pte_batch_length;
  pte_batch_length = 0;
  int64_t done =
      hypercall(VMLAB_HYPERCALL_MMU_UPDATE, (uint64_t)(uintptr_t)pte_batch, length, 0, 0);
  if (done != (int64_t)length) {
    int64_t first_error = VMLAB_OK;
    for (unsigned index = 0; index < length && first_error == VMLAB_OK; ++index)
      first_error = pte_batch[index].result;
    para_failure("mmu_update refused a batch of page-table entries", first_error);
  }
}

static void para_flush_tlb_single(uint64_t address) {
  hypercall(VMLAB_HYPERCALL_FLUSH_TLB, address, 0, 0, 0);
}

static void para_load_gdt(const void* table, uint16_t limit) {
  int64_t result =
      hypercall(VMLAB_HYPERCALL_SET_GDT, (uint64_t)(uintptr_t)table, (limit + 1u) / 8u, 0, 0);
  if (result != VMLAB_OK) para_failure("set_gdt refused the GDT", result);
}

/* The IDT's gates become a trap table: same handlers, and interrupt gates
 * (which clear IF) become "mask events on entry". */
static void para_load_idt(const void* table, uint16_t limit) {
  static struct vmlab_trap_info traps[256];
  const struct interrupt_gate* gates = table;
  unsigned count = (limit + 1u) / sizeof *gates;
  if (count > 256) count = 256;
  for (unsigned vector = 0; vector < count; ++vector) {
    const struct interrupt_gate* gate = &gates[vector];
    uint64_t handler = gate->offset_low | ((uint64_t)gate->offset_middle << 16) |
                       ((uint64_t)gate->offset_high << 32);
    bool present = (gate->attributes & 0x80) != 0;
    bool interrupt_gate = (gate->attributes & 0x0f) == 0x0e;
    traps[vector] = (struct vmlab_trap_info){
        (uint8_t)vector, interrupt_gate ? VMLAB_TRAP_MASK_EVENTS : 0, 0, 0, present ? handler : 0};
  }
  int64_t result =
      hypercall(VMLAB_HYPERCALL_SET_TRAP_TABLE, (uint64_t)(uintptr_t)traps, count, 0, 0);
  if (result != VMLAB_OK) para_failure("set_trap_table refused the trap table", result);
}

static void para_load_kernel_stack(uint64_t stack_top) {
  int64_t result = hypercall(VMLAB_HYPERCALL_STACK_SWITCH, stack_top, 0, 0, 0);
  if (result != VMLAB_OK) para_failure("stack_switch refused the kernel stack", result);
}

static void para_set_syscall_entry(uint64_t entry) {
  int64_t result = hypercall(VMLAB_HYPERCALL_SET_CALLBACKS, entry, 0, 0, 0);
  if (result != VMLAB_OK) para_failure("set_callbacks refused the syscall entry", result);
}

static uint32_t para_port_read(uint16_t port, unsigned size) {
  return (uint32_t)hypercall(VMLAB_HYPERCALL_PORT_IO, port, size | VMLAB_PORT_INPUT, 0, 0);
}

static void para_port_write(uint16_t port, unsigned size, uint32_t value) {
  hypercall(VMLAB_HYPERCALL_PORT_IO, port, size, value, 0);
}

static void para_port_read_string(uint16_t port, unsigned size, void* buffer, uint64_t count) {
  hypercall(VMLAB_HYPERCALL_PORT_IO, port, size | VMLAB_PORT_INPUT | VMLAB_PORT_STRING,
            (uint64_t)(uintptr_t)buffer, count);
}

static void para_port_write_string(uint16_t port, unsigned size, const void* buffer,
                                   uint64_t count) {
  hypercall(VMLAB_HYPERCALL_PORT_IO, port, size | VMLAB_PORT_STRING, (uint64_t)(uintptr_t)buffer,
            count);
}

static const struct pv_ops para_ops = {
    .name = "vmlab-para",
    .paravirtual = true,
    .irq_disable = para_irq_disable,
    .irq_enable = para_irq_enable,
    .save_flags = para_save_flags,
    .restore_flags = restore_flags,
    .safe_halt = para_safe_halt,
    .write_cr3 = para_write_cr3,
    .write_user_cr3 = para_write_user_cr3,
    .read_cr2 = para_read_cr2,
    .set_pte = para_set_pte,
    .flush_tlb_single = para_flush_tlb_single,
    .load_gdt = para_load_gdt,
    .load_idt = para_load_idt,
    .load_kernel_stack = para_load_kernel_stack,
    .set_syscall_entry = para_set_syscall_entry,
    .port_read = para_port_read,
    .port_write = para_port_write,
    .port_read_string = para_port_read_string,
    .port_write_string = para_port_write_string,
};

void pv_init(const struct vmlab_boot_info* info) {
  /* The boot protocol says whether this kernel was started paravirtualized,
   * as a Xen PV domain's start_info does. Not CPUID: at CPL3 a host without
   * CPUID faulting answers with its own leaves (abi/vmlab/cpuid.h). */
  if (info == NULL || info->paravirtual_abi == 0) return;
  if (info->paravirtual_abi != VMLAB_PARA_ABI_VERSION) {
    para_failure("boot_info names a paravirtual ABI this kernel does not speak",
                 (int64_t)info->paravirtual_abi);
  }
  /* Until the shared page is registered, events are masked by definition. */
  int64_t result = hypercall(VMLAB_HYPERCALL_REGISTER_SHARED_INFO,
                             memory_virtual_to_physical(&shared_info), 0, 0, 0);
  if (result != VMLAB_OK) para_failure("register_shared_info failed", result);
  pv_ops = para_ops;
  pv_iret = para_iret;
}

_Noreturn void halt_forever(void) {
  pv_ops.irq_disable();
  for (;;) {
    if (pv_ops.paravirtual) {
      hypercall(VMLAB_HYPERCALL_SCHED_OP, VMLAB_SCHED_BLOCK, 0, 0, 0);
      para_irq_disable();
    } else {
      __asm__ volatile("cli; hlt");
    }
  }
}

_Static_assert(VMLAB_HYPERCALL_IRET == 7, "entry.S's VMLAB_HYPERCALL_IRET_NUMBER");
