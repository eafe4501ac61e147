/* What the two disk drivers (ata.h, virtio_blk.h) share. */
#ifndef VMLAB_GUEST_DISK_H
#define VMLAB_GUEST_DISK_H

#define DISK_SECTOR_SIZE 512u

/* How a driver learns that the device is done: by reading its status in a
 * loop, or by sleeping until its interrupt (interrupts_enable_and_wait). */
enum disk_completion {
  DISK_COMPLETION_POLLED = 0,
  DISK_COMPLETION_INTERRUPT = 1,
};

#endif /* VMLAB_GUEST_DISK_H */
