/* The vmlab passthrough storage controller (DESIGN.md 6, issue 6): the
 * "physical" device a host thread implements. Shared by the device model
 * (C++20) and the guest's native driver (freestanding C11).
 *
 * Register window: one 4 KiB page of guest-physical memory, struct
 * vmlab_pt_registers, mapped into the guest through its own KVM memory slot
 * and shared with the device thread, so a register access causes no exit.
 * Every field is naturally aligned and written whole; the driver and the
 * device each own the fields marked for them and only read the others.
 *
 * Queues: a submission queue of `queue_entries` struct vmlab_pt_command and a
 * completion queue of as many struct vmlab_pt_completion, in guest memory,
 * addressed by I/O virtual addresses the IOMMU translates (identity for
 * guest RAM in vmlab's IOMMU setup). The driver writes commands at sq_tail
 * and then the new tail (the doorbell); the device consumes them, performs
 * the DMA, and posts a completion with the current phase bit, which flips
 * each time the completion queue wraps (as NVMe does).
 */
#ifndef VMLAB_ABI_PASSTHROUGH_H
#define VMLAB_ABI_PASSTHROUGH_H

#include <stdint.h>

#define VMLAB_PT_MAGIC 0x54504d56u /* "VMPT" little-endian */
#define VMLAB_PT_VERSION 1u
#define VMLAB_PT_WINDOW_SIZE 4096u
#define VMLAB_PT_MAX_QUEUE_ENTRIES 256u
#define VMLAB_PT_MAX_TRANSFER_SECTORS 256u

enum vmlab_pt_control {
  VMLAB_PT_CONTROL_ENABLE = 1u << 0,     /* driver: queues set up, start */
  VMLAB_PT_CONTROL_INTERRUPTS = 1u << 1, /* driver: raise an interrupt per completion batch */
};

enum vmlab_pt_status {
  VMLAB_PT_STATUS_READY = 1u << 0,       /* device: enabled and serving */
  VMLAB_PT_STATUS_FATAL = 1u << 1,       /* device: stopped until re-enabled (bad queue setup) */
  VMLAB_PT_STATUS_IOMMU_FAULT = 1u << 2, /* device: a DMA was blocked (see fault_address) */
};

enum vmlab_pt_opcode {
  VMLAB_PT_READ = 1,  /* sectors from the disk into memory */
  VMLAB_PT_WRITE = 2, /* sectors from memory to the disk */
  VMLAB_PT_FLUSH = 3,
};

enum vmlab_pt_completion_status {
  VMLAB_PT_OK = 0,
  VMLAB_PT_ERROR_RANGE = 1,   /* sectors past the end of the disk */
  VMLAB_PT_ERROR_DMA = 2,     /* the IOMMU blocked the transfer; nothing moved */
  VMLAB_PT_ERROR_IO = 3,      /* the backing file failed (or is read-only) */
  VMLAB_PT_ERROR_INVALID = 4, /* unknown opcode, zero or too many sectors */
};

struct vmlab_pt_registers {
  uint32_t magic;              /* device */
  uint32_t version;            /* device */
  uint64_t capacity_sectors;   /* device */
  uint64_t sq_address;         /* driver: I/O virtual address of the submission queue */
  uint64_t cq_address;         /* driver: I/O virtual address of the completion queue */
  uint32_t queue_entries;      /* driver: a power of two, at most VMLAB_PT_MAX_QUEUE_ENTRIES */
  uint32_t control;            /* driver: enum vmlab_pt_control */
  uint32_t sq_tail;            /* driver: the doorbell, index of the next free command slot */
  uint32_t cq_head;            /* driver: index of the next completion it will consume */
  uint32_t status;             /* device: enum vmlab_pt_status */
  uint32_t interrupt_cause;    /* device sets 1 with an interrupt; driver writes 0 to acknowledge */
  uint64_t fault_address;      /* device: the I/O virtual address of the last blocked DMA */
  uint64_t commands_completed; /* device */
  uint64_t dma_faults;         /* device */
};

struct vmlab_pt_command {
  uint8_t opcode; /* enum vmlab_pt_opcode */
  uint8_t reserved0;
  uint16_t command_id;
  uint32_t sector_count;
  uint64_t sector;
  uint64_t buffer_address; /* I/O virtual address, sector_count * 512 bytes, contiguous */
  uint64_t reserved1;
};

struct vmlab_pt_completion {
  uint16_t command_id;
  uint16_t status; /* enum vmlab_pt_completion_status */
  uint16_t phase;  /* 1 on the first pass through the queue, then alternating */
  uint16_t reserved;
};

#ifdef __cplusplus
static_assert(sizeof(struct vmlab_pt_registers) == 80, "passthrough register layout");
static_assert(sizeof(struct vmlab_pt_command) == 32, "passthrough command layout");
static_assert(sizeof(struct vmlab_pt_completion) == 8, "passthrough completion layout");
#else
_Static_assert(sizeof(struct vmlab_pt_registers) == 80, "passthrough register layout");
_Static_assert(sizeof(struct vmlab_pt_command) == 32, "passthrough command layout");
_Static_assert(sizeof(struct vmlab_pt_completion) == 8, "passthrough completion layout");
#endif

#endif /* VMLAB_ABI_PASSTHROUGH_H */
