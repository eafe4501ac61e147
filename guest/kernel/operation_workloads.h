/* The single-operation workloads: N of one operation a monitor handles,
 * after the nanobenchmarks of Adams and Agesen, "A Comparison of Software
 * and Hardware Techniques for x86 Virtualization" (ASPLOS 2006), which ran
 * in kernel mode as these do. Each measures its own loop. */
#ifndef VMLAB_GUEST_OPERATION_WORKLOADS_H
#define VMLAB_GUEST_OPERATION_WORKLOADS_H

#include "workloads.h"

void run_pio_out(const struct run_options* options, struct workload_outcome* outcome);
void run_cr8_write(const struct run_options* options, struct workload_outcome* outcome);
void run_call_ret(const struct run_options* options, struct workload_outcome* outcome);
void run_divide_error(const struct run_options* options, struct workload_outcome* outcome);
void run_pte_update(const struct run_options* options, struct workload_outcome* outcome);
void run_page_fault(const struct run_options* options, struct workload_outcome* outcome);
void run_pte_write(const struct run_options* options, struct workload_outcome* outcome);
void run_hypercall(const struct run_options* options, struct workload_outcome* outcome);
void run_interrupts(const struct run_options* options, struct workload_outcome* outcome);

#endif /* VMLAB_GUEST_OPERATION_WORKLOADS_H */
