/* disk-write, disk-read and disk-verify. The data for the whole run sits in
 * one physically contiguous buffer prepared before the measured interval, so
 * that the interval holds only driver and device work: requests of
 * disk-request sectors, one command at a time on ATA, batches of disk-batch
 * requests with one notification each on virtio, and with one doorbell each
 * on the passthrough controller.
 *
 * The pattern written to sector s with seed x is 64 little-endian quadwords:
 *   q[0] = s, q[1] = x, q[i] = (x * 0x9e3779b97f4a7c15 ^ s * 0xc2b2ae3d27d4eb4f)
 *                              + i * 0x0101010101010101   for i = 2..63
 * (mod 2^64), so a sector's first eight bytes name it in a hex dump. The
 * check of disk-write and disk-read is FNV-1a over the quadwords of all n
 * sectors in order, so a disk-read after a disk-write of the same sectors
 * and seed reports the same check. */
#include "disk_workloads.h"

#include "arch.h"
#include "ata.h"
#include "boot.h"
#include "cpu.h"
#include "lib.h"
#include "memory.h"
#include "passthrough.h"
#include "virtio_blk.h"

#define PATTERN_SEED_MULTIPLIER 0x9e3779b97f4a7c15ull
#define PATTERN_SECTOR_MULTIPLIER 0xc2b2ae3d27d4eb4full
#define PATTERN_STEP 0x0101010101010101ull
#define FNV_OFFSET_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

enum disk_model {
  DISK_MODEL_ATA,
  DISK_MODEL_VIRTIO,
  DISK_MODEL_PASSTHROUGH,
};

enum disk_direction {
  DISK_DIRECTION_READ,
  DISK_DIRECTION_WRITE,
};

enum disk_job {
  DISK_JOB_WRITE,
  DISK_JOB_READ,
  DISK_JOB_VERIFY,
};

struct disk {
  enum disk_model model;
  uint64_t capacity; /* sectors */
  uint32_t request_sectors;
  uint32_t batch_requests; /* virtio: per notification; passthrough: per doorbell */
  uint64_t requests;       /* ATA commands issued; the others count their own */
};

static const char* model_name(enum disk_model model) {
  switch (model) {
    case DISK_MODEL_ATA:
      return "ata";
    case DISK_MODEL_VIRTIO:
      return "virtio";
    case DISK_MODEL_PASSTHROUGH:
      return "passthrough";
  }
  return "unknown";
}

static const char* driver_problem(const struct disk* disk) {
  switch (disk->model) {
    case DISK_MODEL_ATA:
      return ata_problem();
    case DISK_MODEL_VIRTIO:
      return virtio_blk_problem();
    case DISK_MODEL_PASSTHROUGH:
      return passthrough_problem();
  }
  return "unknown disk model";
}

/* Requests the driver has issued since initialization: ATA's are counted
 * here, the others count their own. */
static uint64_t driver_requests(const struct disk* disk) {
  switch (disk->model) {
    case DISK_MODEL_ATA:
      return disk->requests;
    case DISK_MODEL_VIRTIO:
      return virtio_blk_requests();
    case DISK_MODEL_PASSTHROUGH:
      return passthrough_requests();
  }
  return 0;
}

static void fail(struct workload_outcome* outcome, const char* workload, const char* reason) {
  console_print("vmlab: %s: %s\n", workload, reason);
  outcome->status = RUN_STATUS_ERROR;
}

static bool open_ata(const struct vmlab_device* device, const struct run_options* options,
                     struct disk* disk) {
  enum ata_addressing addressing =
      options->disk.ata_lba48 ? ATA_ADDRESSING_LBA48 : ATA_ADDRESSING_AUTOMATIC;
  if (!ata_init(device, options->disk.completion, addressing)) return false;
  const struct ata_identity* identity = ata_identity();
  disk->model = DISK_MODEL_ATA;
  disk->capacity = identity->sectors;
  disk->batch_requests = 1;
  console_print(
      "vmlab: ATA disk \"%s\" serial \"%s\" at port 0x%lx irq %u: %lu sectors, %s, "
      "%s commands, %s\n",
      identity->model, identity->serial, device->base, device->irq, identity->sectors,
      identity->lba48 ? "LBA48" : "LBA28 only",
      options->disk.ata_lba48 ? "48-bit (forced)" : "28-bit unless 48 needed",
      options->disk.completion == DISK_COMPLETION_INTERRUPT ? "interrupts" : "polled");
  return true;
}

