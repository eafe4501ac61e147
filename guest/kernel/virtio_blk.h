/* virtio-blk over virtio-mmio, version 2 register layout (virtio 1.2, 4.2.2
 * and 5.2), one split virtqueue. Requests are queued into a batch and the
 * device is notified once per batch (virtio_blk_submit), which then waits
 * for every request of the batch, polling the used ring or sleeping until
 * the device's interrupt. */
#ifndef VMLAB_GUEST_VIRTIO_BLK_H
#define VMLAB_GUEST_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "disk.h"
#include "vmlab/boot_info.h"

struct virtio_blk_settings {
  enum disk_completion completion;
  bool indirect;    /* use VIRTIO_RING_F_INDIRECT_DESC if the device offers it */
  bool event_index; /* use VIRTIO_RING_F_EVENT_IDX if the device offers it */
};

enum virtio_blk_operation {
  VIRTIO_BLK_OPERATION_READ,  /* VIRTIO_BLK_T_IN */
  VIRTIO_BLK_OPERATION_WRITE, /* VIRTIO_BLK_T_OUT */
  VIRTIO_BLK_OPERATION_FLUSH, /* VIRTIO_BLK_T_FLUSH: no data */
};

/* The most data one request may carry: one descriptor per page. */
#define VIRTIO_BLK_MAXIMUM_SEGMENTS 32u

/* Whether a device-table entry is a virtio-mmio window whose device is a
 * block device (MagicValue, Version 2, DeviceID 2). Maps the window. A
 * legacy (version 1) block device sets virtio_blk_problem(). */
bool virtio_blk_probe(const struct vmlab_device* device);

/* The device initialization of virtio 1.2, 3.1.1 with the MMIO specifics of
 * 4.2.3: reset, ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK,
 * queue 0, DRIVER_OK; then a GET_ID request. For interrupts, registers the
 * handler and unmasks the entry's IRQ. Returns false with
 * virtio_blk_problem() set; a device that fails is left with FAILED set. */
bool virtio_blk_init(const struct vmlab_device* device, const struct virtio_blk_settings* settings);

uint64_t virtio_blk_capacity(void);    /* in 512-byte sectors */
const char* virtio_blk_identity(void); /* the GET_ID string, "" if unsupported */
bool virtio_blk_indirect(void);        /* negotiated */
bool virtio_blk_event_index(void);     /* negotiated */
bool virtio_blk_read_only(void);       /* VIRTIO_BLK_F_RO */
uint32_t virtio_blk_queue_size(void);
uint32_t virtio_blk_seg_max(void);  /* 0 if the device gave none */
uint32_t virtio_blk_size_max(void); /* 0 if the device gave none */

/* How many requests of request_bytes each, laid back to back from a
 * page-aligned buffer, one batch can hold (the queue's descriptors, seg_max
 * and size_max decide); 0 with virtio_blk_problem() set if not even one fits. */
uint32_t virtio_blk_batch_limit(uint32_t request_bytes);

/* Adds a request to the current batch. buffer_physical must be physically
 * contiguous for bytes (a multiple of 512; 0 for a flush). A flush when the
 * device did not offer VIRTIO_BLK_F_FLUSH is left out: such a device writes
 * through (virtio 1.2, 5.2.6.2). Returns false with virtio_blk_problem() set
 * if the batch is full or the request cannot be expressed. */
bool virtio_blk_queue(enum virtio_blk_operation operation, uint64_t sector,
                      uint64_t buffer_physical, uint32_t bytes);

/* Publishes the batch, notifies the device once (unless it suppressed
 * notifications), waits for every request and checks each status byte. */
bool virtio_blk_submit(void);

/* Requests actually queued (flushes left out are not counted) and
 * QueueNotify writes, since initialization. */
uint64_t virtio_blk_requests(void);
uint64_t virtio_blk_notifications(void);

/* Masks the IRQ again. */
void virtio_blk_finish(void);

const char* virtio_blk_problem(void);

#endif /* VMLAB_GUEST_VIRTIO_BLK_H */
