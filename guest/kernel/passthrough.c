#include "passthrough.h"

#include <stddef.h>

#include "arch.h"
#include "device_memory.h"
#include "irq.h"
#include "lib.h"
#include "memory.h"
#include "pic.h"
#include "vmlab/passthrough.h"

_Static_assert(PASSTHROUGH_QUEUE_ENTRIES <= VMLAB_PT_MAX_QUEUE_ENTRIES &&
                   (PASSTHROUGH_QUEUE_ENTRIES & (PASSTHROUGH_QUEUE_ENTRIES - 1)) == 0,
               "the queue size is a power of two the device accepts");
_Static_assert(PASSTHROUGH_QUEUE_ENTRIES * sizeof(struct vmlab_pt_command) <= PAGE_SIZE,
               "the submission queue fits its frame");

/* Waiting gives up after this many TSC cycles (about 30 s at 2 GHz): the
 * device thread sleeps up to a millisecond between looks at the window. */
#define POLL_TIMEOUT_CYCLES (1ull << 36)
/* While polling the completion queue, read the TSC this often. */
#define POLLS_PER_CLOCK_CHECK 0x400u

/* The window is guest RAM the device thread reads and writes concurrently,
 * not trapped MMIO: every access goes through this volatile pointer, so each
 * field is one naturally aligned load or store (a 64-bit field one 8-byte
 * mov), in program order. */
static volatile struct vmlab_pt_registers* registers;
static uint64_t window_base; /* the window mapped, to map it once */
static uint32_t irq_line = VMLAB_NO_IRQ;
static enum disk_completion completion_mode = DISK_COMPLETION_POLLED;
static uint64_t capacity;
static char problem[192];

/* Both queues live in zeroed frames of guest RAM; their physical addresses
 * are their I/O virtual addresses (the VMM's IOMMU maps RAM identity). */
static uint64_t submission_frame;
static uint64_t completion_frame;
static volatile struct vmlab_pt_command* submission_queue;
static volatile struct vmlab_pt_completion* completion_queue;

static uint32_t sq_tail;        /* the last tail written to the doorbell */
static uint32_t cq_head;        /* the next completion to consume */
static uint16_t expected_phase; /* the phase of a new completion at cq_head */
static uint32_t batch_count;    /* commands queued after sq_tail, not yet rung */
static uint32_t outstanding;    /* commands rung whose completion has not arrived */

/* Per submission slot; the slot index is the command_id. */
static bool slot_pending[PASSTHROUGH_QUEUE_ENTRIES];
static uint8_t slot_opcode[PASSTHROUGH_QUEUE_ENTRIES];
static uint64_t slot_sector[PASSTHROUGH_QUEUE_ENTRIES];
static uint64_t slot_buffer[PASSTHROUGH_QUEUE_ENTRIES];
static uint16_t slot_status[PASSTHROUGH_QUEUE_ENTRIES];

static uint64_t requests;
static uint64_t doorbells;

const char* passthrough_problem(void) {
  return problem;
}
uint64_t passthrough_capacity(void) {
  return capacity;
}
uint32_t passthrough_queue_entries(void) {
  return PASSTHROUGH_QUEUE_ENTRIES;
}
uint32_t passthrough_batch_limit(void) {
  return PASSTHROUGH_QUEUE_ENTRIES - 1;
}
uint64_t passthrough_requests(void) {
  return requests;
}
uint64_t passthrough_doorbells(void) {
  return doorbells;
}
uint64_t passthrough_fault_address(void) {
  return registers != NULL ? registers->fault_address : 0;
}
uint64_t passthrough_dma_faults(void) {
  return registers != NULL ? registers->dma_faults : 0;
}

const char* passthrough_status_name(uint16_t status) {
  switch (status) {
    case VMLAB_PT_OK:
      return "ok";
    case VMLAB_PT_ERROR_RANGE:
      return "range";
    case VMLAB_PT_ERROR_DMA:
      return "dma";
    case VMLAB_PT_ERROR_IO:
      return "io";
    case VMLAB_PT_ERROR_INVALID:
      return "invalid";
    default:
      return "unknown";
  }
}

static const char* opcode_name(uint8_t opcode) {
  switch (opcode) {
    case VMLAB_PT_READ:
      return "read";
    case VMLAB_PT_WRITE:
      return "write";
    case VMLAB_PT_FLUSH:
      return "flush";
    default:
      return "command";
  }
}