/* The batch a run asked for (disk-batch), at most what the device can hold. */
static void limit_batch(struct disk* disk, const struct run_options* options, uint32_t limit) {
  disk->batch_requests =
      options->disk.batch_requests < limit ? options->disk.batch_requests : limit;
}

static void report_lowered_batch(const struct disk* disk, const struct run_options* options,
                                 const char* why) {
  if (disk->batch_requests < options->disk.batch_requests) {
    console_print("vmlab: disk-batch=%u lowered to %u: %s\n", options->disk.batch_requests,
                  disk->batch_requests, why);
  }
}

static bool open_virtio(const struct vmlab_device* device, const struct run_options* options,
                        struct disk* disk) {
  struct virtio_blk_settings settings = {
      .completion = options->disk.completion,
      .indirect = options->disk.virtio_indirect,
      .event_index = options->disk.virtio_event_index,
  };
  if (!virtio_blk_init(device, &settings)) return false;
  disk->model = DISK_MODEL_VIRTIO;
  disk->capacity = virtio_blk_capacity();
  uint32_t limit = virtio_blk_batch_limit(disk->request_sectors * DISK_SECTOR_SIZE);
  if (limit == 0) return false;
  limit_batch(disk, options, limit);
  console_print(
      "vmlab: virtio-blk disk \"%s\" at 0x%lx irq %u: %lu sectors, queue %u, seg_max %u, "
      "size_max %u, indirect %s, event-idx %s, %s, batch %u\n",
      virtio_blk_identity(), device->base, device->irq, disk->capacity, virtio_blk_queue_size(),
      virtio_blk_seg_max(), virtio_blk_size_max(), virtio_blk_indirect() ? "on" : "off",
      virtio_blk_event_index() ? "on" : "off",
      options->disk.completion == DISK_COMPLETION_INTERRUPT ? "interrupts" : "polled",
      disk->batch_requests);
  report_lowered_batch(disk, options, "that many requests fill the queue");
  return true;
}

static bool open_passthrough(const struct vmlab_device* device, const struct run_options* options,
                             struct disk* disk) {
  if (!passthrough_init(device, options->disk.completion)) return false;
  disk->model = DISK_MODEL_PASSTHROUGH;
  disk->capacity = passthrough_capacity();
  limit_batch(disk, options, passthrough_batch_limit());
  console_print("vmlab: passthrough disk at 0x%lx irq %u: %lu sectors, queue %u, %s, batch %u\n",
                device->base, device->irq, disk->capacity, passthrough_queue_entries(),
                options->disk.completion == DISK_COMPLETION_INTERRUPT ? "interrupts" : "polled",
                disk->batch_requests);
  report_lowered_batch(disk, options, "the device keeps one queue slot free");
  return true;
}

/* The first disk in the device table: an ATA channel, a virtio-mmio window
 * whose DeviceID says block (QEMU's microvm lists every transport with a
 * device, whatever the device is), or the passthrough controller. */
static bool open_disk(const struct run_options* options, struct disk* disk,
                      struct workload_outcome* outcome) {
  const struct vmlab_boot_info* info = boot_info();
  const char* workload = options->workload->name;
  *disk = (struct disk){.request_sectors = options->disk.request_sectors};
  for (uint32_t index = 0; index < info->device_count; ++index) {
    const struct vmlab_device* device = &info->devices[index];
    bool opened;
    if (device->kind == VMLAB_DEVICE_ATA) {
      opened = open_ata(device, options, disk);
      if (!opened) fail(outcome, workload, ata_problem());
    } else if (device->kind == VMLAB_DEVICE_VIRTIO_MMIO && virtio_blk_probe(device)) {
      opened = open_virtio(device, options, disk);
      if (!opened) fail(outcome, workload, virtio_blk_problem());
    } else if (passthrough_probe(device)) {
      opened = open_passthrough(device, options, disk);
      if (!opened) fail(outcome, workload, passthrough_problem());
    } else {
      continue;
    }
    return opened;
  }
  const char* legacy = virtio_blk_problem();
  fail(outcome, workload, legacy[0] != '\0' ? legacy : "no disk: run with --disk PATH");
  return false;
}

