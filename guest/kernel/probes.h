/* The sensitive-but-unprivileged instruction probes (workload `probes`). */
#ifndef VMLAB_GUEST_PROBES_H
#define VMLAB_GUEST_PROBES_H

#include <stdbool.h>
#include <stdint.h>

/* Runs every probe in kernel mode, printing one VMLAB-PROBE line each, and
 * returns how many ran. Leaves interrupts disabled. Without the segment
 * checks, lar, lsl, verr and verw are left out. */
uint64_t run_probes(bool segment_checks_skipped);

#endif /* VMLAB_GUEST_PROBES_H */
