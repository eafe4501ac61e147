/* Physical frames and page tables.
 *
 * Frames come from a bump allocator over the RAM regions of the memory map
 * (above 1 MiB, skipping the kernel image); nothing is ever freed, a run is one
 * workload. The kernel's address space maps its own image identity (4 KiB
 * pages, as linked) and all RAM at PHYSICAL_MAP_BASE (2 MiB pages), so the
 * kernel reaches any frame without depending on where user mappings are. */
#ifndef VMLAB_GUEST_MEMORY_H
#define VMLAB_GUEST_MEMORY_H

#include <stdbool.h>
#include <stdint.h>

#define PAGE_SIZE 0x1000ull
#define LARGE_PAGE_SIZE 0x200000ull

/* Page-table entry bits (Intel SDM vol. 3A, 4.5 "4-Level Paging"). */
#define PTE_PRESENT (1ull << 0)
#define PTE_WRITABLE (1ull << 1)
#define PTE_USER (1ull << 2)
#define PTE_LARGE_PAGE (1ull << 7)
#define PTE_ADDRESS_MASK 0x000ffffffffff000ull

/* Page-fault error code bit 0: the fault was a protection violation on a
 * present page, not a missing one (Intel SDM vol. 3A, 4.7). */
#define PAGE_FAULT_PRESENT (1ull << 0)

/* PML4 slot 1: low in the canonical lower half, clear of the user layout
 * (slot 0) and of any monitor region a VMM places high. */
#define PHYSICAL_MAP_BASE 0x0000008000000000ull
#define PHYSICAL_MAP_SIZE 0x0000008000000000ull /* one PML4 slot: 512 GiB */

/* PML4 slot 3: kernel pages that are written and executed (code the kernel
 * generates or patches at run time: the kernel-smc workload) or whose
 * mapping changes at run time (the pte-update workload). Clear of the
 * user layout (slot 0), the physical map (slot 1), the device windows (slot
 * 2, device_memory.h) and a monitor in slot 511; the user task's root does
 * not copy it (task.c). */
#define KERNEL_CODE_BASE 0x0000018000000000ull
#define KERNEL_CODE_SIZE 0x0000008000000000ull /* one PML4 slot: 512 GiB */

/* Builds the allocator and the kernel page tables and switches to them.
 * Returns false (with memory_problem() set) if RAM is missing or too small. */
bool memory_init(void);
const char* memory_problem(void);

/* A zeroed 4 KiB frame, or 0 when RAM is exhausted. */
uint64_t frame_allocate(void);
/* A zeroed frame for a page table (from the table pool when paravirtualized). */
uint64_t table_frame_allocate(void);
/* PTE_USER for the kernel's own mappings when it runs deprivileged, else 0. */
uint64_t kernel_mapping_flags(void);
uint64_t memory_virtual_to_physical(const void* address);
uint64_t frames_free(void);

void* physical_to_virtual(uint64_t physical_address);

/* A fresh zeroed frame mapped at the next page of the code area (4 KiB,
 * writable and executable, in the kernel's address space only); its frame
 * goes to *frame, so a caller can also reach it through the physical map.
 * NULL when RAM or the area runs out. Pages are never unmapped. */
void* memory_map_code_page(uint64_t* frame);

/* The next page of the code area, mapped read-only to `frame` (which the
 * caller owns), in the kernel's address space only; *entry is its leaf
 * entry (reached through the physical map), for a caller that changes the
 * mapping with pv_ops.set_pte and pv_ops.flush_tlb_single. NULL when the
 * area or RAM for its tables runs out. */
void* memory_map_remappable_page(uint64_t frame, uint64_t** entry);

uint64_t kernel_page_table_root(void);

/* The entry that maps virtual_address at the given level (1 = page table,
 * 2 = page directory, 3 = PDPT, 4 = PML4) under root. Missing intermediate
 * tables are created with table_flags when create is set; returns NULL if one
 * is missing (or RAM runs out), or if a large page is in the way. */
uint64_t* page_table_entry(uint64_t root, uint64_t virtual_address, unsigned level, bool create,
                           uint64_t table_flags);

/* Every page-table entry the kernel changes goes through here, so a
 * paravirtualized kernel can turn the store into a validated hypercall. */
void page_table_set(uint64_t* entry, uint64_t value);

#endif /* VMLAB_GUEST_MEMORY_H */
