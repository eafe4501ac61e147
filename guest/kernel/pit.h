/* The 8254 channel 0 as the periodic timer on IRQ 0; programmed only by the
 * workloads that need a timer. */
#ifndef VMLAB_GUEST_PIT_H
#define VMLAB_GUEST_PIT_H

#include <stdbool.h>
#include <stdint.h>

#define PIT_INPUT_HZ 1193182u
#define PIT_MINIMUM_HZ 19u /* the 16-bit divisor must fit: 1193182 / 19 < 65536 */
#define PIT_MAXIMUM_HZ 10000u
#define PIT_HZ_RANGE_TEXT "19 to 10000"

/* Starts channel 0 as a rate generator at hz. Returns false without a PIT. */
bool pit_start(uint32_t hz);
void pit_stop(void);
uint32_t pit_irq(void);

/* Timer interrupts since boot; incremented by the IRQ 0 handler. */
uint64_t timer_ticks(void);
void timer_interrupt(void);

/* The handler of the tick that makes timer_ticks() equal `tick` masks the
 * timer's line and stops the channel, so that no tick after it is taken
 * whenever the kernel gets round to stopping the timer itself. */
void timer_stop_at(uint64_t tick);

#endif /* VMLAB_GUEST_PIT_H */
