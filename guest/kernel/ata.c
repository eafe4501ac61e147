#include "ata.h"

#include "arch.h"
#include "irq.h"
#include "lib.h"
#include "pic.h"
#include "port_io.h"

/* Command block registers, offsets from the base port (ATA/ATAPI-6,
 * "Register addressing"). */
#define ATA_DATA 0
#define ATA_ERROR 1    /* read */
#define ATA_FEATURES 1 /* write */
#define ATA_SECTOR_COUNT 2
#define ATA_LBA_LOW 3
#define ATA_LBA_MID 4
#define ATA_LBA_HIGH 5
#define ATA_DEVICE 6
#define ATA_STATUS 7  /* read: also clears a pending INTRQ */
#define ATA_COMMAND 7 /* write */
/* Control block: Alternate Status (read, leaves INTRQ alone) and Device
 * Control (write), at 0x3f6 for the primary channel's 0x1f0. */
#define ATA_CONTROL_OFFSET 0x206

#define STATUS_ERROR 0x01
#define STATUS_DATA_REQUEST 0x08
#define STATUS_DEVICE_FAULT 0x20
#define STATUS_DEVICE_READY 0x40
#define STATUS_BUSY 0x80
#define STATUS_FLOATING_BUS 0xff /* no controller answers: the bus is pulled up */

#define CONTROL_INTERRUPT_DISABLE 0x02 /* nIEN */

/* Device register: bit 6 selects LBA addressing; bits 7 and 5 are obsolete
 * and set by convention; bit 4 = 0 selects the master. */
#define DEVICE_MASTER 0xa0
#define DEVICE_LBA 0x40

#define COMMAND_READ_SECTORS 0x20
#define COMMAND_READ_SECTORS_EXT 0x24
#define COMMAND_WRITE_SECTORS 0x30
#define COMMAND_WRITE_SECTORS_EXT 0x34
#define COMMAND_FLUSH_CACHE 0xe7
#define COMMAND_FLUSH_CACHE_EXT 0xea
#define COMMAND_IDENTIFY_DEVICE 0xec

/* IDENTIFY DEVICE data, in 16-bit words (ATA/ATAPI-6, IDENTIFY DEVICE). */
#define IDENTIFY_WORDS 256
#define IDENTIFY_SERIAL 10
#define IDENTIFY_SERIAL_WORDS 10
#define IDENTIFY_MODEL 27
#define IDENTIFY_MODEL_WORDS 20
#define IDENTIFY_CAPABILITIES 49
#define IDENTIFY_CAPABILITY_LBA (1u << 9)
#define IDENTIFY_LBA28_SECTORS 60
#define IDENTIFY_COMMAND_SETS 83
#define IDENTIFY_COMMAND_SET_LBA48 (1u << 10)
#define IDENTIFY_LBA48_SECTORS 100

#define SECTOR_WORDS (DISK_SECTOR_SIZE / 2)
#define LBA28_LIMIT (1ull << 28)
#define LBA48_LIMIT (1ull << 48)
#define LBA28_MAXIMUM_COUNT 256u

/* Polling gives up after this many TSC cycles (about 30 s at 2 GHz): a
 * missing or wedged device must not hang the kernel silently. */
#define POLL_TIMEOUT_CYCLES (1ull << 36)

enum transfer_direction {
  TRANSFER_READ,
  TRANSFER_WRITE,
};

/* Status clears a pending INTRQ when read; Alternate Status does not. */
enum status_register {
  REGISTER_STATUS,
  REGISTER_ALTERNATE_STATUS,
};

/* What ends a wait besides BSY clearing: nothing, or DRQ (or ERR). */
enum status_goal {
  GOAL_NOT_BUSY,
  GOAL_DATA_REQUEST,
};

static uint16_t command_base;
static uint16_t control_port;
static uint32_t irq_line = VMLAB_NO_IRQ;
static enum disk_completion completion_mode = DISK_COMPLETION_POLLED;
static enum ata_addressing addressing_mode = ATA_ADDRESSING_AUTOMATIC;
static struct ata_identity identity;
static char problem[160];

