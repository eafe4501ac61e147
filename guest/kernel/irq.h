/* Interrupt handlers that drivers register by IRQ line, for devices the
 * trap code does not know by name (the disks). trap.c calls a registered
 * handler before the end-of-interrupt, after the PIT and UART. */
#ifndef VMLAB_GUEST_IRQ_H
#define VMLAB_GUEST_IRQ_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*irq_handler)(void);

/* Returns false if the line is not a PIC line (below PIC_IRQ_COUNT). A
 * handler replaces any earlier one for the same line; NULL removes it. */
bool irq_register(uint32_t irq, irq_handler handler);

#endif /* VMLAB_GUEST_IRQ_H */
