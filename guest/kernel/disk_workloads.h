/* The disk workloads (workloads disk-write, disk-read, disk-verify): n sectors
 * through whichever disk the device table has, ATA or virtio-blk. */
#ifndef VMLAB_GUEST_DISK_WORKLOADS_H
#define VMLAB_GUEST_DISK_WORKLOADS_H

#include "workloads.h"

void run_disk_write(const struct run_options* options, struct workload_outcome* outcome);
void run_disk_read(const struct run_options* options, struct workload_outcome* outcome);
void run_disk_verify(const struct run_options* options, struct workload_outcome* outcome);

#endif /* VMLAB_GUEST_DISK_WORKLOADS_H */
