/* pv_ops: one table of the operations a kernel does differently when it
 * knows it is paravirtualized (DESIGN.md 1, `para`), as Linux's paravirt_ops.
 * pv_init() reads the boot protocol: when boot_info says the VMM started the
 * kernel paravirtualized (boot_info.paravirtual_abi, as a Xen PV domain's
 * start_info), it switches the table from the native instructions to
 * hypercalls and stores to the shared page (abi/vmlab/hypercall.h).
 * Otherwise (hvm, full, QEMU) the same image runs natively. It never asks
 * CPUID, which a host may answer itself at CPL3 (abi/vmlab/cpuid.h). */
#ifndef VMLAB_GUEST_PV_OPS_H
#define VMLAB_GUEST_PV_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pv_ops {
  const char* name;
  bool paravirtual;
  /* Interrupt flag: cli, sti, pushf, and IF-restoring popf. */
  void (*irq_disable)(void);
  void (*irq_enable)(void);
  uint64_t (*save_flags)(void); /* RFLAGS with IF as the kernel would see it */
  void (*restore_flags)(uint64_t flags);
  /* sti; hlt; cli: sleep until an interrupt has been handled. */
  void (*safe_halt)(void);
  /* The kernel-mode root (mov %cr3), and the root that runs in user mode
   * (natively the same one: the call does nothing; 0 = the kernel's). */
  void (*write_cr3)(uint64_t root);
  void (*write_user_cr3)(uint64_t root);
  uint64_t (*read_cr2)(void);
  void (*set_pte)(uint64_t* entry, uint64_t value);
  void (*flush_tlb_single)(uint64_t address);
  /* Descriptor tables and the kernel stack for entries from user mode. */
  void (*load_gdt)(const void* table, uint16_t limit);
  void (*load_idt)(const void* table, uint16_t limit);
  void (*load_kernel_stack)(uint64_t stack_top);
  void (*set_syscall_entry)(uint64_t entry);
  /* Port I/O: one element, and `count` elements through memory (ins/outs). */
  uint32_t (*port_read)(uint16_t port, unsigned size);
  void (*port_write)(uint16_t port, unsigned size, uint32_t value);
  void (*port_read_string)(uint16_t port, unsigned size, void* buffer, uint64_t count);
  void (*port_write_string)(uint16_t port, unsigned size, const void* buffer, uint64_t count);
};

extern struct pv_ops pv_ops;

/* entry.S jumps here to leave the kernel (native: iretq; para: the IRET
 * hypercall), with RSP at the frame an interrupt pushes. */
extern void (*pv_iret)(void);

/* A raw hypercall (abi/vmlab/hypercall.h): RAX = number, arguments in
 * RDI, RSI, RDX, R10; returns RAX. Only meaningful when paravirtual. */
int64_t hypercall(uint64_t number, uint64_t argument0, uint64_t argument1, uint64_t argument2,
                  uint64_t argument3);

/* Paravirtualized: how many hypercalls the monitor says it has handled
 * (the shared page's counter); 0 natively. */
uint64_t pv_hypercalls_handled(void);

struct vmlab_boot_info;

/* Chooses the table from the adopted boot information (NULL: native); call
 * before anything privileged. */
void pv_init(const struct vmlab_boot_info* info);

/* Page-table writes may be queued and sent as one mmu_update batch; a read
 * of a queued entry must come after pv_flush_page_table_batch(). */
void pv_queue_pte(uint64_t* entry, uint64_t value);
void pv_flush_page_table_batch(void);

#endif /* VMLAB_GUEST_PV_OPS_H */
