/* Device register access: port I/O wider than a byte, the string forms that
 * move a whole ATA sector in one instruction, and 32-bit MMIO. Drivers reach
 * their devices through these helpers only (and port_read8/port_write8 from
 * arch.h). Port I/O goes through pv_ops, like arch.h's byte accesses: the
 * native table executes in/out/ins/outs, a paravirtualized kernel makes
 * hypercalls instead. */
#ifndef VMLAB_GUEST_PORT_IO_H
#define VMLAB_GUEST_PORT_IO_H

#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "pv_ops.h"

static inline void port_write16(uint16_t port, uint16_t value) {
  pv_ops.port_write(port, 2, value);
}

static inline uint16_t port_read16(uint16_t port) {
  return (uint16_t)pv_ops.port_read(port, 2);
}

static inline void port_write32(uint16_t port, uint32_t value) {
  pv_ops.port_write(port, 4, value);
}

static inline uint32_t port_read32(uint16_t port) {
  return pv_ops.port_read(port, 4);
}

/* count 16-bit words from one port into buffer: natively one rep insw for
 * the whole transfer, because CPL0 code may be emulated instruction by
 * instruction (PLATFORM.md). */
static inline void port_read_string16(uint16_t port, void* buffer, size_t count) {
  pv_ops.port_read_string(port, 2, buffer, count);
}

/* count 16-bit words from buffer to one port (natively rep outsw). */
static inline void port_write_string16(uint16_t port, const void* buffer, size_t count) {
  pv_ops.port_write_string(port, 2, buffer, count);
}

/* MMIO registers live in uncached mappings (device_memory.h). Each access is
 * one plain mov in an asm block, so the compiler can neither split, merge nor
 * drop it, and an instruction emulator (KVM's, a monitor's) decodes it. The
 * "memory" clobber is the compiler barrier: ring stores before a notify
 * write, and loads after an interrupt-status read, stay on their side of
 * the access. x86 performs UC accesses in program order and does not reorder
 * stores with stores or loads with loads (Intel SDM vol. 3A, 11.3 and
 * 8.2.2), so no fence instruction is needed around them. */
static inline uint32_t mmio_read32(const volatile void* address) {
  uint32_t value;
  __asm__ volatile("movl %1, %0"
                   : "=r"(value)
                   : "m"(*(const volatile uint32_t*)address)
                   : "memory");
  return value;
}

static inline void mmio_write32(volatile void* address, uint32_t value) {
  __asm__ volatile("movl %1, %0" : "=m"(*(volatile uint32_t*)address) : "r"(value) : "memory");
}

#endif /* VMLAB_GUEST_PORT_IO_H */