static void close_disk(const struct disk* disk) {
  switch (disk->model) {
    case DISK_MODEL_ATA:
      ata_finish();
      break;
    case DISK_MODEL_VIRTIO:
      virtio_blk_finish();
      break;
    case DISK_MODEL_PASSTHROUGH:
      passthrough_finish();
      break;
  }
}

/* Up to batch_requests requests of request_sectors, one doorbell. */
static bool transfer_passthrough_batch(struct disk* disk, enum disk_direction direction,
                                       uint64_t first_sector, uint64_t count,
                                       uint64_t buffer_physical, uint64_t* done) {
  enum passthrough_operation operation =
      direction == DISK_DIRECTION_READ ? PASSTHROUGH_OPERATION_READ : PASSTHROUGH_OPERATION_WRITE;
  for (uint32_t queued = 0; queued < disk->batch_requests && *done < count; ++queued) {
    uint64_t remaining = count - *done;
    uint32_t sectors =
        remaining < disk->request_sectors ? (uint32_t)remaining : disk->request_sectors;
    if (!passthrough_queue(operation, first_sector + *done,
                           buffer_physical + *done * DISK_SECTOR_SIZE, sectors)) {
      return false;
    }
    *done += sectors;
  }
  return passthrough_submit();
}

/* count sectors from first_sector to or from the buffer, in requests of
 * request_sectors. */
static bool transfer(struct disk* disk, enum disk_direction direction, uint64_t first_sector,
                     uint64_t count, uint64_t buffer_physical) {
  uint64_t done = 0;
  while (done < count) {
    if (disk->model == DISK_MODEL_ATA) {
      uint64_t remaining = count - done;
      uint32_t sectors =
          remaining < disk->request_sectors ? (uint32_t)remaining : disk->request_sectors;
      void* buffer = physical_to_virtual(buffer_physical + done * DISK_SECTOR_SIZE);
      bool ok = direction == DISK_DIRECTION_READ ? ata_read(first_sector + done, sectors, buffer)
                                                 : ata_write(first_sector + done, sectors, buffer);
      if (!ok) return false;
      ++disk->requests;
      done += sectors;
      continue;
    }
    if (disk->model == DISK_MODEL_PASSTHROUGH) {
      if (!transfer_passthrough_batch(disk, direction, first_sector, count, buffer_physical,
                                      &done)) {
        return false;
      }
      continue;
    }
    enum virtio_blk_operation operation =
        direction == DISK_DIRECTION_READ ? VIRTIO_BLK_OPERATION_READ : VIRTIO_BLK_OPERATION_WRITE;
    for (uint32_t queued = 0; queued < disk->batch_requests && done < count; ++queued) {
      uint64_t remaining = count - done;
      uint32_t sectors =
          remaining < disk->request_sectors ? (uint32_t)remaining : disk->request_sectors;
      if (!virtio_blk_queue(operation, first_sector + done,
                            buffer_physical + done * DISK_SECTOR_SIZE,
                            sectors * DISK_SECTOR_SIZE)) {
        return false;
      }
      done += sectors;
    }
    if (!virtio_blk_submit()) return false;
  }
  return true;
}

static bool flush(struct disk* disk) {
  if (disk->model == DISK_MODEL_ATA) {
    if (!ata_flush()) return false;
    ++disk->requests;
    return true;
  }
  if (disk->model == DISK_MODEL_PASSTHROUGH) {
    return passthrough_queue(PASSTHROUGH_OPERATION_FLUSH, 0, 0, 0) && passthrough_submit();
  }
  return virtio_blk_queue(VIRTIO_BLK_OPERATION_FLUSH, 0, 0, 0) && virtio_blk_submit();
}