/* x86 keeps stores in order with stores and loads with loads (Intel SDM
 * vol. 3A, 9.2.2); only the compiler must be kept from moving ordinary
 * accesses across the volatile ones. */
static inline void compiler_barrier(void) {
  __asm__ volatile("" : : : "memory");
}

bool passthrough_probe(const struct vmlab_device* device) {
  return device->kind == VMLAB_DEVICE_PASSTHROUGH && (device->flags & VMLAB_DEVICE_FLAG_MMIO) != 0;
}

/* The device sets interrupt_cause with each completion batch and raises an
 * edge; the wait loop looks at the completion queue itself, so the handler
 * only acknowledges. */
static void passthrough_interrupt(void) {
  registers->interrupt_cause = 0;
}

static bool device_fatal(void) {
  if ((registers->status & VMLAB_PT_STATUS_FATAL) == 0) return false;
  format_to(problem, sizeof problem,
            "the passthrough device stopped (status FATAL): it rejected the queue setup or a "
            "queue index, or lost access to a queue");
  return true;
}

/* Waits until every bit of mask reads as wanted in the status register. */
static bool wait_for_status(uint32_t mask, uint32_t wanted) {
  uint64_t start = read_timestamp_counter();
  while ((registers->status & mask) != wanted) {
    if (read_timestamp_counter() - start > POLL_TIMEOUT_CYCLES) return false;
  }
  return true;
}

/* After ENABLE: READY, or FATAL if the device refused the queues. */
static bool wait_until_ready(void) {
  uint64_t start = read_timestamp_counter();
  for (;;) {
    if (device_fatal()) return false;
    if ((registers->status & VMLAB_PT_STATUS_READY) != 0) return true;
    if (read_timestamp_counter() - start > POLL_TIMEOUT_CYCLES) return false;
  }
}

static bool map_registers(const struct vmlab_device* device) {
  if (registers != NULL && window_base == device->base) return true;
  if (!passthrough_probe(device) || device->size < VMLAB_PT_WINDOW_SIZE) {
    format_to(problem, sizeof problem,
              "the passthrough device table entry at 0x%lx is not a %u-byte MMIO window",
              device->base, VMLAB_PT_WINDOW_SIZE);
    return false;
  }
  registers = device_memory_map(device->base, VMLAB_PT_WINDOW_SIZE);
  if (registers == NULL) {
    format_to(problem, sizeof problem, "cannot map the passthrough window at 0x%lx", device->base);
    return false;
  }
  window_base = device->base;
  return true;
}

static bool allocate_queues(void) {
  if (submission_frame == 0) submission_frame = frame_allocate();
  if (completion_frame == 0) completion_frame = frame_allocate();
  if (submission_frame == 0 || completion_frame == 0) {
    format_to(problem, sizeof problem, "no RAM for the passthrough queues");
    return false;
  }
  /* Zero again for a second init: every completion's phase must start at 0,
   * so that none looks new before the device writes it. */
  submission_queue = physical_to_virtual(submission_frame);
  completion_queue = physical_to_virtual(completion_frame);
  fill_quadwords(physical_to_virtual(submission_frame), 0, PAGE_SIZE / 8);
  fill_quadwords(physical_to_virtual(completion_frame), 0, PAGE_SIZE / 8);
  return true;
}

