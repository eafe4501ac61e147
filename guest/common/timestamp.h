/* The time-stamp counter, read the same way by the kernel and the user
 * program: rdtsc, not serialized (Intel SDM vol. 2B, RDTSC), which is what
 * the workloads' cycle counts are measured with. */
#ifndef VMLAB_GUEST_TIMESTAMP_H
#define VMLAB_GUEST_TIMESTAMP_H

#include <stdint.h>

static inline uint64_t read_timestamp_counter(void) {
  uint32_t low;
  uint32_t high;
  __asm__ volatile("rdtsc" : "=a"(low), "=d"(high) : : "memory");
  return ((uint64_t)high << 32) | low;
}

#endif
