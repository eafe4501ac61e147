#include "result.h"

#include <stdbool.h>

#include "arch.h"
#include "console.h"

struct guest_counters guest_counters;

static const char* workload_name = "unknown";
static uint64_t workload_count;
static struct guest_counters counters_at_begin;
static struct guest_counters counters_at_end;
static uint64_t cycles_at_begin;
static uint64_t cycles_at_end;
static bool measuring;
static bool measured;
static bool finishing;
static bool marks;

/* The exit port value for each status; QEMU's isa-debug-exit turns value v
 * into process status (v << 1) | 1. */
static const struct {
  const char* name;
  uint8_t exit_status;
} status_table[] = {
    [RUN_STATUS_OK] = {"ok", 0},
    [RUN_STATUS_FAULT] = {"fault", 3},
    [RUN_STATUS_SEGFAULT] = {"segfault", 4},
    [RUN_STATUS_ERROR] = {"error", 2},
};
_Static_assert(sizeof status_table / sizeof status_table[0] == RUN_STATUS_ERROR + 1,
               "one entry per run status");

void result_set_run(const char* name, uint64_t count) {
  workload_name = name;
  workload_count = count;
}

void measurement_set_marks(bool on) {
  marks = on;
}

/* The marks are printed outside the interval they mark: before its first
 * rdtsc, after its last. */
void measurement_begin(void) {
  if (marks) debug_console_print("VMLAB-WINDOW begin\n");
  counters_at_begin = guest_counters;
  measuring = true;
  cycles_at_begin = read_timestamp_counter();
}

void measurement_end(void) {
  cycles_at_end = read_timestamp_counter();
  counters_at_end = guest_counters;
  measuring = false;
  measured = true;
  /* The empty line first: its one byte is what the VMM sees of the mark
   * inside the interval (the VMM takes its count there). */
  if (marks) debug_console_print("\nVMLAB-WINDOW end\n");
}

uint64_t measurement_cycles(void) {
  return cycles_at_end - cycles_at_begin;
}

_Noreturn void result_finish(enum run_status status, uint64_t cycles, uint64_t check) {
  if (finishing) machine_exit(status_table[RUN_STATUS_FAULT].exit_status);
  finishing = true;
  if (measuring) measurement_end();
  struct guest_counters delta = {0};
  if (measured) {
    delta.syscalls = counters_at_end.syscalls - counters_at_begin.syscalls;
    delta.irqs = counters_at_end.irqs - counters_at_begin.irqs;
    delta.pagefaults = counters_at_end.pagefaults - counters_at_begin.pagefaults;
  }
  console_print("vmlab: workload %s n=%lu: %s\n", workload_name, workload_count,
                status_table[status].name);
  debug_console_print(
      "VMLAB-RESULT workload=%s n=%lu status=%s cycles=%lu syscalls=%lu irqs=%lu pagefaults=%lu "
      "check=0x%lx\n",
      workload_name, workload_count, status_table[status].name, cycles, delta.syscalls, delta.irqs,
      delta.pagefaults, check);
  machine_exit(status_table[status].exit_status);
}

_Noreturn void fatal_exception(const struct trap_frame* frame, uint64_t fault_address) {
  if (finishing) machine_exit(status_table[RUN_STATUS_FAULT].exit_status);
  console_emergency_print(
      "vmlab: kernel fault: vector %lu error 0x%lx rip 0x%lx cr2 0x%lx rsp 0x%lx\n", frame->vector,
      frame->error_code, frame->rip, fault_address, frame->rsp);
  uint64_t cycles = 0;
  if (measuring) {
    measurement_end();
    cycles = measurement_cycles();
  }
  result_finish(RUN_STATUS_FAULT, cycles, 0);
}
