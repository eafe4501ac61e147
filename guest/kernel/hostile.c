/* A hostile guest. Under --cpu full this kernel runs at CPL3 beside a monitor
 * whose GDT, IDT, TSS and CPL0 stubs sit in guest-physical memory outside RAM
 * (0xd0000000) and at virtual PML4 slot 511 (VMLAB_MONITOR_VIRTUAL_BASE),
 * supervisor-only. Each attempt below goes after that region or after
 * privileged state and must end in a fault the kernel catches (expect_fault.h)
 * and reports, after which the next attempt runs:
 *
 *   VMLAB-HOSTILE <name> fault vector=<n> error=0x<hex>
 *   VMLAB-HOSTILE <name> ok | value=0x<hex>     (the attempt did not fault)
 *
 * The page-table attempt (e) must not fault; where its check fails the line
 * says `wrong entry=0x<hex>` or `stale value=0x<hex>`.
 *
 * Natively (QEMU, --cpu hvm) the monitor region is simply not there: the
 * virtual addresses are unmapped and guest-physical 0xd0000000 is unbacked.
 * The kernel accepts either outcome where the two machines differ; the host's
 * tests hold each mode to its own expectation. */
#include "hostile.h"

#include <stddef.h>

#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "expect_fault.h"
#include "memory.h"
#include "task.h"
#include "user_abi.h"
#include "vmlab/hypercall.h"

/* vmlab's monitor region in guest-physical memory (modes/full,
 * monitor_region.hpp): its first page is the real GDT, whose descriptor 0x08
 * is the monitor's own CPL0 code segment. */
#define MONITOR_PHYSICAL_BASE 0xd0000000ull
#define MONITOR_CODE_DESCRIPTOR 0x08ull

/* Kernel virtual addresses for the attempts' own mappings, in PML4 slot 2,
 * which the kernel leaves unused (slot 0: its image, slot 1: the physical
 * map). The alias of the page table lies in another 2 MiB region than the
 * page that table maps, so it is another page table's entry. */
#define SCRATCH_BASE 0x0000010000000000ull
#define SCRATCH_MONITOR_FRAME SCRATCH_BASE
#define SCRATCH_DATA (SCRATCH_BASE + PAGE_SIZE)
#define SCRATCH_TABLE_ALIAS (SCRATCH_BASE + LARGE_PAGE_SIZE)

/* A GDT whose descriptors from 0x10 on lie in the monitor region, while
 * descriptor 0x08 lies in the last page below it (PML4 slot 510), which the
 * kernel maps. Delivering any exception reads the handler's code descriptor
 * from the GDT (Intel SDM vol. 2A, INT n, IA-32e mode: "Read code segment
 * descriptor"), so a GDT wholly inside the region would turn the fault into a
 * double and then a triple fault on every machine; this one lets the kernel
 * take the fault and put its own GDT back. */
#define STRADDLING_GDT_BASE (VMLAB_MONITOR_VIRTUAL_BASE - 2 * 8)
#define STRADDLING_GDT_PAGE (VMLAB_MONITOR_VIRTUAL_BASE - PAGE_SIZE)

#define PAGE_TABLE_ENTRY_FLAGS (PTE_PRESENT | PTE_WRITABLE)
/* Set by the CPU in a page-table entry it uses (Intel SDM vol. 3A, 4.8). */
#define PTE_ACCESSED_DIRTY ((1ull << 5) | (1ull << 6))

#define VECTOR_GENERAL_PROTECTION 13
#define VECTOR_MASK(vector) (1ull << (vector))

/* What the scratch page holds before the remapping store, and after it. */
#define OLD_DATA_PATTERN 0x686f7374696c6531ull
#define NEW_DATA_PATTERN 0x686f7374696c6532ull

/* cpu.c and entry.S: the kernel's own GDT pointer, and the routine that
 * loads a GDT and reloads every segment register, CS included. The layout is
 * the pseudo-descriptor of lgdt (Intel SDM vol. 2A, LGDT). */
struct descriptor_table_pointer {
  uint16_t limit;
  uint64_t base;
} __attribute__((packed));
extern const struct descriptor_table_pointer gdt_pointer;
void gdt_load(const struct descriptor_table_pointer* pointer);

