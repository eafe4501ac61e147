/* The hostile workload: a guest kernel and a user task that go after the
 * monitor of a deprivileged (--cpu full) run and after privileged state. */
#ifndef VMLAB_GUEST_HOSTILE_H
#define VMLAB_GUEST_HOSTILE_H

#include <stdbool.h>
#include <stdint.h>

/* Runs every attempt, printing one VMLAB-HOSTILE line each, and stores how
 * many ended as expected in *as_expected. Returns false (and prints why) if
 * the attempts could not be set up (RAM ran out). */
bool run_hostile(uint64_t* as_expected);

#endif /* VMLAB_GUEST_HOSTILE_H */