/* Set by the interrupt handler; the driver runs with interrupts disabled
 * except inside interrupts_enable_and_wait(), whose "memory" clobber orders
 * these accesses around the handler. */
static volatile bool interrupt_pending;
static volatile uint8_t interrupt_status;

const char* ata_problem(void) {
  return problem;
}

const struct ata_identity* ata_identity(void) {
  return &identity;
}

static uint8_t read_status(void) {
  return port_read8(command_base + ATA_STATUS);
}

static uint8_t read_alternate_status(void) {
  return port_read8(control_port);
}

/* A device has 400 ns after a command (or a device selection) before its
 * status is valid (ATA/ATAPI-6, the command protocols); four reads of the
 * alternate status take at least that long on any bus. */
static void wait_400_nanoseconds(void) {
  for (unsigned read = 0; read < 4; ++read)
    (void)read_alternate_status();
}

/* Polls until BSY is clear and the goal is met. The alternate status leaves
 * INTRQ pending (for a write's first block in interrupt mode, which has no
 * interrupt of its own). Returns false on a timeout. */
static bool poll_status(enum status_register source, enum status_goal goal, uint8_t* status_out) {
  uint64_t start = read_timestamp_counter();
  for (;;) {
    uint8_t status = source == REGISTER_ALTERNATE_STATUS ? read_alternate_status() : read_status();
    if ((status & STATUS_BUSY) == 0 &&
        (goal == GOAL_NOT_BUSY || (status & (STATUS_DATA_REQUEST | STATUS_ERROR)) != 0)) {
      *status_out = status;
      return true;
    }
    if (read_timestamp_counter() - start > POLL_TIMEOUT_CYCLES) {
      *status_out = status;
      return false;
    }
  }
}

static void ata_interrupt(void) {
  /* Reading Status acknowledges the interrupt (INTRQ is cleared). */
  interrupt_status = read_status();
  interrupt_pending = true;
}

/* The status that ends one step of a command: after its interrupt, or by
 * polling. The device raises INTRQ only with BSY clear (ATA/ATAPI-6, PIO
 * data-in, PIO data-out and non-data protocols); should one come early (a
 * device that also interrupts for a write's first block), the alternate
 * status is polled until BSY clears. */
static bool wait_step(enum status_goal goal, uint8_t* status) {
  if (completion_mode == DISK_COMPLETION_INTERRUPT) {
    while (!interrupt_pending)
      interrupts_enable_and_wait();
    interrupt_pending = false;
    *status = interrupt_status;
    if ((*status & STATUS_BUSY) == 0) return true;
    return poll_status(REGISTER_ALTERNATE_STATUS, goal, status);
  }
  return poll_status(REGISTER_STATUS, goal, status);
}

static bool failed(const char* what, uint64_t sector, uint8_t status) {
  uint8_t error = port_read8(command_base + ATA_ERROR);
  format_to(problem, sizeof problem, "ATA %s at sector %lu failed: status 0x%x%s error 0x%x", what,
            sector, status, (status & STATUS_DEVICE_FAULT) != 0 ? " (device fault)" : "", error);
  return false;
}

static bool timed_out(const char* what, uint64_t sector, uint8_t status) {
  format_to(problem, sizeof problem, "ATA %s at sector %lu timed out: status 0x%x", what, sector,
            status);
  return false;
}

static bool status_bad(uint8_t status) {
  return (status & (STATUS_ERROR | STATUS_DEVICE_FAULT)) != 0;
}

/* Writes the task file for a command on the master. For 48-bit commands each
 * register is a two-deep FIFO: the high byte first, then the low
 * (ATA/ATAPI-6, "48-bit Address feature set"). */
