/* The 8259A pair: remapped to vectors 0x20-0x2f, everything masked until a
 * workload asks for a line, so interrupt counts are deterministic. */
#ifndef VMLAB_GUEST_PIC_H
#define VMLAB_GUEST_PIC_H

#include <stdbool.h>
#include <stdint.h>

#define PIC_VECTOR_BASE 0x20u
#define PIC_IRQ_COUNT 16u

void pic_init(void);
void pic_unmask(uint32_t irq);
void pic_mask(uint32_t irq);

/* True for a spurious IRQ 7 or 15: one with no in-service bit, which must
 * not get an end-of-interrupt for its own line. */
bool pic_spurious(uint32_t irq);
void pic_end_of_interrupt(uint32_t irq);

#endif /* VMLAB_GUEST_PIC_H */