/* One physically contiguous run of frames (virtio and passthrough requests
 * point into it by physical address), or 0. The bump allocator hands out
 * consecutive frames except across the kernel image or a hole in RAM, where
 * the run starts over. */
static uint64_t allocate_contiguous(uint64_t pages) {
  uint64_t first = 0;
  uint64_t have = 0;
  while (have < pages) {
    uint64_t frame = frame_allocate();
    if (frame == 0) return 0;
    if (have != 0 && frame == first + have * PAGE_SIZE) {
      ++have;
    } else {
      first = frame;
      have = 1;
    }
  }
  return first;
}

static void fill_pattern(uint64_t* words, uint64_t first_sector, uint64_t count, uint64_t seed) {
  for (uint64_t sector = first_sector; sector < first_sector + count; ++sector) {
    uint64_t value =
        (seed * PATTERN_SEED_MULTIPLIER ^ sector * PATTERN_SECTOR_MULTIPLIER) + 2 * PATTERN_STEP;
    words[0] = sector;
    words[1] = seed;
    for (unsigned index = 2; index < DISK_SECTOR_QUADWORDS; ++index) {
      words[index] = value;
      value += PATTERN_STEP;
    }
    words += DISK_SECTOR_QUADWORDS;
  }
}

static uint64_t checksum(const uint64_t* words, uint64_t count) {
  uint64_t hash = FNV_OFFSET_BASIS;
  for (uint64_t index = 0; index < count; ++index)
    hash = (hash ^ words[index]) * FNV_PRIME;
  return hash;
}

/* VMLAB-DISK model=ata|virtio|passthrough bytes=B requests=R mbps=X cycles_per_request=C
 * with X in 10^6 bytes per second to three decimals, or "unknown" without a
 * TSC rate. Integer arithmetic only: no floating point in the guest. */
static void print_disk_line(enum disk_model model, uint64_t bytes, uint64_t requests,
                            uint64_t cycles) {
  char rate[32];
  uint64_t hz = cpu_tsc_hz();
  if (hz == 0 || cycles == 0 || bytes > (UINT64_MAX / hz)) {
    format_to(rate, sizeof rate, "unknown");
  } else {
    uint64_t thousandths = bytes * hz / cycles / 1000; /* bytes per second / 1000 */
    format_to(rate, sizeof rate, "%lu.%lu%lu%lu", thousandths / 1000, thousandths / 100 % 10,
              thousandths / 10 % 10, thousandths % 10);
  }
  debug_console_print("VMLAB-DISK model=%s bytes=%lu requests=%lu mbps=%s cycles_per_request=%lu\n",
                      model_name(model), bytes, requests, rate,
                      requests != 0 ? cycles / requests : 0);
}

