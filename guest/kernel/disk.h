/* What the two disk drivers (ata.h, virtio_blk.h) share. */
#ifndef VMLAB_GUEST_DISK_H
#define VMLAB_GUEST_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "irq.h"
#include "lib.h"

#define DISK_SECTOR_SIZE 512u
#define DISK_SECTOR_QUADWORDS (DISK_SECTOR_SIZE / 8u)

/* Whether two sectors in memory hold the same bytes: one string instruction
 * per sector rather than a loop (PLATFORM.md). */
static inline bool disk_sector_equal(const void* left, const void* right) {
  size_t count = DISK_SECTOR_QUADWORDS;
  bool equal;
  __asm__ volatile("repe cmpsq"
                   : "+S"(left), "+D"(right), "+c"(count), "=@ccz"(equal)
                   :
                   : "memory");
  return equal;
}

/* How a driver learns that the device is done: by reading its status in a
 * loop, or by sleeping until its interrupt (interrupts_enable_and_wait). */
enum disk_completion {
  DISK_COMPLETION_POLLED = 0,
  DISK_COMPLETION_INTERRUPT = 1,
};

/* disk-irq=1: registers the driver's handler for its device-table IRQ line.
 * When the line is not on the PIC, says so in `problem` (naming `device`)
 * and returns false. */
static inline bool disk_irq_register(uint32_t irq_line, irq_handler handler, const char* device,
                                     char* problem, size_t problem_size) {
  if (irq_register(irq_line, handler)) return true;
  format_to(problem, problem_size,
            "disk-irq=1 needs the %s's IRQ on the PIC (the device table says %u): use disk-irq=0",
            device, irq_line);
  return false;
}

#endif /* VMLAB_GUEST_DISK_H */
