/* dma-attack: a guest that owns a DMA-capable device (the passthrough
 * controller) points it at memory outside its own RAM. Every target gets one
 * READ of one sector, the scratch sector disk-sector, so the device writes
 * 512 bytes at the target's I/O virtual address unless the IOMMU blocks
 * the transfer (VMLAB_PT_ERROR_DMA, with fault_address set).
 *
 *   control     a frame of the guest's own RAM        reached
 *   monitor     0xd0000000, the full/para monitor      blocked
 *   past-ram    the end of the highest RAM region      blocked
 *   reserved    0xf0000, in the reserved low 1 MiB     blocked (reached with --iommu off)
 *   page-table  the kernel's top-level page table      reached in hvm/full, blocked in para
 *
 * Each READ leaves the target as it was or holds known bytes: the scratch
 * sector first receives a marker pattern (the control frame and the low
 * MiB then get that), and before the page-table READ the page table's own
 * first 512 bytes are written to the scratch sector, so a READ that goes
 * through writes the same bytes back. */
#include "dma_attack.h"

#include "arch.h"
#include "boot.h"
#include "lib.h"
#include "memory.h"
#include "passthrough.h"
#include "vmlab/passthrough.h"

#define MARKER 0x414d4462616c6d76ull /* "vmlabDMA" little-endian */

/* Where the full and para monitor region sits (outside guest RAM). */
#define MONITOR_IOVA 0xd0000000ull
/* Inside the low 1 MiB the memory map reserves: no vmlab structure lives
 * there, and the VMM's IOMMU does not map it. */
#define RESERVED_IOVA 0xf0000ull

enum target {
  TARGET_CONTROL,
  TARGET_MONITOR,
  TARGET_PAST_RAM,
  TARGET_RESERVED,
  TARGET_PAGE_TABLE,
  TARGET_COUNT,
};

struct target_result {
  const char* name;
  uint64_t iova;
  uint16_t status;        /* enum vmlab_pt_completion_status */
  uint64_t fault_address; /* the register, after the command */
  const char* note;       /* what the read-back found, or "" */
};

static void fail(struct workload_outcome* outcome, const char* reason) {
  console_print("vmlab: dma-attack: %s\n", reason);
  outcome->status = RUN_STATUS_ERROR;
}

static const struct vmlab_device* find_passthrough(void) {
  const struct vmlab_boot_info* info = boot_info();
  for (uint32_t index = 0; index < info->device_count; ++index) {
    if (passthrough_probe(&info->devices[index])) return &info->devices[index];
  }
  return NULL;
}

/* The end of the highest RAM region of the boot memory map. */
static uint64_t ram_end(void) {
  const struct vmlab_boot_info* info = boot_info();
  uint64_t end = 0;
  for (uint32_t index = 0; index < info->mem_region_count; ++index) {
    const struct vmlab_mem_region* region = &info->mem_regions[index];
    if (region->type != VMLAB_MEM_RAM) continue;
    if (region->base + region->length > end) end = region->base + region->length;
  }
  return end;
}

/* Whether the kernel's physical map (memory.h) maps a physical address:
 * it maps RAM in 2 MiB pages, which may or may not take in the low MiB. */
static bool physical_map_covers(uint64_t physical) {
  uint64_t virtual_address = PHYSICAL_MAP_BASE + physical;
  const uint64_t* directory =
      page_table_entry(kernel_page_table_root(), virtual_address, 2, false, 0);
  if (directory == NULL || (*directory & PTE_PRESENT) == 0) return false;
  if ((*directory & PTE_LARGE_PAGE) != 0) return true;
  const uint64_t* table = page_table_entry(kernel_page_table_root(), virtual_address, 1, false, 0);
  return table != NULL && (*table & PTE_PRESENT) != 0;
}

/* One READ of the scratch sector to iova. False (with the driver's
 * problem) only if the device gave no completion at all. */
static bool attack(struct target_result* result, const char* name, uint64_t iova,
                   uint64_t scratch_sector) {
  *result = (struct target_result){.name = name, .iova = iova, .note = ""};
  if (!passthrough_execute(PASSTHROUGH_OPERATION_READ, scratch_sector, iova, 1, &result->status))
    return false;
  result->fault_address = passthrough_fault_address();
  return true;
}