bool passthrough_init(const struct vmlab_device* device, enum disk_completion completion) {
  problem[0] = '\0';
  completion_mode = DISK_COMPLETION_POLLED;
  if (!map_registers(device)) return false;
  if (registers->magic != VMLAB_PT_MAGIC || registers->version != VMLAB_PT_VERSION) {
    format_to(problem, sizeof problem,
              "no passthrough controller (version %u) at 0x%lx: magic 0x%x version %u",
              VMLAB_PT_VERSION, device->base, registers->magic, registers->version);
    return false;
  }
  irq_line = device->irq;

  /* Clearing ENABLE resets the device, from FATAL too; it is done when
   * both READY and FATAL read clear. */
  const uint32_t running = VMLAB_PT_STATUS_READY | VMLAB_PT_STATUS_FATAL;
  if ((registers->control & VMLAB_PT_CONTROL_ENABLE) != 0 || (registers->status & running) != 0) {
    registers->control = 0;
    if (!wait_for_status(running, 0)) {
      format_to(problem, sizeof problem, "the passthrough device at 0x%lx does not reset",
                device->base);
      return false;
    }
  }
  if (!allocate_queues()) return false;
  sq_tail = 0;
  cq_head = 0;
  expected_phase = 1; /* the device's first pass through the queue */
  batch_count = 0;
  outstanding = 0;
  for (uint32_t slot = 0; slot < PASSTHROUGH_QUEUE_ENTRIES; ++slot)
    slot_pending[slot] = false;

  registers->sq_address = submission_frame;
  registers->cq_address = completion_frame;
  registers->queue_entries = PASSTHROUGH_QUEUE_ENTRIES;
  registers->sq_tail = 0;
  registers->cq_head = 0;
  registers->interrupt_cause = 0;

  uint32_t control = VMLAB_PT_CONTROL_ENABLE;
  if (completion == DISK_COMPLETION_INTERRUPT) {
    if (!disk_irq_register(irq_line, passthrough_interrupt, "passthrough device", problem,
                           sizeof problem))
      return false;
    completion_mode = DISK_COMPLETION_INTERRUPT;
    pic_unmask(irq_line);
    control |= VMLAB_PT_CONTROL_INTERRUPTS;
  }
  /* The queue registers before ENABLE, which makes the device read them. */
  compiler_barrier();
  registers->control = control;
  if (!wait_until_ready()) {
    if (problem[0] == '\0') {
      format_to(problem, sizeof problem,
                "the passthrough device at 0x%lx did not become ready (status 0x%x)", device->base,
                registers->status);
    }
    passthrough_finish();
    return false;
  }
  capacity = registers->capacity_sectors;
  return true;
}

bool passthrough_queue(enum passthrough_operation operation, uint64_t sector,
                       uint64_t buffer_physical, uint32_t sectors) {
  uint8_t opcode;
  switch (operation) {
    case PASSTHROUGH_OPERATION_READ:
      opcode = VMLAB_PT_READ;
      break;
    case PASSTHROUGH_OPERATION_WRITE:
      opcode = VMLAB_PT_WRITE;
      break;
    case PASSTHROUGH_OPERATION_FLUSH:
      opcode = VMLAB_PT_FLUSH;
      sector = 0;
      buffer_physical = 0;
      sectors = 0;
      break;
    default:
      format_to(problem, sizeof problem, "unknown passthrough operation %u", operation);
      return false;
  }
  if (opcode != VMLAB_PT_FLUSH && (sectors == 0 || sectors > VMLAB_PT_MAX_TRANSFER_SECTORS)) {
    format_to(problem, sizeof problem, "a passthrough %s of %u sectors: the device moves 1 to %u",
              opcode_name(opcode), sectors, VMLAB_PT_MAX_TRANSFER_SECTORS);
    return false;
  }
  /* At most entries - 1 commands in flight: the device keeps one
   * completion slot free and would stall on a full queue. */
  if (outstanding + batch_count >= passthrough_batch_limit()) {
    format_to(problem, sizeof problem, "the passthrough batch is full (%u commands)", batch_count);
    return false;
  }
  uint32_t slot = (sq_tail + batch_count) % PASSTHROUGH_QUEUE_ENTRIES;
  volatile struct vmlab_pt_command* command = &submission_queue[slot];
  command->opcode = opcode;
  command->reserved0 = 0;
  command->command_id = (uint16_t)slot;
  command->sector_count = sectors;
  command->sector = sector;
  command->buffer_address = buffer_physical;
  command->reserved1 = 0;
  slot_pending[slot] = true;
  slot_opcode[slot] = opcode;
  slot_sector[slot] = sector;
  slot_buffer[slot] = buffer_physical;
  slot_status[slot] = VMLAB_PT_OK;
  ++batch_count;
  ++requests;
  return true;
}

/* Consumes every new completion and hands the new head to the device.
 * Returns how many, or -1 with problem set for a completion that names no
 * command in flight. */
static int drain_completions(void) {
  int consumed = 0;
  for (;;) {
    volatile struct vmlab_pt_completion* entry = &completion_queue[cq_head];
    if (entry->phase != expected_phase) break;
    /* The device writes the phase last; loads are not reordered with loads
     * (Intel SDM vol. 3A, 9.2.2), so the rest of the entry is complete. */
    uint16_t command_id = entry->command_id;
    uint16_t status = entry->status;
    if (command_id >= PASSTHROUGH_QUEUE_ENTRIES || !slot_pending[command_id]) {
      format_to(problem, sizeof problem,
                "the passthrough device completed command %u, which is not in flight", command_id);
      return -1;
    }
    slot_pending[command_id] = false;
    slot_status[command_id] = status;
    --outstanding;
    ++consumed;
    if (++cq_head == PASSTHROUGH_QUEUE_ENTRIES) {
      cq_head = 0;
      expected_phase ^= 1;
    }
  }
  if (consumed != 0) registers->cq_head = cq_head;
  return consumed;
}

