/* PIO ATA: the master device of one channel (ATA/ATAPI-6, INCITS 361-2002),
 * with 28-bit or 48-bit LBA and polled or interrupt-driven completion. Data
 * moves with rep insw / rep outsw, one instruction per sector. */
#ifndef VMLAB_GUEST_ATA_H
#define VMLAB_GUEST_ATA_H

#include <stdbool.h>
#include <stdint.h>

#include "disk.h"
#include "vmlab/boot_info.h"

/* LBA28 commands unless the request needs 48 bits (a sector at or past 2^28,
 * or more than 256 sectors), or ATA_ADDRESSING_LBA48 asks for the EXT
 * commands on every request. */
enum ata_addressing {
  ATA_ADDRESSING_AUTOMATIC = 0,
  ATA_ADDRESSING_LBA48 = 1,
};

struct ata_identity {
  uint64_t sectors;       /* LBA48 capacity if supported, else LBA28 capacity */
  uint64_t lba28_sectors; /* IDENTIFY words 60-61 */
  bool lba48;             /* IDENTIFY word 83 bit 10 */
  char model[41];         /* words 27-46, trailing spaces removed */
  char serial[21];        /* words 10-19 */
};

/* The most sectors one command moves (LBA28's sector count of 0 means 256). */
#define ATA_MAXIMUM_SECTORS_PER_COMMAND 256u

/* Identifies the master device on the channel the entry describes (base =
 * command block, control block at base + 0x206) and sets up completion; for
 * interrupts, registers the handler and unmasks the entry's IRQ. Returns
 * false with ata_problem() set if there is no usable ATA disk. */
bool ata_init(const struct vmlab_device* device, enum disk_completion completion,
              enum ata_addressing addressing);
const struct ata_identity* ata_identity(void);

/* count sectors (1 to ATA_MAXIMUM_SECTORS_PER_COMMAND) in one command. Every
 * command's status is checked (ERR, DF); false with ata_problem() set on an
 * error or a timeout. */
bool ata_read(uint64_t sector, uint32_t count, void* buffer);
bool ata_write(uint64_t sector, uint32_t count, const void* buffer);
/* FLUSH CACHE (EXT when 48-bit addressing is forced). */
bool ata_flush(void);

/* Masks the IRQ again and sets nIEN. */
void ata_finish(void);

const char* ata_problem(void);

#endif /* VMLAB_GUEST_ATA_H */
