/* The run's bookkeeping: guest event counters, the measured interval, and the
 * result line the host parses (DESIGN.md 3). */
#ifndef VMLAB_GUEST_RESULT_H
#define VMLAB_GUEST_RESULT_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu.h"

enum run_status {
  RUN_STATUS_OK = 0,
  RUN_STATUS_FAULT = 1,    /* unexpected exception in the kernel */
  RUN_STATUS_SEGFAULT = 2, /* the user task faulted */
  RUN_STATUS_ERROR = 3,    /* bad command line or a request the VM cannot meet */
};

struct guest_counters {
  uint64_t syscalls;
  uint64_t irqs;       /* every hardware interrupt taken */
  uint64_t pagefaults; /* demand faults handled */
};

extern struct guest_counters guest_counters;

void result_set_run(const char* workload_name, uint64_t count);

/* Bracket the measured part of a workload: the counters in the result line
 * are deltas over this interval, the default cycles its rdtsc difference. */
/* With marks on (window=1), measurement_begin and measurement_end print
 * "VMLAB-WINDOW begin" and "VMLAB-WINDOW end" on the debug console, so that
 * a VMM can count what happens inside the measured interval alone (the
 * benchmark suite: cli/include/vmlab/runner.hpp, MeasurementWindow). */
void measurement_set_marks(bool on);
void measurement_begin(void);
void measurement_end(void);
uint64_t measurement_cycles(void);

/* Prints the result line, writes the exit status and stops. */
_Noreturn void result_finish(enum run_status status, uint64_t cycles, uint64_t check);

/* An exception the kernel did not expect: report it and end with status=fault. */
_Noreturn void fatal_exception(const struct trap_frame* frame, uint64_t fault_address);

#endif /* VMLAB_GUEST_RESULT_H */