static bool wait_for_completions(void) {
  if (completion_mode == DISK_COMPLETION_INTERRUPT) {
    /* Interrupts stay disabled from the look at the queue to sti; hlt,
     * which cannot miss an edge that arrives in between (arch.h). Each
     * wake-up looks again: one edge may stand for several completions. */
    for (;;) {
      if (drain_completions() < 0) return false;
      if (outstanding == 0) return true;
      if (device_fatal()) return false;
      interrupts_enable_and_wait();
    }
  }
  uint64_t start = read_timestamp_counter();
  uint32_t polls = 0;
  for (;;) {
    int consumed = drain_completions();
    if (consumed < 0) return false;
    if (outstanding == 0) return true;
    if (consumed != 0) continue;
    if (device_fatal()) return false;
    if (++polls == POLLS_PER_CLOCK_CHECK) {
      polls = 0;
      if (read_timestamp_counter() - start > POLL_TIMEOUT_CYCLES) {
        format_to(problem, sizeof problem,
                  "passthrough commands did not complete (%u outstanding, status 0x%x)",
                  outstanding, registers->status);
        return false;
      }
    }
  }
}

/* Rings the doorbell for the batch and waits for all of it; *first is the
 * batch's first slot, *count its size. */
static bool ring_and_wait(uint32_t* first, uint32_t* count) {
  *first = sq_tail;
  *count = batch_count;
  if (batch_count == 0) return true;
  uint32_t new_tail = (sq_tail + batch_count) % PASSTHROUGH_QUEUE_ENTRIES;
  /* Commands before the tail that publishes them. */
  compiler_barrier();
  registers->sq_tail = new_tail;
  ++doorbells;
  sq_tail = new_tail;
  outstanding += batch_count;
  batch_count = 0;
  return wait_for_completions();
}

bool passthrough_submit(void) {
  uint32_t first;
  uint32_t count;
  if (!ring_and_wait(&first, &count)) return false;
  for (uint32_t index = 0; index < count; ++index) {
    uint32_t slot = (first + index) % PASSTHROUGH_QUEUE_ENTRIES;
    uint16_t status = slot_status[slot];
    if (status == VMLAB_PT_OK) continue;
    if (status == VMLAB_PT_ERROR_DMA) {
      format_to(problem, sizeof problem,
                "passthrough %s at sector %lu failed: the IOMMU blocked the DMA to 0x%lx (fault "
                "at 0x%lx)",
                opcode_name(slot_opcode[slot]), slot_sector[slot], slot_buffer[slot],
                passthrough_fault_address());
    } else {
      const char* meaning = status == VMLAB_PT_ERROR_IO ? ": the disk image failed or is read-only"
                            : status == VMLAB_PT_ERROR_RANGE ? ": past the end of the disk"
                                                             : "";
      format_to(problem, sizeof problem, "passthrough %s at sector %lu failed: status %u (%s)%s",
                opcode_name(slot_opcode[slot]), slot_sector[slot], status,
                passthrough_status_name(status), meaning);
    }
    return false;
  }
  return true;
}

bool passthrough_execute(enum passthrough_operation operation, uint64_t sector, uint64_t iova,
                         uint32_t sectors, uint16_t* status) {
  if (batch_count != 0) {
    format_to(problem, sizeof problem, "passthrough_execute with %u commands queued", batch_count);
    return false;
  }
  if (!passthrough_queue(operation, sector, iova, sectors)) return false;
  uint32_t first;
  uint32_t count;
  if (!ring_and_wait(&first, &count)) return false;
  *status = slot_status[first];
  return true;
}

void passthrough_finish(void) {
  if (completion_mode == DISK_COMPLETION_INTERRUPT) {
    pic_mask(irq_line);
    irq_register(irq_line, NULL);
    completion_mode = DISK_COMPLETION_POLLED;
  }
  if (registers != NULL) registers->control = 0;
}
