/* Expected faults: run a piece of kernel code that is meant to fault, and
 * come back with what the CPU reported instead of ending the run.
 *
 * expect_fault() saves a recovery point (the callee-saved registers, RSP and
 * a resume address, in expect_fault.S) and calls the attempt. If the attempt
 * raises an exception in kernel mode, trap_dispatch (trap.c) hands it to
 * expect_fault_take() before anything else, which records the vector, error
 * code, CR2 and RIP and jumps back to the recovery point, abandoning the
 * attempt's stack frames and the trap frame (a longjmp, not an iretq: the
 * attempt may have left the segment state broken). Any fault while nothing is
 * armed takes the normal, fatal path. One CPU, no nesting. */
#ifndef VMLAB_GUEST_EXPECT_FAULT_H
#define VMLAB_GUEST_EXPECT_FAULT_H

/* Offsets into struct recovery_point, shared with expect_fault.S. */
#define RECOVERY_POINT_RSP 0
#define RECOVERY_POINT_RIP 8

#ifndef __ASSEMBLER__

#include <stdbool.h>
#include <stdint.h>

#include "cpu.h"

struct fault_record {
  uint64_t vector;
  uint64_t error_code; /* 0 for vectors without one */
  uint64_t address;    /* CR2 for a page fault, else 0 */
  uint64_t rip;        /* where the faulting instruction was */
};

struct recovery_point {
  uint64_t rsp; /* RECOVERY_POINT_RSP */
  uint64_t rip; /* RECOVERY_POINT_RIP */
  struct fault_record* record;
};

/* Runs attempt(argument) in kernel mode. Returns true if it ended in an
 * exception, described in *record; false if it returned (*record zeroed).
 * Interrupts are as the attempt left them, or as at the fault. */
bool expect_fault(void (*attempt)(void* argument), void* argument, struct fault_record* record);

/* For trap.c: whether a kernel-mode exception now is an expected one. */
bool expect_fault_armed(void);

/* Records the exception and resumes at the armed recovery point. */
_Noreturn void expect_fault_take(const struct trap_frame* frame, uint64_t fault_address);

/* Resumable fault sites: one instruction that is meant to fault, over and
 * over (the divide-error workload). Where expect_fault() abandons the
 * attempt, a site is an ordinary handler return: the kernel's handler
 * counts the fault, moves the frame's RIP to `resume` (the instruction
 * after the faulting one) and returns with iretq (or para's IRET
 * hypercall), as a kernel that fixes up a fault does. Only a fault with
 * this vector, at exactly `rip`, in kernel mode matches: a fault anywhere
 * else, or one the VMM reported at another RIP, takes the fatal path. */
struct fault_site {
  uint64_t vector;
  uint64_t rip;    /* the faulting instruction */
  uint64_t resume; /* where the handler returns to */
  uint64_t taken;  /* faults handled here since fault_site_arm() */
};

void fault_site_arm(struct fault_site* site);
void fault_site_disarm(void);

/* For trap.c: a kernel-mode exception at the armed site is counted and the
 * frame moved on (true: return from the exception); false otherwise. */
bool fault_site_take(struct trap_frame* frame);

#endif /* __ASSEMBLER__ */

#endif /* VMLAB_GUEST_EXPECT_FAULT_H */
