/* The user program: the part of each workload that runs at CPL3, where this
 * platform runs code at native speed (PLATFORM.md). It measures itself with
 * rdtsc and hands the result to the kernel with report(). */
#include <stdint.h>

#include "integer_mix.h"
#include "timestamp.h"
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

/* The integer mix (integer_mix.h) at CPL3; kernel-compute runs the same in
 * the kernel. */
static int compute(uint64_t count) {
  uint64_t start = read_timestamp_counter();
  uint64_t state = integer_mix(count);
  report(read_timestamp_counter() - start, state);
  return 0;
}

/* A store to a supervisor-only page: the page is present, so the fault is a
 * protection violation, which ends the task (status=segfault). */
static int store_to_kernel(void) {
  *(volatile uint8_t*)(uintptr_t)VMLAB_KERNEL_IMAGE_BASE = 0;
  return 0;
}

/* The pseudo-descriptor lgdt reads (Intel SDM vol. 2A LGDT, 64-bit mode). */
struct table_register {
  uint16_t limit;
  uint64_t base;
} __attribute__((packed));

#define MSR_LSTAR 0xc0000082u
#define EXIT_PORT 0xf4

/* One privileged instruction, or one access only the kernel may make, at
 * CPL3. With IOPL 0 and no I/O bitmap, cli, hlt, mov to CR3, out, lgdt,
 * wrmsr and invlpg raise #GP(0) (Intel SDM vol. 3A, 5.9 "Privileged
 * Instructions", and vol. 1, 19.5 "I/O Permission Bit Map"); the store to a
 * supervisor page and the jump into the monitor's stubs raise #PF (vol. 3A,
 * 4.6). Each is chosen to do damage if it ever ran: the fault ends the task
 * and the kernel records it. Returning means the instruction did not fault. */
static int privileged(uint64_t which) {
  switch (which) {
    case VMLAB_USER_PRIVILEGED_CLI:
      __asm__ volatile("cli" : : : "memory");
      break;
    case VMLAB_USER_PRIVILEGED_HLT:
      __asm__ volatile("hlt" : : : "memory");
      break;
    case VMLAB_USER_PRIVILEGED_MOV_CR3:
      __asm__ volatile("mov %0, %%cr3" : : "r"(0ull) : "memory");
      break;
    case VMLAB_USER_PRIVILEGED_OUT:
      /* Status 0 to the exit port would end the whole run as a success. */
      __asm__ volatile("outb %0, %1" : : "a"((uint8_t)0), "N"(EXIT_PORT) : "memory");
      break;
    case VMLAB_USER_PRIVILEGED_LGDT: {
      const struct table_register monitor_gdt = {0x47, VMLAB_MONITOR_VIRTUAL_BASE};
      __asm__ volatile("lgdt %0" : : "m"(monitor_gdt) : "memory");
      break;
    }
    case VMLAB_USER_PRIVILEGED_WRMSR: {
      /* Point the SYSCALL entry (LSTAR) at user code. */
      const uint64_t entry = (uint64_t)(uintptr_t)privileged;
      __asm__ volatile("wrmsr"
                       :
                       : "c"(MSR_LSTAR), "a"((uint32_t)entry), "d"((uint32_t)(entry >> 32))
                       : "memory");
      break;
    }
    case VMLAB_USER_PRIVILEGED_INVLPG:
      __asm__ volatile("invlpg (%0)" : : "r"(VMLAB_KERNEL_IMAGE_BASE) : "memory");
      break;
    case VMLAB_USER_PRIVILEGED_KERNEL_WRITE:
      return store_to_kernel();
    case VMLAB_USER_PRIVILEGED_MONITOR_JUMP:
      __asm__ volatile("jmp *%0" : : "r"(VMLAB_MONITOR_STUBS) : "memory");
      break;
    default:
      return 1;
  }
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
    case VMLAB_USER_WORKLOAD_PRIVILEGED:
      return privileged(count);
    default:
      return 1;
  }
}
