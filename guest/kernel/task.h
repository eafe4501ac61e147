/* The single user task: its address space, its entry into user mode, its
 * system calls and its demand-paged region. */
#ifndef VMLAB_GUEST_TASK_H
#define VMLAB_GUEST_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu.h"

enum task_outcome {
  TASK_OUTCOME_EXITED = 0,
  TASK_OUTCOME_SEGFAULT = 1,
};

struct task_report {
  enum task_outcome outcome;
  uint64_t exit_status;
  bool reported; /* the task called report() */
  uint64_t reported_cycles;
  uint64_t reported_check;
  uint64_t bytes_written;
  /* For TASK_OUTCOME_SEGFAULT: what the task did. */
  uint64_t fault_vector;
  uint64_t fault_error_code;
  uint64_t fault_rip;
  uint64_t fault_address;
};

/* Builds the task's address space with the user program loaded. Returns false
 * (and prints why) when RAM runs out. */
bool task_create(void);

/* Runs the task at CPL3 until it exits or faults. */
void task_run(uint64_t workload, uint64_t count, struct task_report* report);

/* Maps a fresh zeroed page for a not-present fault in the demand region and
 * returns true; false for any other fault. */
bool task_handle_page_fault(const struct trap_frame* frame, uint64_t fault_address);

/* Ends the task because of a fault it caused; does not return. */
_Noreturn void task_end_on_fault(const struct trap_frame* frame, uint64_t fault_address);

#endif /* VMLAB_GUEST_TASK_H */
