/* The integer mix of the compute workloads, one copy for the kernel and the
 * user program: `compute` runs it at CPL3, `kernel-compute` in the kernel,
 * and both report its result as `check`, so the two can be compared for the
 * same n (and against a host-side oracle).
 *
 * xorshift64 (Marsaglia, "Xorshift RNGs", 2003): integer-only work with a
 * result that depends on every round. Each round is shifts and xors on one
 * register, nothing sensitive and no memory access, so wherever it runs the
 * CPU (or a translator) only has ordinary arithmetic to execute. */
#ifndef VMLAB_GUEST_INTEGER_MIX_H
#define VMLAB_GUEST_INTEGER_MIX_H

#include <stdint.h>

#define INTEGER_MIX_SEED 0x9e3779b97f4a7c15ull

static inline uint64_t integer_mix(uint64_t rounds) {
  uint64_t state = INTEGER_MIX_SEED;
  /* Two compiler barriers: the loop needs the first one's output and feeds
   * the second, and a memory clobber keeps each in its place among the
   * caller's rdtsc reads (timestamp.h) and calls, so the rounds run between
   * whatever the caller measures with. Neither emits an instruction. */
  __asm__ volatile("" : "+r"(state) : : "memory");
  for (uint64_t round = 0; round < rounds; ++round) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
  }
  __asm__ volatile("" : "+r"(state) : : "memory");
  return state;
}

#endif /* VMLAB_GUEST_INTEGER_MIX_H */