static bool reached(const struct target_result* result) {
  return result->status == VMLAB_PT_OK;
}

/* The attack itself, the measured interval: one result per target, in
 * order. False with *reason set if a command got no completion, or a copy
 * the attack relies on failed. */
static bool run_targets(uint64_t scratch_sector, uint64_t control_frame, uint64_t pattern_frame,
                        uint64_t saved_frame, struct target_result results[TARGET_COUNT],
                        const char** reason) {
  static char message[224];
  *reason = message;
  const void* pattern = physical_to_virtual(pattern_frame);

  struct target_result* control = &results[TARGET_CONTROL];
  if (!attack(control, "control", control_frame, scratch_sector)) goto device_failed;
  if (reached(control)) {
    control->note = disk_sector_equal(physical_to_virtual(control_frame), pattern)
                        ? "the frame holds the scratch sector"
                        : "the frame does NOT hold the scratch sector";
  }
  if (!attack(&results[TARGET_MONITOR], "monitor", MONITOR_IOVA, scratch_sector) ||
      !attack(&results[TARGET_PAST_RAM], "past-ram", ram_end(), scratch_sector)) {
    goto device_failed;
  }

  struct target_result* reserved = &results[TARGET_RESERVED];
  if (!attack(reserved, "reserved", RESERVED_IOVA, scratch_sector)) goto device_failed;
  if (reached(reserved)) {
    if (!physical_map_covers(RESERVED_IOVA)) {
      reserved->note = "the physical map leaves out the low MiB: no read-back";
    } else {
      reserved->note = disk_sector_equal(physical_to_virtual(RESERVED_IOVA), pattern)
                           ? "read back through the physical map: the scratch sector"
                           : "read back through the physical map: NOT the scratch sector";
    }
  }

  /* The page table's own bytes to the scratch sector first (memory to
   * disk: the device only reads the table), so that a READ the IOMMU lets
   * through writes back what is already there. */
  uint64_t root = kernel_page_table_root();
  memcpy(physical_to_virtual(saved_frame), physical_to_virtual(root), DISK_SECTOR_SIZE);
  uint16_t copy_status;
  if (!passthrough_execute(PASSTHROUGH_OPERATION_WRITE, scratch_sector, root, 1, &copy_status))
    goto device_failed;
  if (copy_status != VMLAB_PT_OK) {
    format_to(message, sizeof message,
              "cannot copy the page table at 0x%lx to the scratch sector: status %s", root,
              passthrough_status_name(copy_status));
    return false;
  }
  struct target_result* page_table = &results[TARGET_PAGE_TABLE];
  if (!attack(page_table, "page-table", root, scratch_sector)) goto device_failed;
  if (reached(page_table)) {
    page_table->note =
        disk_sector_equal(physical_to_virtual(root), physical_to_virtual(saved_frame))
            ? "the device rewrote the table's first 512 bytes (with the same bytes)"
            : "the table's first 512 bytes CHANGED";
  }
  return true;

device_failed:
  format_to(message, sizeof message, "%s", passthrough_problem());
  return false;
}

static void report(const struct target_result* result) {
  const char* outcome = reached(result) ? "reached" : "blocked";
  debug_console_print("VMLAB-DMA target=%s iova=0x%lx status=%s outcome=%s fault=0x%lx\n",
                      result->name, result->iova, passthrough_status_name(result->status), outcome,
                      result->fault_address);
  if (reached(result)) {
    console_print("vmlab: dma-attack: %s 0x%lx reached: the device wrote 512 bytes there%s%s\n",
                  result->name, result->iova, result->note[0] != '\0' ? "; " : "", result->note);
  } else if (result->status == VMLAB_PT_ERROR_DMA) {
    console_print("vmlab: dma-attack: %s 0x%lx blocked by the IOMMU (fault at 0x%lx)\n",
                  result->name, result->iova, result->fault_address);
  } else {
    console_print("vmlab: dma-attack: %s 0x%lx refused by the device: status %s\n", result->name,
                  result->iova, passthrough_status_name(result->status));
  }
}