static void write_task_file(uint64_t sector, uint32_t count, bool extended) {
  uint16_t base = command_base;
  if (extended) {
    port_write8(base + ATA_DEVICE, DEVICE_LBA);
    port_write8(base + ATA_SECTOR_COUNT, (uint8_t)(count >> 8));
    port_write8(base + ATA_LBA_LOW, (uint8_t)(sector >> 24));
    port_write8(base + ATA_LBA_MID, (uint8_t)(sector >> 32));
    port_write8(base + ATA_LBA_HIGH, (uint8_t)(sector >> 40));
  } else {
    port_write8(base + ATA_DEVICE, (uint8_t)(DEVICE_MASTER | DEVICE_LBA | ((sector >> 24) & 0x0f)));
  }
  /* A count of 256 (65536 for EXT) is written as 0. */
  port_write8(base + ATA_SECTOR_COUNT, (uint8_t)count);
  port_write8(base + ATA_LBA_LOW, (uint8_t)sector);
  port_write8(base + ATA_LBA_MID, (uint8_t)(sector >> 8));
  port_write8(base + ATA_LBA_HIGH, (uint8_t)(sector >> 16));
}

/* The host may write the command block only while BSY and DRQ are clear
 * (ATA/ATAPI-6, bus idle protocol). */
static bool wait_idle(const char* what, uint64_t sector) {
  uint64_t start = read_timestamp_counter();
  for (;;) {
    uint8_t status = read_alternate_status();
    if ((status & (STATUS_BUSY | STATUS_DATA_REQUEST)) == 0) return true;
    if (read_timestamp_counter() - start > POLL_TIMEOUT_CYCLES) {
      return timed_out(what, sector, status);
    }
  }
}

static void issue(uint8_t command) {
  interrupt_pending = false;
  port_write8(command_base + ATA_COMMAND, command);
  if (completion_mode == DISK_COMPLETION_POLLED) wait_400_nanoseconds();
}

/* PIO data-in and data-out protocols (ATA/ATAPI-6): per sector, wait until
 * the device asks for the data (DRQ), then move 256 words. A read raises an
 * interrupt before each sector; a write raises none before its first sector
 * and one after each sector, the last marking completion. */
static bool transfer(enum transfer_direction direction, uint64_t sector, uint32_t count,
                     void* buffer) {
  const char* what = direction == TRANSFER_READ ? "read" : "write";
  if (count == 0 || count > ATA_MAXIMUM_SECTORS_PER_COMMAND || sector >= identity.sectors ||
      count > identity.sectors - sector) {
    format_to(problem, sizeof problem,
              "ATA %s of %u sectors at sector %lu is outside the disk (%lu sectors)", what, count,
              sector, identity.sectors);
    return false;
  }
  bool extended = addressing_mode == ATA_ADDRESSING_LBA48 || sector + count > LBA28_LIMIT ||
                  count > LBA28_MAXIMUM_COUNT;
  if (extended && !identity.lba48) {
    format_to(problem, sizeof problem,
              "ATA %s at sector %lu needs 48-bit LBA, which the device does not support", what,
              sector);
    return false;
  }
  uint8_t command;
  if (direction == TRANSFER_READ) {
    command = extended ? COMMAND_READ_SECTORS_EXT : COMMAND_READ_SECTORS;
  } else {
    command = extended ? COMMAND_WRITE_SECTORS_EXT : COMMAND_WRITE_SECTORS;
  }

  char described[32];
  format_to(described, sizeof described, "%s (command 0x%x)", what, command);
  what = described;
  if (!wait_idle(what, sector)) return false;
  write_task_file(sector, count, extended);
  issue(command);

  uint8_t* cursor = buffer;
  uint8_t status;
  for (uint32_t index = 0; index < count; ++index) {
    bool ready;
    if (direction == TRANSFER_WRITE && index == 0) {
      ready = poll_status(REGISTER_ALTERNATE_STATUS, GOAL_DATA_REQUEST, &status);
    } else {
      ready = wait_step(GOAL_DATA_REQUEST, &status);
    }
    /* A write's status before block i reports on block i - 1. */
    uint64_t reported =
        direction == TRANSFER_WRITE && index > 0 ? sector + index - 1 : sector + index;
    if (!ready) return timed_out(what, reported, status);
    if (status_bad(status)) return failed(what, reported, status);
    if ((status & STATUS_DATA_REQUEST) == 0) {
      format_to(problem, sizeof problem,
                "ATA %s at sector %lu: the device ended the command early (status 0x%x)", what,
                reported, status);
      return false;
    }
    if (direction == TRANSFER_READ) {
      port_read_string16(command_base + ATA_DATA, cursor, SECTOR_WORDS);
    } else {
      port_write_string16(command_base + ATA_DATA, cursor, SECTOR_WORDS);
    }
    cursor += DISK_SECTOR_SIZE;
  }

  /* A write completes with one more interrupt (or BSY clearing); a read is
   * complete once the last sector is out, and the alternate status says
   * whether it ended cleanly without touching INTRQ. */
  bool ended;
  if (direction == TRANSFER_WRITE) {
    ended = wait_step(GOAL_NOT_BUSY, &status);
  } else {
    ended = poll_status(REGISTER_ALTERNATE_STATUS, GOAL_NOT_BUSY, &status);
  }
  if (!ended) return timed_out(what, sector + count - 1, status);
  if (status_bad(status)) return failed(what, sector + count - 1, status);
  if ((status & STATUS_DATA_REQUEST) != 0) {
    format_to(problem, sizeof problem, "ATA %s at sector %lu: the device wants more data", what,
              sector);
    return false;
  }
  return true;
}

