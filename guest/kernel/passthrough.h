/* The native driver of vmlab's passthrough storage controller
 * (abi/vmlab/passthrough.h): one submission and one completion queue in
 * guest RAM, a register window that is shared memory rather than trapped
 * MMIO, and DMA through the VMM's IOMMU. Commands are queued into a batch
 * and the device is told once per batch by the sq_tail doorbell
 * (passthrough_submit), which then waits for every completion of the batch,
 * polling the completion queue or sleeping until the device's interrupt. */
#ifndef VMLAB_GUEST_PASSTHROUGH_H
#define VMLAB_GUEST_PASSTHROUGH_H

#include <stdbool.h>
#include <stdint.h>

#include "disk.h"
#include "vmlab/boot_info.h"

enum passthrough_operation {
  PASSTHROUGH_OPERATION_READ,  /* VMLAB_PT_READ: disk to memory */
  PASSTHROUGH_OPERATION_WRITE, /* VMLAB_PT_WRITE: memory to disk */
  PASSTHROUGH_OPERATION_FLUSH, /* VMLAB_PT_FLUSH: no data */
};

/* The queue size the driver sets up: a power of two, and 64 commands of 32
 * bytes fill half a frame. */
#define PASSTHROUGH_QUEUE_ENTRIES 64u

/* Whether a device-table entry is the passthrough controller (kind
 * VMLAB_DEVICE_PASSTHROUGH, an MMIO window). Does not touch the device. */
bool passthrough_probe(const struct vmlab_device* device);

/* Maps the window, checks magic and version, resets the device if it is
 * enabled, sets up both queues (PASSTHROUGH_QUEUE_ENTRIES each) and enables
 * it, waiting for READY. For interrupts, registers the handler and unmasks
 * the entry's IRQ. Returns false with passthrough_problem() set. */
bool passthrough_init(const struct vmlab_device* device, enum disk_completion completion);

uint64_t passthrough_capacity(void); /* in 512-byte sectors */
uint32_t passthrough_queue_entries(void);

/* The most commands one batch may hold: the device keeps one completion
 * slot free, so entries - 1. */
uint32_t passthrough_batch_limit(void);

/* Adds a command to the current batch. buffer_physical is the I/O virtual
 * address of a physically contiguous buffer of sectors * 512 bytes (guest
 * RAM is identity-mapped by the VMM's IOMMU); sectors is 1 to
 * VMLAB_PT_MAX_TRANSFER_SECTORS, and 0 with buffer 0 for a flush. Returns
 * false with passthrough_problem() set if the batch is full or the command
 * cannot be expressed. */
bool passthrough_queue(enum passthrough_operation operation, uint64_t sector,
                       uint64_t buffer_physical, uint32_t sectors);

/* Rings the doorbell once for the batch, waits for every completion and
 * checks each status; false with passthrough_problem() set on the first
 * command that failed, or if the device stopped (FATAL) or timed out. */
bool passthrough_submit(void);

/* Issues one command on its own and returns its completion status
 * (enum vmlab_pt_completion_status) in *status, whatever it is: for
 * dma-attack, which expects some commands to fail. Returns false with
 * passthrough_problem() set only if no completion arrived (FATAL, timeout,
 * a bad command). The batch must be empty. */
bool passthrough_execute(enum passthrough_operation operation, uint64_t sector, uint64_t iova,
                         uint32_t sectors, uint16_t* status);

/* Commands queued and doorbell writes since initialization. */
uint64_t passthrough_requests(void);
uint64_t passthrough_doorbells(void);

/* The device's fault registers: the I/O virtual address of the last DMA
 * the IOMMU blocked (0 if none), and how many it blocked since reset. */
uint64_t passthrough_fault_address(void);
uint64_t passthrough_dma_faults(void);

/* "ok", "range", "dma", "io", "invalid" or "unknown". */
const char* passthrough_status_name(uint16_t status);

/* Masks the IRQ again, removes the handler and disables the device
 * (control = 0), so that a later passthrough_init starts from a reset. */
void passthrough_finish(void);

const char* passthrough_problem(void);

#endif /* VMLAB_GUEST_PASSTHROUGH_H */