static uint64_t attempts_as_expected;

/* One instruction each, so that the access that faults is exactly this one. */
static inline uint64_t load_quadword(uint64_t address) {
  uint64_t value;
  __asm__ volatile("movq (%1), %0" : "=r"(value) : "r"(address) : "memory");
  return value;
}

static inline void store_quadword(uint64_t address, uint64_t value) {
  __asm__ volatile("movq %1, (%0)" : : "r"(address), "r"(value) : "memory");
}

static inline void invalidate_page(uint64_t address) {
  __asm__ volatile("invlpg (%0)" : : "r"(address) : "memory");
}

static uint64_t virtual_to_physical_map(const void* pointer) {
  return (uint64_t)(uintptr_t)pointer - (uint64_t)(uintptr_t)physical_to_virtual(0);
}

/* A 4 KiB kernel mapping, supervisor and writable. A not-present entry is
 * never cached, so making it present needs no invalidation (Intel SDM vol.
 * 3A, 4.10.4.3); invlpg anyway, so a monitor sees the change the way it sees
 * an ordinary kernel's. Returns the entry, or NULL when RAM runs out. */
static uint64_t* map_page(uint64_t virtual_address, uint64_t physical_address) {
  uint64_t* entry =
      page_table_entry(kernel_page_table_root(), virtual_address, 1, true, PAGE_TABLE_ENTRY_FLAGS);
  if (entry == NULL) return NULL;
  *entry = physical_address | PAGE_TABLE_ENTRY_FLAGS;
  invalidate_page(virtual_address);
  return entry;
}

static void unmap_page(uint64_t* entry, uint64_t virtual_address) {
  *entry = 0;
  invalidate_page(virtual_address);
}

/* Prints the attempt's line and counts it if it ended as accepted: in a fault
 * whose vector is in accepted_vectors, or without one if may_complete. value
 * (may be NULL) is what a read that did not fault returned. */
static void report(const char* name, bool faulted, const struct fault_record* fault,
                   uint64_t accepted_vectors, bool may_complete, const uint64_t* value) {
  bool expected;
  if (faulted) {
    debug_console_print("VMLAB-HOSTILE %s fault vector=%lu error=0x%lx\n", name, fault->vector,
                        fault->error_code);
    console_print("hostile: %s: vector %lu error 0x%lx rip 0x%lx address 0x%lx\n", name,
                  fault->vector, fault->error_code, fault->rip, fault->address);
    expected = fault->vector < 64 && (accepted_vectors & VECTOR_MASK(fault->vector)) != 0;
  } else {
    if (value != NULL) {
      debug_console_print("VMLAB-HOSTILE %s value=0x%lx\n", name, *value);
    } else {
      debug_console_print("VMLAB-HOSTILE %s ok\n", name);
    }
    expected = may_complete;
  }
  if (expected) ++attempts_as_expected;
}

/* ---- Kernel-mode attempts ------------------------------------------------- */

struct quadword_access {
  uint64_t address;
  uint64_t value;
};

static void read_attempt(void* argument) {
  struct quadword_access* access = argument;
  access->value = load_quadword(access->address);
}

static void write_attempt(void* argument) {
  const struct quadword_access* access = argument;
  store_quadword(access->address, access->value);
}

/* a. A store over the monitor's GDT through its own virtual address. The
 * kernel's tables do not map slot 511, and a monitor never lets a guest
 * mapping there reach its shadow tables: #PF, not present. */
static void attempt_monitor_write(void) {
  struct quadword_access access = {VMLAB_MONITOR_VIRTUAL_BASE, ~0ull};
  struct fault_record fault;
  bool faulted = expect_fault(write_attempt, &access, &fault);
  report("monitor-write", faulted, &fault, VECTOR_MASK(VECTOR_PAGE_FAULT), false, NULL);
}

/* b. The monitor's frames mapped by the kernel's own page table. A monitor
 * that shadows only guest RAM refuses the frame and reflects #PF; natively
 * the address is unbacked, so the read returns what the bus floats and the
 * write goes nowhere. */
