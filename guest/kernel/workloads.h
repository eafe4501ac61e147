/* The workloads a run can select with workload=NAME n=COUNT: small, countable
 * pieces of work, each measuring itself (DESIGN.md 3). */
#ifndef VMLAB_GUEST_WORKLOADS_H
#define VMLAB_GUEST_WORKLOADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "console.h"
#include "result.h"

struct workload;

struct run_options {
  const struct workload* workload;
  uint64_t count;
  enum console_mode console;
  uint32_t hz;
  /* probes=no-segment-checks: leave out lar, lsl, verr and verw, which some
   * KVM backends cannot emulate at CPL0 (README.md, kvm_pvm). */
  bool skip_segment_checks;
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
