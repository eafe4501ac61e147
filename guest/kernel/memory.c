#include "memory.h"

#include "arch.h"
#include "boot.h"
#include "lib.h"

/* linker.ld */
extern char kernel_image_start[];
extern char kernel_image_end[];

struct ram_range {
  uint64_t start;
  uint64_t end;
};

static struct ram_range ranges[VMLAB_MAX_MEM_REGIONS];
static unsigned range_count;
static unsigned current_range;
static uint64_t next_frame;
static uint64_t image_start;
static uint64_t image_end;

/* 0 while the boot identity map is live (the VMM's 4 GiB or the PVH
 * trampoline's 1 GiB); PHYSICAL_MAP_BASE once the kernel's tables are. */
static uint64_t physical_map_offset;
static uint64_t boot_map_limit = 0x40000000ull;
static uint64_t kernel_root;
static const char* problem;

/* Paravirtualized, page tables come from their own 2 MiB-aligned pool at the
 * top of RAM, which the physical map maps read-only: the monitor refuses a
 * writable mapping of a page-table page (abi/vmlab/hypercall.h), and
 * the kernel changes tables only through pv_ops.set_pte anyway. Natively
 * tables come from the ordinary allocator. */
#define TABLE_POOL_SIZE LARGE_PAGE_SIZE
static uint64_t table_pool_start;
static uint64_t table_pool_next;
static uint64_t table_pool_end;

static uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

static uint64_t align_down(uint64_t value, uint64_t alignment) {
  return value & ~(alignment - 1);
}

void* physical_to_virtual(uint64_t physical_address) {
  return (void*)(uintptr_t)(physical_address + physical_map_offset);
}

uint64_t memory_virtual_to_physical(const void* address) {
  uint64_t virtual_address = (uint64_t)(uintptr_t)address;
  if (physical_map_offset != 0 && virtual_address >= physical_map_offset &&
      virtual_address - physical_map_offset < PHYSICAL_MAP_SIZE) {
    return virtual_address - physical_map_offset;
  }
  return virtual_address; /* the kernel image and the boot map: identity */
}

/* A paravirtual kernel's own mappings carry the user bit: it runs at CPL3
 * (DESIGN.md 1); its user programs run on a separate root that does not map
 * the kernel (task.c). */
uint64_t kernel_mapping_flags(void) {
  return pv_ops.paravirtual ? PTE_USER : 0;
}

uint64_t table_frame_allocate(void) {
  if (!pv_ops.paravirtual) return frame_allocate();
  /* Fresh pool frames are zero: the VMM hands the guest zeroed RAM, and the
   * pool is never reused (and the monitor validates every entry of a table
   * when it starts to be one, whatever it holds). */
  if (table_pool_next >= table_pool_end) return 0;
  uint64_t frame = table_pool_next;
  table_pool_next += PAGE_SIZE;
  return frame;
}

/* The first whole frame at or above candidate inside range, skipping the
 * kernel image; returns range.end if none fits. */
static uint64_t first_frame_from(const struct ram_range* range, uint64_t candidate) {
  if (candidate < range->start) candidate = range->start;
  candidate = align_up(candidate, PAGE_SIZE);
  if (candidate < image_end && candidate + PAGE_SIZE > image_start) candidate = image_end;
  return candidate + PAGE_SIZE <= range->end ? candidate : range->end;
}

uint64_t frame_allocate(void) {
  while (current_range < range_count) {
    const struct ram_range* range = &ranges[current_range];
    uint64_t frame = first_frame_from(range, next_frame);
    if (frame < range->end) {
      if (frame + PAGE_SIZE > boot_map_limit) return 0;
      next_frame = frame + PAGE_SIZE;
      fill_quadwords(physical_to_virtual(frame), 0, PAGE_SIZE / 8);
      return frame;
    }
    ++current_range;
  }
  return 0;
}