static bool attempt_monitor_frame(void) {
  uint64_t* entry = map_page(SCRATCH_MONITOR_FRAME, MONITOR_PHYSICAL_BASE);
  if (entry == NULL) return false;
  struct quadword_access access = {SCRATCH_MONITOR_FRAME + MONITOR_CODE_DESCRIPTOR, 0};
  struct fault_record fault;
  bool faulted = expect_fault(read_attempt, &access, &fault);
  report("monitor-frame-read", faulted, &fault, VECTOR_MASK(VECTOR_PAGE_FAULT), true,
         &access.value);
  /* Zero over the monitor's code descriptor: the next trap would die. */
  access.value = 0;
  faulted = expect_fault(write_attempt, &access, &fault);
  report("monitor-frame-write", faulted, &fault, VECTOR_MASK(VECTOR_PAGE_FAULT), true, NULL);
  unmap_page(entry, SCRATCH_MONITOR_FRAME);
  return true;
}

/* c. A call into the monitor's CPL0 entry stubs: an instruction fetch from a
 * supervisor page, or from nothing at all. */
static void call_monitor_stubs(void* argument) {
  (void)argument;
  /* Everything the call could change if it ever returned is declared. */
  __asm__ volatile("call *%0"
                   :
                   : "r"(VMLAB_MONITOR_STUBS)
                   : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "cc", "memory");
}

static void attempt_monitor_jump(void) {
  struct fault_record fault;
  bool faulted = expect_fault(call_monitor_stubs, NULL, &fault);
  report("monitor-jump", faulted, &fault, VECTOR_MASK(VECTOR_PAGE_FAULT), false, NULL);
}

/* d. lgdt of a table that reaches into the monitor region, then a data
 * segment load through it: the descriptor read at the region faults (#PF;
 * #GP if a monitor rejected the selector first). lgdt itself only loads
 * GDTR. Afterwards the kernel's own GDT and segments are reloaded. */
static void load_straddling_gdt(void* argument) {
  const struct descriptor_table_pointer* table = argument;
  __asm__ volatile(
      "lgdt %0\n\t"
      "mov %1, %%ds"
      :
      : "m"(*table), "r"((uint32_t)SELECTOR_KERNEL_DATA)
      : "memory");
}

static bool attempt_monitor_gdt(void) {
  uint64_t frame = frame_allocate();
  if (frame == 0) return false;
  /* The null descriptor and the kernel's code descriptor, at the last two
   * quadwords of the page below the region. */
  const uint64_t* kernel_gdt = (const uint64_t*)(uintptr_t)gdt_pointer.base;
  uint64_t* page = physical_to_virtual(frame);
  page[PAGE_SIZE / 8 - 2] = kernel_gdt[0];
  page[PAGE_SIZE / 8 - 1] = kernel_gdt[SELECTOR_KERNEL_CODE / 8];
  uint64_t* entry = map_page(STRADDLING_GDT_PAGE, frame);
  if (entry == NULL) return false;

  struct descriptor_table_pointer straddling = {gdt_pointer.limit, STRADDLING_GDT_BASE};
  struct fault_record fault;
  bool faulted = expect_fault(load_straddling_gdt, &straddling, &fault);
  gdt_load(&gdt_pointer);
  unmap_page(entry, STRADDLING_GDT_PAGE);
  report("monitor-gdt", faulted, &fault,
         VECTOR_MASK(VECTOR_PAGE_FAULT) | VECTOR_MASK(VECTOR_GENERAL_PROTECTION), false, NULL);
  return true;
}

/* e. A second, writable mapping of one of the kernel's page tables, and a
 * store through it that remaps a present page. Page tables are ordinary
 * memory to the CPU, so natively the store simply changes the entry; a
 * shadowing monitor keeps page-table frames write-protected and must emulate
 * the store with the same effect (DESIGN.md 4). Neither step faults:
 *
 *   page-table-alias: the entry, read through the kernel's usual mapping (the
 *     physical map), holds what was stored through the alias;
 *   page-table-remap: after invlpg, the page reads from the new frame, so no
 *     stale translation of the old one survived (Intel SDM vol. 3A, 4.10.4.1:
 *     invlpg drops the old translation of a changed present entry). */
