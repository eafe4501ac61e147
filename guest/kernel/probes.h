/* The sensitive-but-unprivileged instruction probes (workload `probes`). */
#ifndef VMLAB_GUEST_PROBES_H
#define VMLAB_GUEST_PROBES_H

#include <stdint.h>

/* Runs every probe in kernel mode, printing one VMLAB-PROBE line each, and
 * returns how many ran. Leaves interrupts disabled. */
uint64_t run_probes(void);

#endif /* VMLAB_GUEST_PROBES_H */
