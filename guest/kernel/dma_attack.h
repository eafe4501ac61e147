/* The dma-attack workload: the guest asks the passthrough controller to DMA
 * into memory it should not reach (the monitor, past the end of RAM, the
 * reserved low megabyte, its own top-level page table) and reports which
 * transfers the VMM's IOMMU blocked, one VMLAB-DMA line per target. */
#ifndef VMLAB_GUEST_DMA_ATTACK_H
#define VMLAB_GUEST_DMA_ATTACK_H

#include "workloads.h"

void run_dma_attack(const struct run_options* options, struct workload_outcome* outcome);

#endif /* VMLAB_GUEST_DMA_ATTACK_H */