static bool attempt_page_table_alias(void) {
  uint64_t old_frame = frame_allocate();
  uint64_t new_frame = frame_allocate();
  if (old_frame == 0 || new_frame == 0) return false;
  *(uint64_t*)physical_to_virtual(old_frame) = OLD_DATA_PATTERN;
  *(uint64_t*)physical_to_virtual(new_frame) = NEW_DATA_PATTERN;
  uint64_t* data_entry = map_page(SCRATCH_DATA, old_frame);
  if (data_entry == NULL) return false;
  /* Use the mapping first, so that a monitor is shadowing this page table
   * (and write-protecting it) when the alias appears, and the old
   * translation is live. */
  if (load_quadword(SCRATCH_DATA) != OLD_DATA_PATTERN) {
    console_print("hostile: page-table-alias: the scratch page does not read back\n");
  }
  uint64_t table = virtual_to_physical_map(data_entry) & ~(PAGE_SIZE - 1);
  uint64_t* alias_entry = map_page(SCRATCH_TABLE_ALIAS, table);
  if (alias_entry == NULL) return false;

  const uint64_t new_entry = new_frame | PAGE_TABLE_ENTRY_FLAGS;
  struct quadword_access store = {
      SCRATCH_TABLE_ALIAS + ((SCRATCH_DATA >> 12) & 511) * 8,
      new_entry,
  };
  struct fault_record fault;
  bool faulted = expect_fault(write_attempt, &store, &fault);
  /* Nothing has used the new entry yet, but A and D are the CPU's to set. */
  uint64_t entry_seen = *(volatile uint64_t*)data_entry & ~PTE_ACCESSED_DIRTY;
  if (faulted || entry_seen == new_entry) {
    report("page-table-alias", faulted, &fault, 0, true, NULL);
  } else {
    debug_console_print("VMLAB-HOSTILE page-table-alias wrong entry=0x%lx\n", entry_seen);
  }

  invalidate_page(SCRATCH_DATA);
  struct quadword_access read = {SCRATCH_DATA, 0};
  faulted = expect_fault(read_attempt, &read, &fault);
  if (faulted || read.value == NEW_DATA_PATTERN) {
    report("page-table-remap", faulted, &fault, 0, true, NULL);
  } else {
    debug_console_print("VMLAB-HOSTILE page-table-remap stale value=0x%lx\n", read.value);
  }
  unmap_page(alias_entry, SCRATCH_TABLE_ALIAS);
  unmap_page(data_entry, SCRATCH_DATA);
  return true;
}

/* ---- User-mode attempts ----------------------------------------------------- */

struct user_attempt {
  const char* name;
  uint64_t which; /* VMLAB_USER_PRIVILEGED_* */
  uint64_t vector;
};

static const struct user_attempt user_attempts[] = {
    {"user-cli", VMLAB_USER_PRIVILEGED_CLI, VECTOR_GENERAL_PROTECTION},
    {"user-hlt", VMLAB_USER_PRIVILEGED_HLT, VECTOR_GENERAL_PROTECTION},
    {"user-mov-cr3", VMLAB_USER_PRIVILEGED_MOV_CR3, VECTOR_GENERAL_PROTECTION},
    {"user-out", VMLAB_USER_PRIVILEGED_OUT, VECTOR_GENERAL_PROTECTION},
    {"user-lgdt", VMLAB_USER_PRIVILEGED_LGDT, VECTOR_GENERAL_PROTECTION},
    {"user-wrmsr", VMLAB_USER_PRIVILEGED_WRMSR, VECTOR_GENERAL_PROTECTION},
    {"user-invlpg", VMLAB_USER_PRIVILEGED_INVLPG, VECTOR_GENERAL_PROTECTION},
    {"user-kernel-write", VMLAB_USER_PRIVILEGED_KERNEL_WRITE, VECTOR_PAGE_FAULT},
    {"user-monitor-jump", VMLAB_USER_PRIVILEGED_MONITOR_JUMP, VECTOR_PAGE_FAULT},
};
_Static_assert(sizeof user_attempts / sizeof user_attempts[0] == VMLAB_USER_PRIVILEGED_COUNT,
               "one user attempt per VMLAB_USER_PRIVILEGED_*");