uint64_t frames_free(void) {
  uint64_t count = 0;
  for (unsigned index = current_range; index < range_count; ++index) {
    const struct ram_range* range = &ranges[index];
    uint64_t start = first_frame_from(range, index == current_range ? next_frame : 0);
    uint64_t end = align_down(range->end, PAGE_SIZE);
    if (start >= end) continue;
    count += (end - start) / PAGE_SIZE;
    /* The kernel image can only lie after start if it lies wholly inside. */
    if (image_start >= start && image_end <= end) count -= (image_end - image_start) / PAGE_SIZE;
  }
  return count;
}

uint64_t* page_table_entry(uint64_t root, uint64_t virtual_address, unsigned level, bool create,
                           uint64_t table_flags) {
  uint64_t* table = physical_to_virtual(root);
  for (unsigned current = 4; current > level; --current) {
    uint64_t* entry = &table[(virtual_address >> (12 + 9 * (current - 1))) & 511];
    if ((*entry & PTE_PRESENT) == 0) {
      if (!create) return NULL;
      uint64_t frame = table_frame_allocate();
      if (frame == 0) return NULL;
      page_table_set(entry, frame | table_flags | kernel_mapping_flags());
    } else if ((*entry & PTE_LARGE_PAGE) != 0) {
      return NULL;
    }
    table = physical_to_virtual(*entry & PTE_ADDRESS_MASK);
  }
  return &table[(virtual_address >> (12 + 9 * (level - 1))) & 511];
}

static void collect_ram(void) {
  const struct vmlab_boot_info* info = boot_info();
  for (uint32_t index = 0; index < info->mem_region_count; ++index) {
    const struct vmlab_mem_region* region = &info->mem_regions[index];
    if (region->type != VMLAB_MEM_RAM || region->length == 0) continue;
    uint64_t start = region->base;
    uint64_t end = region->base + region->length;
    if (end < start) end = UINT64_MAX;
    if (start < VMLAB_BOOT_LOW_RESERVED) start = VMLAB_BOOT_LOW_RESERVED;
    if (end > PHYSICAL_MAP_SIZE) end = PHYSICAL_MAP_SIZE;
    if (end <= start) continue;
    /* Insertion sort by start: the allocator hands out low frames first,
     * which the boot identity map is sure to cover. */
    unsigned position = range_count++;
    while (position > 0 && ranges[position - 1].start > start) {
      ranges[position] = ranges[position - 1];
      --position;
    }
    ranges[position] = (struct ram_range){start, end};
  }
}

#define KERNEL_TABLE_FLAGS (PTE_PRESENT | PTE_WRITABLE)

/* Leaves are queued (one mmu_update batch when paravirtualized); the tables
 * page_table_entry creates on the way are written at once, because the walk
 * reads them back. */
static bool map_kernel(void) {
  const uint64_t user = kernel_mapping_flags();
  for (uint64_t address = image_start; address < image_end; address += PAGE_SIZE) {
    uint64_t* entry = page_table_entry(kernel_root, address, 1, true, KERNEL_TABLE_FLAGS);
    if (entry == NULL) return false;
    pv_queue_pte(entry, address | PTE_PRESENT | PTE_WRITABLE | user);
  }
  for (unsigned index = 0; index < range_count; ++index) {
    uint64_t end = align_up(ranges[index].end, LARGE_PAGE_SIZE);
    for (uint64_t chunk = align_down(ranges[index].start, LARGE_PAGE_SIZE); chunk < end;
         chunk += LARGE_PAGE_SIZE) {
      uint64_t* entry =
          page_table_entry(kernel_root, PHYSICAL_MAP_BASE + chunk, 2, true, KERNEL_TABLE_FLAGS);
      if (entry == NULL) return false;
      pv_queue_pte(entry, chunk | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE_PAGE | user);
    }
  }
  /* The table pool (taken off the RAM ranges): readable, never writable. */
  for (uint64_t chunk = table_pool_start; chunk < table_pool_end; chunk += LARGE_PAGE_SIZE) {
    uint64_t* entry =
        page_table_entry(kernel_root, PHYSICAL_MAP_BASE + chunk, 2, true, KERNEL_TABLE_FLAGS);
    if (entry == NULL) return false;
    pv_queue_pte(entry, chunk | PTE_PRESENT | PTE_LARGE_PAGE | user);
  }
  pv_flush_page_table_batch();
  return true;
}

