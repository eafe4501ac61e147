/* The user program: the part of each workload that runs at CPL3, where this
 * platform runs code at native speed (PLATFORM.md). It measures itself with
 * rdtsc and hands the result to the kernel with report(). */
#include <stdint.h>

#include "user_abi.h"

int user_main(uint64_t workload, uint64_t count);

/* System calls (guest/common/user_abi.h). syscall overwrites RCX and R11. */
static inline uint64_t system_call(uint64_t number, uint64_t argument0, uint64_t argument1) {
  uint64_t result;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(number), "D"(argument0), "S"(argument1)
                   : "rcx", "r11", "memory");
  return result;
}

static inline uint64_t read_timestamp_counter(void) {
  uint32_t low;
  uint32_t high;
  __asm__ volatile("rdtsc" : "=a"(low), "=d"(high) : : "memory");
  return ((uint64_t)high << 32) | low;
}

static void report(uint64_t cycles, uint64_t check) {
  system_call(VMLAB_SYSCALL_REPORT, cycles, check);
}

static int hello(uint64_t count) {
  static const char message[] = VMLAB_HELLO_MESSAGE;
  for (uint64_t index = 0; index < count; ++index) {
    if (system_call(VMLAB_SYSCALL_WRITE, (uint64_t)(uintptr_t)message, sizeof message - 1) !=
        sizeof message - 1) {
      return 1;
    }
  }
  system_call(VMLAB_SYSCALL_TICKS, 0, 0);
  return 0;
}

static int null_syscalls(uint64_t count) {
  uint64_t start = read_timestamp_counter();
  for (uint64_t index = 0; index < count; ++index)
    system_call(VMLAB_SYSCALL_NULL, 0, 0);
  report(read_timestamp_counter() - start, 0);
  return 0;
}

/* One byte per page: every first write takes a not-present fault that the
 * kernel answers with a fresh zeroed page; the read-back sum proves each page
 * kept its byte. */
static int touch_pages(uint64_t count) {
  volatile uint8_t* region = (volatile uint8_t*)(uintptr_t)VMLAB_USER_DEMAND_BASE;
  uint64_t start = read_timestamp_counter();
  for (uint64_t page = 0; page < count; ++page) {
    region[page * VMLAB_PAGE_SIZE] = (uint8_t)(page + 1);
  }
  uint64_t sum = 0;
  for (uint64_t page = 0; page < count; ++page)
    sum += region[page * VMLAB_PAGE_SIZE];
  report(read_timestamp_counter() - start, sum);
  return 0;
}

/* xorshift64 (Marsaglia, "Xorshift RNGs", 2003): integer-only work with a
 * result that depends on every iteration. */
static int compute(uint64_t count) {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  uint64_t start = read_timestamp_counter();
  for (uint64_t index = 0; index < count; ++index) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
  }
  report(read_timestamp_counter() - start, state);
  return 0;
}

/* A store to a supervisor-only page: the page is present, so the fault is a
 * protection violation, which ends the task (status=segfault). */
static int store_to_kernel(void) {
  *(volatile uint8_t*)(uintptr_t)VMLAB_KERNEL_IMAGE_BASE = 0;
  return 0;
}

int user_main(uint64_t workload, uint64_t count) {
  switch (workload) {
    case VMLAB_USER_WORKLOAD_HELLO:
      return hello(count);
    case VMLAB_USER_WORKLOAD_SYSCALLS:
      return null_syscalls(count);
    case VMLAB_USER_WORKLOAD_PAGEFAULTS:
      return touch_pages(count);
    case VMLAB_USER_WORKLOAD_COMPUTE:
      return compute(count);
    case VMLAB_USER_WORKLOAD_SEGFAULT:
      return store_to_kernel();
    default:
      return 1;
  }
}