bool ata_read(uint64_t sector, uint32_t count, void* buffer) {
  return transfer(TRANSFER_READ, sector, count, buffer);
}

bool ata_write(uint64_t sector, uint32_t count, const void* buffer) {
  /* The buffer is only read; transfer() takes one pointer type for both. */
  return transfer(TRANSFER_WRITE, sector, count, (void*)(uintptr_t)buffer);
}

/* Non-data protocol (ATA/ATAPI-6): one interrupt at the end. */
bool ata_flush(void) {
  bool extended = addressing_mode == ATA_ADDRESSING_LBA48;
  if (!wait_idle("flush", 0)) return false;
  port_write8(command_base + ATA_DEVICE, extended ? DEVICE_LBA : DEVICE_MASTER | DEVICE_LBA);
  issue(extended ? COMMAND_FLUSH_CACHE_EXT : COMMAND_FLUSH_CACHE);
  uint8_t status;
  if (!wait_step(GOAL_NOT_BUSY, &status)) return timed_out("flush", 0, status);
  if (status_bad(status)) return failed("flush", 0, status);
  return true;
}

/* ATA strings hold two characters per word, the first in the high byte
 * (ATA/ATAPI-6, IDENTIFY DEVICE); the padding is spaces. */
static void copy_identify_string(const uint16_t* words, unsigned word_count, char* text) {
  for (unsigned index = 0; index < word_count; ++index) {
    text[2 * index] = (char)(words[index] >> 8);
    text[2 * index + 1] = (char)(words[index] & 0xff);
  }
  unsigned length = 2 * word_count;
  while (length > 0 && (text[length - 1] == ' ' || text[length - 1] == '\0'))
    --length;
  text[length] = '\0';
}

