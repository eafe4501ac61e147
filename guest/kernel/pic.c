#include "pic.h"

#include "arch.h"
#include "boot.h"

/* Intel 8259A datasheet: initialization command words ICW1-ICW4 and operation
 * command words OCW1 (mask), OCW2 (EOI), OCW3 (read ISR). */
#define ICW1_INITIALIZE_WITH_ICW4 0x11 /* edge triggered, cascaded, ICW4 follows */
#define ICW3_MASTER_SLAVE_ON_IRQ2 0x04
#define ICW3_SLAVE_IDENTITY 0x02
#define ICW4_8086_MODE 0x01
#define OCW2_NON_SPECIFIC_EOI 0x20
#define OCW3_READ_IN_SERVICE 0x0b
#define CASCADE_IRQ 2u

static uint16_t master_base;
static uint16_t slave_base;
static bool master_present;
static bool slave_present;
/* Shadows of the mask registers: a read of IMR would cost an exit. */
static uint8_t master_mask = 0xff;
static uint8_t slave_mask = 0xff;

static void program(uint16_t base, uint8_t vector_base, uint8_t cascade_word) {
  port_write8(base, ICW1_INITIALIZE_WITH_ICW4);
  port_write8(base + 1, vector_base);
  port_write8(base + 1, cascade_word);
  port_write8(base + 1, ICW4_8086_MODE);
}

void pic_init(void) {
  /* The first PIC in the device table is the master, the second the slave. */
  const struct vmlab_device* master = boot_find_device(VMLAB_DEVICE_PIC8259, 0);
  const struct vmlab_device* slave = boot_find_device(VMLAB_DEVICE_PIC8259, 1);
  if (master == NULL) return;
  master_base = (uint16_t)master->base;
  master_present = true;
  program(master_base, PIC_VECTOR_BASE, ICW3_MASTER_SLAVE_ON_IRQ2);
  if (slave != NULL) {
    slave_base = (uint16_t)slave->base;
    slave_present = true;
    program(slave_base, PIC_VECTOR_BASE + 8, ICW3_SLAVE_IDENTITY);
    port_write8(slave_base + 1, slave_mask);
  }
  port_write8(master_base + 1, master_mask);
}

void pic_unmask(uint32_t irq) {
  if (irq < 8) {
    if (!master_present) return;
    master_mask &= (uint8_t) ~(1u << irq);
    port_write8(master_base + 1, master_mask);
  } else if (irq < PIC_IRQ_COUNT && slave_present) {
    slave_mask &= (uint8_t) ~(1u << (irq - 8));
    port_write8(slave_base + 1, slave_mask);
    pic_unmask(CASCADE_IRQ);
  }
}

void pic_mask(uint32_t irq) {
  if (irq < 8) {
    if (!master_present) return;
    master_mask |= (uint8_t)(1u << irq);
    port_write8(master_base + 1, master_mask);
  } else if (irq < PIC_IRQ_COUNT && slave_present) {
    slave_mask |= (uint8_t)(1u << (irq - 8));
    port_write8(slave_base + 1, slave_mask);
  }
}

static bool in_service(uint16_t base, uint32_t line) {
  port_write8(base, OCW3_READ_IN_SERVICE);
  return (port_read8(base) & (1u << line)) != 0;
}

bool pic_spurious(uint32_t irq) {
  if (!master_present) return false;
  /* A request that goes away before the CPU acknowledges it is delivered as
   * the lowest-priority line, IRQ 7 (or 15 on the slave), without setting its
   * in-service bit (8259A datasheet). A spurious 15 did take the master's
   * cascade line, which still needs its end-of-interrupt. */
  if (irq == 7) return !in_service(master_base, 7);
  if (irq == 15 && slave_present && !in_service(slave_base, 7)) {
    port_write8(master_base, OCW2_NON_SPECIFIC_EOI);
    return true;
  }
  return false;
}

void pic_end_of_interrupt(uint32_t irq) {
  if (!master_present) return;
  if (irq >= 8 && slave_present) port_write8(slave_base, OCW2_NON_SPECIFIC_EOI);
  port_write8(master_base, OCW2_NON_SPECIFIC_EOI);
}