static void run_disk(const struct run_options* options, struct workload_outcome* outcome,
                     enum disk_job job) {
  const char* workload = options->workload->name;
  struct disk disk;
  if (!open_disk(options, &disk, outcome)) return;

  uint64_t count = options->count;
  uint64_t first_sector = options->disk.first_sector;
  char message[160];
  if (first_sector > disk.capacity || count > disk.capacity - first_sector) {
    format_to(message, sizeof message,
              "disk-sector=%lu n=%lu goes past the end of the disk (%lu sectors)", first_sector,
              count, disk.capacity);
    fail(outcome, workload, message);
    close_disk(&disk);
    return;
  }
  if (job != DISK_JOB_READ && disk.model == DISK_MODEL_VIRTIO && virtio_blk_read_only()) {
    fail(outcome, workload, "the disk is read-only");
    close_disk(&disk);
    return;
  }
  uint64_t pages = (count * DISK_SECTOR_SIZE + PAGE_SIZE - 1) / PAGE_SIZE;
  uint64_t buffers = job == DISK_JOB_VERIFY ? 2 : 1;
  if (frames_free() < buffers * pages + 16) {
    format_to(message, sizeof message,
              "n=%lu needs %lu free frames, the VM has %lu: give it more memory or lower n", count,
              buffers * pages, frames_free());
    fail(outcome, workload, message);
    close_disk(&disk);
    return;
  }
  uint64_t data = pages != 0 ? allocate_contiguous(pages) : 0;
  uint64_t read_back = job == DISK_JOB_VERIFY && pages != 0 ? allocate_contiguous(pages) : 0;
  if (pages != 0 && (data == 0 || (job == DISK_JOB_VERIFY && read_back == 0))) {
    fail(outcome, workload, "no contiguous RAM for the data buffer: give the VM more memory");
    close_disk(&disk);
    return;
  }
  uint64_t* words = physical_to_virtual(data);
  if (job != DISK_JOB_READ) fill_pattern(words, first_sector, count, options->disk.seed);

  uint64_t requests_before = driver_requests(&disk);
  uint64_t virtio_notifications_before = virtio_blk_notifications();
  uint64_t passthrough_doorbells_before = passthrough_doorbells();
  measurement_begin();
  bool ok = false;
  switch (job) {
    case DISK_JOB_WRITE:
      ok = transfer(&disk, DISK_DIRECTION_WRITE, first_sector, count, data) && flush(&disk);
      break;
    case DISK_JOB_READ:
      ok = transfer(&disk, DISK_DIRECTION_READ, first_sector, count, data);
      break;
    case DISK_JOB_VERIFY:
      ok = transfer(&disk, DISK_DIRECTION_WRITE, first_sector, count, data) && flush(&disk) &&
           transfer(&disk, DISK_DIRECTION_READ, first_sector, count, read_back);
      break;
  }
  measurement_end();
  close_disk(&disk);
  outcome->cycles = measurement_cycles();
  if (!ok) {
    fail(outcome, workload, driver_problem(&disk));
    return;
  }

  uint64_t requests = driver_requests(&disk) - requests_before;
  uint64_t bytes = count * DISK_SECTOR_SIZE * (job == DISK_JOB_VERIFY ? 2 : 1);
  print_disk_line(disk.model, bytes, requests, outcome->cycles);
  if (disk.model == DISK_MODEL_VIRTIO) {
    console_print("vmlab: %lu virtio-blk requests, %lu notifications\n", requests,
                  virtio_blk_notifications() - virtio_notifications_before);
  } else if (disk.model == DISK_MODEL_PASSTHROUGH) {
    console_print("vmlab: %lu passthrough commands, %lu doorbells\n", requests,
                  passthrough_doorbells() - passthrough_doorbells_before);
  }

  if (job != DISK_JOB_VERIFY) {
    outcome->check = checksum(words, count * DISK_SECTOR_QUADWORDS);
    return;
  }
  const uint64_t* read_words = physical_to_virtual(read_back);
  uint64_t mismatches = 0;
  uint64_t first_mismatch = 0;
  for (uint64_t sector = 0; sector < count; ++sector) {
    if (disk_sector_equal(words + sector * DISK_SECTOR_QUADWORDS,
                          read_words + sector * DISK_SECTOR_QUADWORDS)) {
      continue;
    }
    if (mismatches == 0) first_mismatch = first_sector + sector;
    ++mismatches;
  }
  outcome->check = mismatches;
  if (mismatches != 0) {
    format_to(message, sizeof message, "%lu of %lu sectors read back differ, the first is %lu",
              mismatches, count, first_mismatch);
    fail(outcome, workload, message);
  }
}

void run_disk_write(const struct run_options* options, struct workload_outcome* outcome) {
  run_disk(options, outcome, DISK_JOB_WRITE);
}

void run_disk_read(const struct run_options* options, struct workload_outcome* outcome) {
  run_disk(options, outcome, DISK_JOB_READ);
}

void run_disk_verify(const struct run_options* options, struct workload_outcome* outcome) {
  run_disk(options, outcome, DISK_JOB_VERIFY);
}
