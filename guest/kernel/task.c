#include "task.h"

#include "arch.h"
#include "console.h"
#include "lib.h"
#include "memory.h"
#include "pit.h"
#include "result.h"
#include "user_abi.h"

/* user_image.S: the flat user program, linked at VMLAB_USER_IMAGE_BASE. */
extern const char user_image_start[];
extern const char user_image_end[];

/* entry.S */
uint64_t user_enter(uint64_t entry, uint64_t stack_top, uint64_t argument0, uint64_t argument1);
_Noreturn void user_return(uint64_t value);

#define USER_FLAGS (PTE_PRESENT | PTE_WRITABLE | PTE_USER)
#define USER_STACK_BOTTOM (VMLAB_USER_STACK_TOP - VMLAB_USER_STACK_PAGES * VMLAB_PAGE_SIZE)

static uint64_t user_root;
/* Paravirtualized only: the root the monitor runs user code on. The kernel
 * runs at CPL3 there, so its mappings carry the user bit (memory.c) and must
 * be absent from what user code runs on, as with Xen's separate user-mode
 * page tables. It shares the user page tables and maps nothing else. */
static uint64_t user_mode_root;
static uint64_t user_image_size;
static bool task_active;
static struct task_report* active_report;

/* The user-mode root points at the same page table for the 2 MiB around
 * virtual_address as the kernel's view of the task does. */
static bool mirror_user_directory(uint64_t virtual_address) {
  if (user_mode_root == 0) return true;
  uint64_t* source = page_table_entry(user_root, virtual_address, 2, false, 0);
  uint64_t* mirror = page_table_entry(user_mode_root, virtual_address, 2, true, USER_FLAGS);
  if (source == NULL || mirror == NULL) return false;
  /* The CPU sets the accessed bit in the entries it uses (Intel SDM vol. 3A,
   * 4.8): only a different table or different rights need an update. */
  const uint64_t accessed = 1ull << 5;
  if ((*mirror ^ *source) & ~accessed) page_table_set(mirror, *source);
  return true;
}

static bool map_user_page(uint64_t virtual_address, uint64_t* frame_out) {
  uint64_t* entry = page_table_entry(user_root, virtual_address, 1, true, USER_FLAGS);
  if (entry == NULL) return false;
  uint64_t frame = frame_allocate();
  if (frame == 0) return false;
  page_table_set(entry, frame | USER_FLAGS);
  if (!mirror_user_directory(virtual_address)) return false;
  if (frame_out != NULL) *frame_out = frame;
  return true;
}

bool task_create(void) {
  user_image_size = (uint64_t)(user_image_end - user_image_start);
  user_root = table_frame_allocate();
  if (user_root == 0) goto out_of_memory;
  if (pv_ops.paravirtual) {
    user_mode_root = table_frame_allocate();
    if (user_mode_root == 0) goto out_of_memory;
  }

  /* Kernel mappings, supervisor-only: the physical map shares the kernel's
   * PDPT; the kernel image shares the kernel's page table through the first
   * page-directory entry, which the user layout leaves free (it starts at
   * 4 MiB). The user's own PML4, PDPT and PD entries carry the user bit. */
  uint64_t* user_pml4 = physical_to_virtual(user_root);
  const uint64_t* kernel_pml4 = physical_to_virtual(kernel_page_table_root());
  unsigned physical_map_slot = (unsigned)(PHYSICAL_MAP_BASE >> 39) & 511;
  page_table_set(&user_pml4[physical_map_slot], kernel_pml4[physical_map_slot]);
  uint64_t* kernel_directory_entry =
      page_table_entry(kernel_page_table_root(), VMLAB_KERNEL_IMAGE_BASE, 2, false, 0);
  uint64_t* user_directory_entry =
      page_table_entry(user_root, VMLAB_KERNEL_IMAGE_BASE, 2, true, USER_FLAGS);
  if (kernel_directory_entry == NULL || user_directory_entry == NULL) goto out_of_memory;
  page_table_set(user_directory_entry, *kernel_directory_entry);

  for (uint64_t offset = 0; offset < user_image_size; offset += VMLAB_PAGE_SIZE) {
    uint64_t frame;
    if (!map_user_page(VMLAB_USER_IMAGE_BASE + offset, &frame)) goto out_of_memory;
    uint64_t remaining = user_image_size - offset;
    memcpy(physical_to_virtual(frame), user_image_start + offset,
           remaining < VMLAB_PAGE_SIZE ? remaining : VMLAB_PAGE_SIZE);
  }
  for (uint64_t address = USER_STACK_BOTTOM; address < VMLAB_USER_STACK_TOP;
       address += VMLAB_PAGE_SIZE) {
    if (!map_user_page(address, NULL)) goto out_of_memory;
  }
  return true;

out_of_memory:
  console_print("vmlab: out of memory while building the user task\n");
  return false;
}

