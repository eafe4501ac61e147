#include "expect_fault.h"

#include <stddef.h>

#include "arch.h"

/* expect_fault.S */
uint64_t recovery_call(struct recovery_point* point, void (*attempt)(void* argument),
                       void* argument);
_Noreturn void recovery_resume(const struct recovery_point* point, bool enable_interrupts);

/* Set by recovery_call once the point is complete, cleared when the attempt
 * returns or its fault is taken. */
struct recovery_point* armed_recovery_point;

bool expect_fault(void (*attempt)(void* argument), void* argument, struct fault_record* record) {
  *record = (struct fault_record){0};
  struct recovery_point point = {0, 0, record};
  return recovery_call(&point, attempt, argument) != 0;
}

bool expect_fault_armed(void) {
  return armed_recovery_point != NULL;
}

_Noreturn void expect_fault_take(const struct trap_frame* frame, uint64_t fault_address) {
  const struct recovery_point* point = armed_recovery_point;
  /* Disarmed first: a fault from here on is a kernel bug and must be fatal,
   * not a loop back into the recovery point. */
  armed_recovery_point = NULL;
  *point->record = (struct fault_record){
      .vector = frame->vector,
      .error_code = frame->error_code,
      .address = fault_address,
      .rip = frame->rip,
  };
  /* The gate cleared IF on entry (Intel SDM vol. 3A, 6.12.1.3); the attempt
   * ran with the interrupted RFLAGS.IF, so that is what it returns with. */
  recovery_resume(point, (frame->rflags & RFLAGS_INTERRUPT_ENABLE) != 0);
}

static struct fault_site* armed_fault_site;

void fault_site_arm(struct fault_site* site) {
  site->taken = 0;
  armed_fault_site = site;
}

void fault_site_disarm(void) {
  armed_fault_site = NULL;
}

bool fault_site_take(struct trap_frame* frame) {
  struct fault_site* site = armed_fault_site;
  if (site == NULL || frame->vector != site->vector || frame->rip != site->rip) return false;
  ++site->taken;
  frame->rip = site->resume;
  return true;
}