/* Each attempt is a fresh run of the user program that must end in a fault
 * (status segfault for the task, which the kernel survives). */
static void run_user_attempts(void) {
  for (size_t index = 0; index < VMLAB_USER_PRIVILEGED_COUNT; ++index) {
    const struct user_attempt* attempt = &user_attempts[index];
    struct task_report task;
    task_run(VMLAB_USER_WORKLOAD_PRIVILEGED, attempt->which, &task);
    struct fault_record fault = {
        .vector = task.fault_vector,
        .error_code = task.fault_error_code,
        .address = task.fault_address,
        .rip = task.fault_rip,
    };
    report(attempt->name, task.outcome == TASK_OUTCOME_SEGFAULT, &fault,
           VECTOR_MASK(attempt->vector), false, NULL);
  }
}

/* ---- Paravirtual attempts ------------------------------------------------ */

/* A paravirtualized kernel attacks the monitor through the interface it has:
 * hypercalls with forbidden requests, unknown numbers and garbage pointers.
 * Each must come back as an error code; the VMM must not fall over:
 *
 *   VMLAB-HOSTILE <name> result=<signed result>
 */
static void report_result(const char* name, int64_t result, int64_t expected) {
  debug_console_print("VMLAB-HOSTILE %s result=%ld\n", name, result);
  if (result == expected) {
    ++attempts_as_expected;
  } else {
    console_print("hostile: %s: result %ld, expected %ld\n", name, result, expected);
  }
}

/* One mmu_update request; its own result (not the count). */
static int64_t update_entry(uint64_t pointer, uint64_t value) {
  struct vmlab_mmu_update request = {pointer, value, 0};
  int64_t done = hypercall(VMLAB_HYPERCALL_MMU_UPDATE, (uint64_t)(uintptr_t)&request, 1, 0, 0);
  return done == 1 ? VMLAB_OK : request.result;
}

static void direct_table_write(void* argument) {
  volatile uint64_t* entry = argument;
  *entry = *entry; /* through the physical map, which maps tables read-only */
}

static void raw_cr3_write(void* argument) {
  (void)argument;
  native_write_cr3(kernel_page_table_root());
}

