/* Thin wrappers over the x86-64 instructions the kernel needs. Each is one
 * instruction in an asm block so that the compiler neither reorders it across
 * memory accesses ("memory" clobber where ordering matters) nor drops it. */
#ifndef VMLAB_GUEST_ARCH_H
#define VMLAB_GUEST_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "timestamp.h"

#define MSR_EFER 0xc0000080u
#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_FMASK 0xc0000084u

#define EFER_SYSCALL_ENABLE (1ull << 0)

#define RFLAGS_TRAP (1ull << 8)
#define RFLAGS_INTERRUPT_ENABLE (1ull << 9)
#define RFLAGS_DIRECTION (1ull << 10)
#define RFLAGS_ALIGNMENT_CHECK (1ull << 18)

static inline void native_port_write8(uint16_t port, uint8_t value) {
  __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port) : "memory");
}

static inline uint8_t native_port_read8(uint16_t port) {
  uint8_t value;
  __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port) : "memory");
  return value;
}

static inline uint64_t read_msr(uint32_t msr) {
  uint32_t low;
  uint32_t high;
  __asm__ volatile("rdmsr" : "=a"(low), "=d"(high) : "c"(msr));
  return ((uint64_t)high << 32) | low;
}

static inline void write_msr(uint32_t msr, uint64_t value) {
  __asm__ volatile("wrmsr"
                   :
                   : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32))
                   : "memory");
}

static inline uint64_t native_read_cr2(void) {
  uint64_t value;
  __asm__ volatile("mov %%cr2, %0" : "=r"(value));
  return value;
}

static inline void write_cr0(uint64_t value) {
  __asm__ volatile("mov %0, %%cr0" : : "r"(value) : "memory");
}

static inline void native_write_cr3(uint64_t value) {
  __asm__ volatile("mov %0, %%cr3" : : "r"(value) : "memory");
}

/* cli/sti, never popf: a deprivileged kernel's popf cannot change IF
 * (PLATFORM.md; Intel SDM vol. 2B, POPF), so IF is only ever changed here. */
static inline void native_interrupts_disable(void) {
  __asm__ volatile("cli" : : : "memory");
}

/* sti delays interrupt recognition by one instruction (Intel SDM vol. 2B, STI),
 * so an interrupt that is already pending wakes the hlt instead of being taken
 * before it: the check-then-sleep in callers cannot miss a wake-up. */
static inline void native_interrupts_enable_and_wait(void) {
  __asm__ volatile("sti; hlt; cli" : : : "memory");
}

/* One string instruction instead of a loop: CPL0 code may be emulated
 * instruction by instruction (PLATFORM.md). */
static inline void fill_quadwords(void* destination, uint64_t value, size_t count) {
  __asm__ volatile("rep stosq" : "+D"(destination), "+c"(count) : "a"(value) : "memory");
}

/* What the rest of the kernel calls: through pv_ops, so a paravirtualized
 * kernel makes hypercalls where a native one executes the instruction. */
#include "pv_ops.h"

static inline void port_write8(uint16_t port, uint8_t value) {
  pv_ops.port_write(port, 1, value);
}
static inline uint8_t port_read8(uint16_t port) {
  return (uint8_t)pv_ops.port_read(port, 1);
}
static inline uint64_t read_cr2(void) {
  return pv_ops.read_cr2();
}
static inline void write_cr3(uint64_t value) {
  pv_ops.write_cr3(value);
}
static inline void interrupts_disable(void) {
  pv_ops.irq_disable();
}
static inline void interrupts_enable_and_wait(void) {
  pv_ops.safe_halt();
}
_Noreturn void halt_forever(void);

#endif /* VMLAB_GUEST_ARCH_H */
