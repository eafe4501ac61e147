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

static uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

static uint64_t align_down(uint64_t value, uint64_t alignment) {
  return value & ~(alignment - 1);
}

void* physical_to_virtual(uint64_t physical_address) {
  return (void*)(uintptr_t)(physical_address + physical_map_offset);
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
      uint64_t frame = frame_allocate();
      if (frame == 0) return NULL;
      *entry = frame | table_flags;
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

static bool map_kernel(void) {
  for (uint64_t address = image_start; address < image_end; address += PAGE_SIZE) {
    uint64_t* entry = page_table_entry(kernel_root, address, 1, true, KERNEL_TABLE_FLAGS);
    if (entry == NULL) return false;
    *entry = address | PTE_PRESENT | PTE_WRITABLE;
  }
  for (unsigned index = 0; index < range_count; ++index) {
    uint64_t end = align_up(ranges[index].end, LARGE_PAGE_SIZE);
    for (uint64_t chunk = align_down(ranges[index].start, LARGE_PAGE_SIZE); chunk < end;
         chunk += LARGE_PAGE_SIZE) {
      uint64_t* entry =
          page_table_entry(kernel_root, PHYSICAL_MAP_BASE + chunk, 2, true, KERNEL_TABLE_FLAGS);
      if (entry == NULL) return false;
      *entry = chunk | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE_PAGE;
    }
  }
  return true;
}

bool memory_init(void) {
  image_start = align_down((uint64_t)(uintptr_t)kernel_image_start, PAGE_SIZE);
  image_end = align_up((uint64_t)(uintptr_t)kernel_image_end, PAGE_SIZE);
  collect_ram();
  if (range_count == 0) {
    problem = "the memory map has no RAM above 1 MiB";
    return false;
  }
  kernel_root = frame_allocate();
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