void run_dma_attack(const struct run_options* options, struct workload_outcome* outcome) {
  const struct vmlab_device* device = find_passthrough();
  if (device == NULL) {
    console_print(
        "vmlab: dma-attack needs the passthrough disk: run with --disk PATH --disk-model "
        "passthrough\n");
    outcome->status = RUN_STATUS_ERROR;
    return;
  }
  if (!passthrough_init(device, options->disk.completion)) {
    fail(outcome, passthrough_problem());
    return;
  }
  char message[224];
  uint64_t scratch_sector = options->disk.first_sector;
  if (scratch_sector >= passthrough_capacity()) {
    format_to(message, sizeof message,
              "the scratch sector disk-sector=%lu is past the end of the disk (%lu sectors)",
              scratch_sector, passthrough_capacity());
    fail(outcome, message);
    passthrough_finish();
    return;
  }
  uint64_t pattern_frame = frame_allocate();
  uint64_t control_frame = frame_allocate();
  uint64_t saved_frame = frame_allocate();
  if (pattern_frame == 0 || control_frame == 0 || saved_frame == 0) {
    fail(outcome, "no RAM for the attack's buffers: give the VM more memory");
    passthrough_finish();
    return;
  }
  console_print(
      "vmlab: dma-attack: passthrough disk at 0x%lx irq %u, scratch sector %lu, %lu "
      "DMA faults so far\n",
      device->base, device->irq, scratch_sector, passthrough_dma_faults());

  /* The scratch sector gets a pattern the targets that are reached should
   * then hold: the marker, with the sector number first. */
  uint64_t* pattern = physical_to_virtual(pattern_frame);
  fill_quadwords(pattern, MARKER, DISK_SECTOR_QUADWORDS);
  pattern[0] = scratch_sector;
  uint16_t status;
  if (!passthrough_execute(PASSTHROUGH_OPERATION_WRITE, scratch_sector, pattern_frame, 1,
                           &status)) {
    fail(outcome, passthrough_problem());
    passthrough_finish();
    return;
  }
  if (status != VMLAB_PT_OK) {
    format_to(message, sizeof message, "cannot write the scratch sector %lu: status %s",
              scratch_sector, passthrough_status_name(status));
    fail(outcome, message);
    passthrough_finish();
    return;
  }

  struct target_result results[TARGET_COUNT] = {0};
  const char* reason = NULL;
  uint64_t faults_before = passthrough_dma_faults();
  measurement_begin();
  bool completed =
      run_targets(scratch_sector, control_frame, pattern_frame, saved_frame, results, &reason);
  measurement_end();
  uint64_t faults = passthrough_dma_faults() - faults_before;
  passthrough_finish();
  outcome->cycles = measurement_cycles();
  if (!completed) {
    fail(outcome, reason);
    return;
  }

  uint64_t blocked = 0;
  for (unsigned index = 0; index < TARGET_COUNT; ++index) {
    report(&results[index]);
    if (!reached(&results[index])) ++blocked;
  }
  console_print("vmlab: dma-attack: %lu of %u targets blocked, %lu DMA faults\n", blocked,
                (unsigned)TARGET_COUNT, faults);
  outcome->check = blocked;

  /* Only the IOMMU's answer says anything: another failure of a command
   * (range, io, invalid) leaves the attack undecided. */
  for (unsigned index = 0; index < TARGET_COUNT; ++index) {
    const struct target_result* result = &results[index];
    if (result->status == VMLAB_PT_OK || result->status == VMLAB_PT_ERROR_DMA) continue;
    format_to(message, sizeof message,
              "the device failed the DMA to %s with status %s, not because of the IOMMU",
              result->name, passthrough_status_name(result->status));
    fail(outcome, message);
    return;
  }
  if (!reached(&results[TARGET_CONTROL])) {
    fail(outcome, "the DMA to the control frame (the guest's own RAM) was blocked");
  } else if (!disk_sector_equal(physical_to_virtual(control_frame), pattern)) {
    fail(outcome, "the DMA to the control frame reported ok but did not deliver the sector");
  } else if (reached(&results[TARGET_MONITOR])) {
    format_to(message, sizeof message,
              "the DMA to the monitor at 0x%lx was NOT blocked: the device wrote into it",
              results[TARGET_MONITOR].iova);
    fail(outcome, message);
  } else if (reached(&results[TARGET_PAST_RAM])) {
    format_to(message, sizeof message,
              "the DMA past the end of RAM at 0x%lx was NOT blocked: the device wrote there",
              results[TARGET_PAST_RAM].iova);
    fail(outcome, message);
  }
}