/* IDENTIFY DEVICE, polled (nIEN set): PIO data-in of one block. */
static bool identify(void) {
  uint16_t base = command_base;
  port_write8(base + ATA_DEVICE, DEVICE_MASTER);
  wait_400_nanoseconds();
  uint8_t status = read_status();
  if (status == STATUS_FLOATING_BUS || status == 0) {
    format_to(problem, sizeof problem, "no ATA device answers at port 0x%x (status 0x%x)", base,
              status);
    return false;
  }
  port_write8(base + ATA_SECTOR_COUNT, 0);
  port_write8(base + ATA_LBA_LOW, 0);
  port_write8(base + ATA_LBA_MID, 0);
  port_write8(base + ATA_LBA_HIGH, 0);
  issue(COMMAND_IDENTIFY_DEVICE);
  if (read_status() == 0) {
    format_to(problem, sizeof problem, "no ATA master device on the channel at port 0x%x", base);
    return false;
  }
  if (!poll_status(REGISTER_STATUS, GOAL_NOT_BUSY, &status))
    return timed_out("identify", 0, status);
  /* A packet (ATAPI) or SATA device aborts IDENTIFY DEVICE and leaves its
   * signature in LBA Mid/High (ATA/ATAPI-6, "Signature and persistence"). */
  uint8_t mid = port_read8(base + ATA_LBA_MID);
  uint8_t high = port_read8(base + ATA_LBA_HIGH);
  if (mid != 0 || high != 0) {
    format_to(problem, sizeof problem,
              "the device at port 0x%x is not an ATA disk (signature 0x%x 0x%x: ATAPI?)", base, mid,
              high);
    return false;
  }
  if (!poll_status(REGISTER_STATUS, GOAL_DATA_REQUEST, &status)) {
    return timed_out("identify", 0, status);
  }
  if (status_bad(status)) return failed("identify", 0, status);

  uint16_t words[IDENTIFY_WORDS];
  port_read_string16(base + ATA_DATA, words, IDENTIFY_WORDS);
  if ((words[IDENTIFY_CAPABILITIES] & IDENTIFY_CAPABILITY_LBA) == 0) {
    format_to(problem, sizeof problem, "the ATA disk does not support LBA addressing");
    return false;
  }
  identity.lba28_sectors =
      (uint64_t)words[IDENTIFY_LBA28_SECTORS] | (uint64_t)words[IDENTIFY_LBA28_SECTORS + 1] << 16;
  identity.lba48 = (words[IDENTIFY_COMMAND_SETS] & IDENTIFY_COMMAND_SET_LBA48) != 0;
  identity.sectors = identity.lba28_sectors;
  if (identity.lba48) {
    uint64_t sectors = 0;
    for (unsigned index = 4; index > 0; --index)
      sectors = sectors << 16 | words[IDENTIFY_LBA48_SECTORS + index - 1];
    if (sectors > LBA48_LIMIT) sectors = LBA48_LIMIT;
    if (sectors > identity.sectors) identity.sectors = sectors;
  }
  copy_identify_string(&words[IDENTIFY_SERIAL], IDENTIFY_SERIAL_WORDS, identity.serial);
  copy_identify_string(&words[IDENTIFY_MODEL], IDENTIFY_MODEL_WORDS, identity.model);
  return true;
}

bool ata_init(const struct vmlab_device* device, enum disk_completion completion,
              enum ata_addressing addressing) {
  problem[0] = '\0';
  if ((device->flags & VMLAB_DEVICE_FLAG_MMIO) != 0 || device->base > 0xffff - ATA_CONTROL_OFFSET) {
    format_to(problem, sizeof problem, "the ATA entry's base 0x%lx is not an I/O port",
              device->base);
    return false;
  }
  command_base = (uint16_t)device->base;
  control_port = (uint16_t)(device->base + ATA_CONTROL_OFFSET);
  irq_line = device->irq;
  addressing_mode = addressing;
  completion_mode = DISK_COMPLETION_POLLED;
  port_write8(control_port, CONTROL_INTERRUPT_DISABLE);
  if (!identify()) return false;
  if (addressing == ATA_ADDRESSING_LBA48 && !identity.lba48) {
    format_to(problem, sizeof problem,
              "ata-lba48=1, but the disk does not support 48-bit LBA (IDENTIFY word 83)");
    return false;
  }

  if (completion == DISK_COMPLETION_INTERRUPT) {
    if (!disk_irq_register(irq_line, ata_interrupt, "ATA channel", problem, sizeof problem))
      return false;
    (void)read_status(); /* nothing may be pending when the line opens */
    interrupt_pending = false;
    completion_mode = DISK_COMPLETION_INTERRUPT;
    pic_unmask(irq_line);
    port_write8(control_port, 0);
  }
  return true;
}

void ata_finish(void) {
  if (completion_mode == DISK_COMPLETION_INTERRUPT) {
    port_write8(control_port, CONTROL_INTERRUPT_DISABLE);
    pic_mask(irq_line);
    irq_register(irq_line, NULL);
    completion_mode = DISK_COMPLETION_POLLED;
  }
}