void task_run(uint64_t workload, uint64_t count, struct task_report* report) {
  *report = (struct task_report){0};
  active_report = report;
  task_active = true;
  write_cr3(user_root);
  pv_ops.write_user_cr3(user_mode_root);
  user_enter(VMLAB_USER_IMAGE_BASE, VMLAB_USER_STACK_TOP, workload, count);
  write_cr3(kernel_page_table_root());
  pv_ops.write_user_cr3(0);
  task_active = false;
  active_report = NULL;
}

static bool inside(uint64_t start, uint64_t length, uint64_t region_start, uint64_t region_end) {
  return start >= region_start && start <= region_end && length <= region_end - start;
}

/* A buffer the kernel may read on the task's behalf: inside one user region.
 * Demand-region pages that are not mapped yet fault in the kernel and are
 * mapped like the task's own faults. */
static bool user_buffer_valid(uint64_t start, uint64_t length) {
  return inside(start, length, VMLAB_USER_IMAGE_BASE, VMLAB_USER_IMAGE_BASE + user_image_size) ||
         inside(start, length, USER_STACK_BOTTOM, VMLAB_USER_STACK_TOP) ||
         inside(start, length, VMLAB_USER_DEMAND_BASE,
                VMLAB_USER_DEMAND_BASE + VMLAB_USER_DEMAND_SIZE);
}

static uint64_t system_write(uint64_t buffer, uint64_t length) {
  if (!user_buffer_valid(buffer, length)) return (uint64_t)VMLAB_SYSCALL_UNKNOWN_RESULT;
  console_write((const char*)(uintptr_t)buffer, length);
  active_report->bytes_written += length;
  return length;
}

void syscall_dispatch(struct trap_frame* frame) {
  ++guest_counters.syscalls;
  switch (frame->rax) {
    case VMLAB_SYSCALL_EXIT:
      active_report->outcome = TASK_OUTCOME_EXITED;
      active_report->exit_status = frame->rdi;
      user_return(0);
    case VMLAB_SYSCALL_WRITE:
      frame->rax = system_write(frame->rdi, frame->rsi);
      break;
    case VMLAB_SYSCALL_TICKS:
      frame->rax = timer_ticks();
      break;
    case VMLAB_SYSCALL_NULL:
      frame->rax = 0;
      break;
    case VMLAB_SYSCALL_REPORT:
      active_report->reported = true;
      active_report->reported_cycles = frame->rdi;
      active_report->reported_check = frame->rsi;
      frame->rax = 0;
      break;
    default:
      frame->rax = (uint64_t)VMLAB_SYSCALL_UNKNOWN_RESULT;
      break;
  }
}

bool task_handle_page_fault(const struct trap_frame* frame, uint64_t fault_address) {
  if (!task_active || (frame->error_code & PAGE_FAULT_PRESENT) != 0) return false;
  if (fault_address < VMLAB_USER_DEMAND_BASE ||
      fault_address >= VMLAB_USER_DEMAND_BASE + VMLAB_USER_DEMAND_SIZE) {
    return false;
  }
  /* A not-present entry is never cached in the TLB, so making it present
   * needs no invalidation (Intel SDM vol. 3A, 4.10.4.3). */
  if (!map_user_page(fault_address & ~(VMLAB_PAGE_SIZE - 1), NULL)) {
    console_emergency_print("vmlab: out of memory for a demand page at 0x%lx\n", fault_address);
    return false;
  }
  ++guest_counters.pagefaults;
  return true;
}

_Noreturn void task_end_on_fault(const struct trap_frame* frame, uint64_t fault_address) {
  active_report->outcome = TASK_OUTCOME_SEGFAULT;
  active_report->fault_vector = frame->vector;
  active_report->fault_error_code = frame->error_code;
  active_report->fault_rip = frame->rip;
  active_report->fault_address = fault_address;
  user_return(0);
}