/* The next unused page of the code area: a bump allocator, as for frames. */
static uint64_t next_code_page = KERNEL_CODE_BASE;

/* No entry on the way sets XD (bit 63), so the page is executable whether
 * or not IA32_EFER.NXE is set (Intel SDM vol. 3A, 4.6.1). The frame stays
 * in the physical map too, writable like all RAM there. */
void* memory_map_code_page(uint64_t* frame) {
  if (next_code_page >= KERNEL_CODE_BASE + KERNEL_CODE_SIZE) return NULL;
  uint64_t physical = frame_allocate();
  if (physical == 0) return NULL;
  uint64_t* entry = page_table_entry(kernel_root, next_code_page, 1, true, KERNEL_TABLE_FLAGS);
  if (entry == NULL) return NULL;
  /* The entry was not present, so no TLB holds it: making it present needs
   * no invalidation (Intel SDM vol. 3A, 4.10.4.3). */
  page_table_set(entry, physical | PTE_PRESENT | PTE_WRITABLE | kernel_mapping_flags());
  void* page = (void*)(uintptr_t)next_code_page;
  next_code_page += PAGE_SIZE;
  *frame = physical;
  return page;
}

void* memory_map_remappable_page(uint64_t frame, uint64_t** entry) {
  if (next_code_page >= KERNEL_CODE_BASE + KERNEL_CODE_SIZE) return NULL;
  uint64_t* leaf = page_table_entry(kernel_root, next_code_page, 1, true, KERNEL_TABLE_FLAGS);
  if (leaf == NULL) return NULL;
  /* Not present before, so nothing to invalidate (as above). */
  page_table_set(leaf, frame | PTE_PRESENT | kernel_mapping_flags());
  void* page = (void*)(uintptr_t)next_code_page;
  next_code_page += PAGE_SIZE;
  *entry = leaf;
  return page;
}

/* Takes the table pool off the top of the highest RAM range. */
static bool reserve_table_pool(void) {
  if (!pv_ops.paravirtual) return true;
  for (unsigned index = range_count; index-- > 0;) {
    struct ram_range* range = &ranges[index];
    uint64_t end = align_down(range->end, LARGE_PAGE_SIZE);
    if (end < TABLE_POOL_SIZE || end - TABLE_POOL_SIZE < range->start) continue;
    uint64_t start = end - TABLE_POOL_SIZE;
    if (start < image_end && end > image_start) continue;
    table_pool_start = table_pool_next = start;
    table_pool_end = end;
    range->end = start;
    return true;
  }
  return false;
}

bool memory_init(void) {
  image_start = align_down((uint64_t)(uintptr_t)kernel_image_start, PAGE_SIZE);
  image_end = align_up((uint64_t)(uintptr_t)kernel_image_end, PAGE_SIZE);
  collect_ram();
  if (range_count == 0) {
    problem = "the memory map has no RAM above 1 MiB";
    return false;
  }
  if (!reserve_table_pool()) {
    problem = "no 2 MiB-aligned RAM left for the page-table pool";
    return false;
  }
  kernel_root = table_frame_allocate();
  if (kernel_root == 0 || !map_kernel()) {
    problem = "too little RAM below 1 GiB for the kernel page tables";
    return false;
  }
  write_cr3(kernel_root);
  physical_map_offset = PHYSICAL_MAP_BASE;
  boot_map_limit = PHYSICAL_MAP_SIZE;
  return true;
}

const char* memory_problem(void) {
  return problem;
}

uint64_t kernel_page_table_root(void) {
  return kernel_root;
}

void page_table_set(uint64_t* entry, uint64_t value) {
  pv_ops.set_pte(entry, value);
}
