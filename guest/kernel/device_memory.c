#include "device_memory.h"

#include <stddef.h>

#include "memory.h"

/* Page-level cache disable and write-through (Intel SDM vol. 3A, 4.9.2): with
 * the power-on PAT both set select entry 3, UC (11.12.3). Device registers
 * must be neither cached nor combined. */
#define PTE_WRITE_THROUGH (1ull << 3)
#define PTE_CACHE_DISABLE (1ull << 4)

/* Plus kernel_mapping_flags(): the user bit when the kernel itself runs
 * deprivileged, whose user programs then run on a root without this slot. */
#define DEVICE_PAGE_FLAGS (PTE_PRESENT | PTE_WRITABLE | PTE_WRITE_THROUGH | PTE_CACHE_DISABLE)
#define DEVICE_TABLE_FLAGS (PTE_PRESENT | PTE_WRITABLE)

/* The next unused virtual address in the window: a bump allocator, like the
 * frame allocator, since a run never unmaps a device. */
static uint64_t next_virtual = DEVICE_MEMORY_BASE;

volatile void* device_memory_map(uint64_t physical, uint64_t size) {
  uint64_t first_page = physical & ~(PAGE_SIZE - 1);
  uint64_t end = physical + size;
  if (size == 0 || end < physical || end > PTE_ADDRESS_MASK) return NULL;
  uint64_t last_page_end = (end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  uint64_t length = last_page_end - first_page;
  if (length > DEVICE_MEMORY_BASE + DEVICE_MEMORY_SIZE - next_virtual) return NULL;

  uint64_t virtual_base = next_virtual;
  for (uint64_t offset = 0; offset < length; offset += PAGE_SIZE) {
    uint64_t* entry = page_table_entry(kernel_page_table_root(), virtual_base + offset, 1, true,
                                       DEVICE_TABLE_FLAGS);
    if (entry == NULL) return NULL;
    /* The entry was not present, so no TLB holds it: making it present
     * needs no invalidation (Intel SDM vol. 3A, 4.10.4.3). */
    page_table_set(entry, (first_page + offset) | DEVICE_PAGE_FLAGS | kernel_mapping_flags());
  }
  next_virtual += length;
  return (volatile void*)(uintptr_t)(virtual_base + (physical - first_page));
}
