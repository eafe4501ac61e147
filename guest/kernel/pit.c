#include "pit.h"

#include "arch.h"
#include "boot.h"
#include "pic.h"

/* Intel 8254 datasheet: control word = channel (bits 7:6), access mode
 * (5:4, 11 = low byte then high byte), mode (3:1), binary count (bit 0). */
#define PIT_CHANNEL0_DATA 0
#define PIT_CONTROL 3
#define PIT_CONTROL_CHANNEL0_RATE_GENERATOR 0x34 /* channel 0, low/high, mode 2 */
/* Mode 0 holds OUT low from the control word until a count is written, so
 * writing only the control word silences the channel. */
#define PIT_CONTROL_CHANNEL0_STOP 0x30

static volatile uint64_t ticks;
static uint64_t stop_tick = UINT64_MAX;
static const struct vmlab_device* pit;

bool pit_start(uint32_t hz) {
  pit = boot_find_device(VMLAB_DEVICE_PIT8254, 0);
  if (pit == NULL || hz < PIT_MINIMUM_HZ || hz > PIT_MAXIMUM_HZ) return false;
  uint32_t divisor = (PIT_INPUT_HZ + hz / 2) / hz;
  uint16_t base = (uint16_t)pit->base;
  port_write8(base + PIT_CONTROL, PIT_CONTROL_CHANNEL0_RATE_GENERATOR);
  port_write8(base + PIT_CHANNEL0_DATA, (uint8_t)(divisor & 0xff));
  port_write8(base + PIT_CHANNEL0_DATA, (uint8_t)(divisor >> 8));
  return true;
}

void pit_stop(void) {
  if (pit != NULL) port_write8((uint16_t)pit->base + PIT_CONTROL, PIT_CONTROL_CHANNEL0_STOP);
}

uint32_t pit_irq(void) {
  const struct vmlab_device* device = boot_find_device(VMLAB_DEVICE_PIT8254, 0);
  return device != NULL ? device->irq : VMLAB_NO_IRQ;
}

uint64_t timer_ticks(void) {
  return ticks;
}

void timer_stop_at(uint64_t tick) {
  stop_tick = tick;
}

void timer_interrupt(void) {
  ticks = ticks + 1;
  if (ticks == stop_tick) {
    stop_tick = UINT64_MAX;
    pic_mask(pit_irq());
    pit_stop();
  }
}