static bool run_paravirtual_attempts(void) {
  const uint64_t root = kernel_page_table_root();
  /* A scratch page table: the entry for SCRATCH_DATA, created legitimately. */
  uint64_t* scratch = page_table_entry(root, SCRATCH_DATA, 1, true, PAGE_TABLE_ENTRY_FLAGS);
  if (scratch == NULL) return false;
  const uint64_t scratch_pointer = memory_virtual_to_physical(scratch);
  const uint64_t user = kernel_mapping_flags();

  report_result(
      "pv-map-monitor",
      update_entry(scratch_pointer, MONITOR_PHYSICAL_BASE | PAGE_TABLE_ENTRY_FLAGS | user),
      VMLAB_EPERM);
  report_result("pv-writable-table",
                update_entry(scratch_pointer, root | PAGE_TABLE_ENTRY_FLAGS | user), VMLAB_EPERM);
  report_result("pv-map-past-ram",
                update_entry(scratch_pointer, 0x40000000000ull | PAGE_TABLE_ENTRY_FLAGS | user),
                VMLAB_EFAULT);
  /* A frame of the kernel image, mapped writable, offered as a page table. */
  uint64_t* directory =
      page_table_entry(root, SCRATCH_TABLE_ALIAS, 2, true, PAGE_TABLE_ENTRY_FLAGS);
  if (directory == NULL) return false;
  report_result(
      "pv-writable-frame-as-table",
      update_entry(memory_virtual_to_physical(directory),
                   (memory_virtual_to_physical(&attempts_as_expected) & PTE_ADDRESS_MASK) |
                       PAGE_TABLE_ENTRY_FLAGS | user),
      VMLAB_EPERM);
  report_result("pv-monitor-slot", update_entry(root + 511 * 8, 0), VMLAB_EPERM);
  report_result("pv-pointer-past-ram", update_entry(0x40000000000ull, 0), VMLAB_EFAULT);
  report_result("pv-misaligned-pointer", update_entry(scratch_pointer + 3, 0), VMLAB_EINVAL);
  report_result("pv-unknown-hypercall", hypercall(VMLAB_HYPERCALL_COUNT, 0, 0, 0, 0), VMLAB_ENOSYS);
  report_result("pv-unknown-hypercall-high", hypercall(~0ull, 1, 2, 3, 4), VMLAB_ENOSYS);
  report_result("pv-trap-table-garbage",
                hypercall(VMLAB_HYPERCALL_SET_TRAP_TABLE, 0x00000dead0000000ull, 4, 0, 0),
                VMLAB_EFAULT);
  report_result("pv-batch-in-monitor",
                hypercall(VMLAB_HYPERCALL_MMU_UPDATE, VMLAB_MONITOR_VIRTUAL_BASE, 1, 0, 0),
                VMLAB_EFAULT);
  report_result(
      "pv-console-noncanonical",
      hypercall(VMLAB_HYPERCALL_CONSOLE_IO, VMLAB_CONSOLE_WRITE, 16, 0x8000000000000000ull, 0),
      VMLAB_EFAULT);
  report_result(
      "pv-port-string-garbage",
      hypercall(VMLAB_HYPERCALL_PORT_IO, 0xe9, 1 | VMLAB_PORT_STRING, 0x00000dead0000000ull, 8),
      VMLAB_EFAULT);
  report_result("pv-huge-batch", hypercall(VMLAB_HYPERCALL_MMU_UPDATE, 0, 1ull << 40, 0, 0),
                VMLAB_EINVAL);
  report_result(
      "pv-baseptr-garbage",
      hypercall(VMLAB_HYPERCALL_NEW_BASEPTR, 0x40000000000ull, VMLAB_BASEPTR_KERNEL, 0, 0),
      VMLAB_EFAULT);
  report_result("pv-baseptr-kind", hypercall(VMLAB_HYPERCALL_NEW_BASEPTR, root, 7, 0, 0),
                VMLAB_EINVAL);
  struct vmlab_multicall nested = {VMLAB_HYPERCALL_MULTICALL, {0, 1, 0, 0, 0}, 0};
  hypercall(VMLAB_HYPERCALL_MULTICALL, (uint64_t)(uintptr_t)&nested, 1, 0, 0);
  report_result("pv-nested-multicall", nested.result, VMLAB_EINVAL);

  /* The kernel's own instructions still cannot do what hypercalls refuse. */
  struct fault_record fault;
  bool faulted = expect_fault(direct_table_write, scratch, &fault);
  report("pv-direct-table-write", faulted, &fault, VECTOR_MASK(VECTOR_PAGE_FAULT), false, NULL);
  faulted = expect_fault(raw_cr3_write, NULL, &fault);
  report("pv-raw-cr3-write", faulted, &fault, VECTOR_MASK(VECTOR_GENERAL_PROTECTION), false, NULL);
  return true;
}

bool run_hostile(uint64_t* as_expected) {
  attempts_as_expected = 0;
  *as_expected = 0;
  if (!task_create()) return false;
  if (pv_ops.paravirtual) {
    /* The attempts below that write page tables directly or load a GDT make
     * no sense for a kernel whose tables are read-only and whose GDT is a
     * hypercall; these replace them. */
    attempt_monitor_write();
    attempt_monitor_jump();
    if (!run_paravirtual_attempts()) goto out_of_memory;
    run_user_attempts();
    *as_expected = attempts_as_expected;
    return true;
  }
  attempt_monitor_write();
  if (!attempt_monitor_frame()) goto out_of_memory;
  attempt_monitor_jump();
  if (!attempt_monitor_gdt()) goto out_of_memory;
  if (!attempt_page_table_alias()) goto out_of_memory;
  run_user_attempts();
  *as_expected = attempts_as_expected;
  return true;

out_of_memory:
  console_print("vmlab: out of memory while setting up the hostile attempts\n");
  return false;
}
