/* The workloads a run can select with workload=NAME n=COUNT: small, countable
 * pieces of work, each measuring itself (DESIGN.md 3). */
#ifndef VMLAB_GUEST_WORKLOADS_H
#define VMLAB_GUEST_WORKLOADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "console.h"
#include "disk.h"
#include "result.h"

struct workload;

/* The disk workloads' keys (disk_workloads.c). */
struct disk_options {
  uint64_t first_sector;           /* disk-sector=S */
  uint32_t request_sectors;        /* disk-request=K: sectors per request (ATA: per command) */
  uint32_t batch_requests;         /* disk-batch=B: virtio requests per notification */
  uint64_t seed;                   /* disk-seed=X: the write pattern's seed */
  enum disk_completion completion; /* disk-irq=0|1 */
  bool ata_lba48;                  /* ata-lba48=1: the EXT commands for every request */
  bool virtio_indirect;            /* virtio-indirect=0|1: VIRTIO_RING_F_INDIRECT_DESC */
  bool virtio_event_index;         /* virtio-event-idx=0|1: VIRTIO_RING_F_EVENT_IDX */
};

#define DISK_DEFAULT_REQUEST_SECTORS 8u /* 4 KiB */
#define DISK_MAXIMUM_REQUEST_SECTORS 256u
#define DISK_DEFAULT_BATCH_REQUESTS 32u
#define DISK_MAXIMUM_BATCH_REQUESTS 256u
#define DISK_DEFAULT_SEED 1u

struct run_options {
  const struct workload* workload;
  uint64_t count;
  enum console_mode console;
  uint32_t hz;
  /* probes=no-segment-checks: leave out lar, lsl, verr and verw, which some
   * KVM backends cannot emulate at CPL0 (README.md, kvm_pvm). */
  bool skip_segment_checks;
  /* window=1: the measured interval is marked on the debug console
   * (result.h, measurement_set_marks). */
  bool window;
  struct disk_options disk;
};

struct workload_outcome {
  enum run_status status;
  uint64_t cycles;
  uint64_t check;
};

struct workload {
  const char* name;
  uint64_t default_count;
  uint64_t maximum_count;
  void (*run)(const struct run_options* options, struct workload_outcome* outcome);
};

#define DEFAULT_TIMER_HZ 100u

const struct workload* workload_find(const char* name, size_t length);

#endif /* VMLAB_GUEST_WORKLOADS_H */
