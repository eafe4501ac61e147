#include "console.h"

#include "arch.h"
#include "boot.h"
#include "lib.h"
#include "pic.h"

/* 16550A register offsets and bits (TI/National PC16550D datasheet, "Register
 * Description"). */
#define UART_DATA 0             /* THR on write, RBR on read; DLL when LCR.DLAB */
#define UART_INTERRUPT_ENABLE 1 /* IER; DLM when LCR.DLAB */
#define UART_INTERRUPT_ID 2     /* IIR on read */
#define UART_FIFO_CONTROL 2     /* FCR on write */
#define UART_LINE_CONTROL 3     /* LCR */
#define UART_MODEM_CONTROL 4    /* MCR */
#define UART_LINE_STATUS 5      /* LSR */

#define UART_IER_TRANSMIT_EMPTY 0x02
#define UART_IIR_NONE_PENDING 0x01
#define UART_IIR_SOURCE_MASK 0x0e
#define UART_IIR_TRANSMIT_EMPTY 0x02
#define UART_IIR_FIFOS_ENABLED 0xc0
#define UART_LCR_DIVISOR_LATCH 0x80
#define UART_LCR_8N1 0x03
#define UART_FCR_ENABLE_AND_CLEAR 0x07
#define UART_MCR_DTR_RTS 0x03
#define UART_MCR_OUT2 0x08 /* gates the UART's interrupt onto the ISA IRQ line on PCs */
#define UART_LSR_TRANSMIT_EMPTY 0x20

#define UART_DIVISOR_115200 1 /* 1.8432 MHz / (16 * 115200) */
#define UART_FIFO_DEPTH 16

/* Bounded polling: a missing or wedged UART must not hang the kernel. */
#define UART_POLL_LIMIT 100000

#define DEFAULT_DEBUG_CONSOLE_PORT 0xe9
#define DEFAULT_EXIT_PORT 0xf4

#define RING_SIZE 256u

static uint16_t uart_base;
static bool uart_present;
static uint32_t uart_irq = VMLAB_NO_IRQ;
static unsigned uart_fifo_depth = 1;
static enum console_mode mode = CONSOLE_MODE_POLLED;
static uint16_t debug_console_port = DEFAULT_DEBUG_CONSOLE_PORT;
static uint16_t exit_port = DEFAULT_EXIT_PORT;

/* Shared with console_interrupt(). The writer runs with interrupts disabled
 * except inside interrupts_enable_and_wait(), whose "memory" clobber orders
 * these accesses around the handler; volatile keeps the polling loops honest. */
static char ring[RING_SIZE];
static volatile uint32_t ring_head; /* next slot the writer fills */
static volatile uint32_t ring_tail; /* next byte the handler sends */
static volatile bool transmitting;  /* THR-empty interrupt enabled */

static bool wait_transmitter_empty(void) {
  for (unsigned attempt = 0; attempt < UART_POLL_LIMIT; ++attempt) {
    if (port_read8(uart_base + UART_LINE_STATUS) & UART_LSR_TRANSMIT_EMPTY) return true;
  }
  uart_present = false;
  return false;
}

static void write_polled(const char* text, size_t length) {
  size_t sent = 0;
  while (uart_present && sent < length) {
    if (!wait_transmitter_empty()) return;
    /* THR empty with FIFOs on means the whole transmit FIFO is free. */
    for (unsigned slot = 0; slot < uart_fifo_depth && sent < length; ++slot) {
      port_write8(uart_base + UART_DATA, (uint8_t)text[sent++]);
    }
  }
}

void console_init(void) {
  const struct vmlab_device* debug_console = boot_find_device(VMLAB_DEVICE_DEBUGCON, 0);
  if (debug_console != NULL) debug_console_port = (uint16_t)debug_console->base;
  const struct vmlab_device* exit_device = boot_find_device(VMLAB_DEVICE_EXIT_PORT, 0);
  if (exit_device != NULL) exit_port = (uint16_t)exit_device->base;

  const struct vmlab_device* uart = boot_find_device(VMLAB_DEVICE_UART16550, 0);
  if (uart == NULL || (uart->flags & VMLAB_DEVICE_FLAG_MMIO) != 0) return;
  uart_base = (uint16_t)uart->base;
  uart_irq = uart->irq;
  port_write8(uart_base + UART_INTERRUPT_ENABLE, 0);
  port_write8(uart_base + UART_LINE_CONTROL, UART_LCR_DIVISOR_LATCH);
  port_write8(uart_base + UART_DATA, UART_DIVISOR_115200 & 0xff);
  port_write8(uart_base + UART_INTERRUPT_ENABLE, UART_DIVISOR_115200 >> 8);
  port_write8(uart_base + UART_LINE_CONTROL, UART_LCR_8N1);
  port_write8(uart_base + UART_FIFO_CONTROL, UART_FCR_ENABLE_AND_CLEAR);
  port_write8(uart_base + UART_MODEM_CONTROL, UART_MCR_DTR_RTS);
  /* IIR bits 7:6 read 11 only on a 16550A with working FIFOs; a 16450 has none. */
  uint8_t identification = port_read8(uart_base + UART_INTERRUPT_ID);
  uart_fifo_depth =
      (identification & UART_IIR_FIFOS_ENABLED) == UART_IIR_FIFOS_ENABLED ? UART_FIFO_DEPTH : 1;
  uart_present = true;
}

bool console_use_interrupts(void) {
  if (!uart_present || uart_irq >= 16) return false;
  port_write8(uart_base + UART_MODEM_CONTROL, UART_MCR_DTR_RTS | UART_MCR_OUT2);
  pic_unmask(uart_irq);
  mode = CONSOLE_MODE_INTERRUPT;
  return true;
}

bool console_has_uart(void) {
  return uart_present;
}
uint16_t console_uart_base(void) {
  return uart_base;
}
uint32_t console_uart_irq(void) {
  return uart_irq;
}

/* The handler sends at most one FIFO load per interrupt and disables the
 * THR-empty interrupt before it sends the last load, so a write of L bytes
 * takes exactly ceil(L / FIFO depth) interrupts on any 16550 model, fast or slow. */
void console_interrupt(void) {
  uint8_t identification = port_read8(uart_base + UART_INTERRUPT_ID);
  if (identification & UART_IIR_NONE_PENDING) return;
  if ((identification & UART_IIR_SOURCE_MASK) != UART_IIR_TRANSMIT_EMPTY || !transmitting) {
    port_write8(uart_base + UART_INTERRUPT_ENABLE, 0);
    return;
  }
  uint32_t pending = ring_head - ring_tail;
  uint32_t chunk = pending < uart_fifo_depth ? pending : uart_fifo_depth;
  if (chunk == pending) {
    port_write8(uart_base + UART_INTERRUPT_ENABLE, 0);
    transmitting = false;
  }
  for (uint32_t index = 0; index < chunk; ++index) {
    port_write8(uart_base + UART_DATA, (uint8_t)ring[ring_tail % RING_SIZE]);
    ring_tail = ring_tail + 1;
  }
}

static void write_interrupt_driven(const char* text, size_t length) {
  for (size_t index = 0; index < length; ++index) {
    while (ring_head - ring_tail == RING_SIZE)
      interrupts_enable_and_wait();
    ring[ring_head % RING_SIZE] = text[index];
    ring_head = ring_head + 1;
    if (!transmitting) {
      transmitting = true;
      /* Enabling the interrupt while THR is empty raises it at once
       * (PC16550D datasheet, IER bit 1). */
      port_write8(uart_base + UART_INTERRUPT_ENABLE, UART_IER_TRANSMIT_EMPTY);
    }
  }
  while (transmitting)
    interrupts_enable_and_wait();
}

void console_write(const char* text, size_t length) {
  if (!uart_present || length == 0) return;
  if (mode == CONSOLE_MODE_INTERRUPT) {
    write_interrupt_driven(text, length);
  } else {
    write_polled(text, length);
  }
}

/* Formats one line (at most 255 characters) and hands it to `sink`. */
static void print_line(void (*sink)(const char* text, size_t length), const char* format,
                       va_list arguments) {
  char line[256];
  size_t length = format_text(line, sizeof line, format, arguments);
  sink(line, length);
}

void console_print(const char* format, ...) {
  va_list arguments;
  va_start(arguments, format);
  print_line(console_write, format, arguments);
  va_end(arguments);
}

/* Polled output that works with interrupts off, whatever the console was doing. */
static void emergency_write(const char* text, size_t length) {
  if (!uart_present) return;
  if (mode == CONSOLE_MODE_INTERRUPT) {
    port_write8(uart_base + UART_INTERRUPT_ENABLE, 0);
    transmitting = false;
    mode = CONSOLE_MODE_POLLED;
  }
  write_polled(text, length);
}

void console_emergency_print(const char* format, ...) {
  va_list arguments;
  va_start(arguments, format);
  print_line(emergency_write, format, arguments);
  va_end(arguments);
}

static void debug_console_write(const char* text, size_t length) {
  for (size_t index = 0; index < length; ++index) {
    port_write8(debug_console_port, (uint8_t)text[index]);
  }
}

void debug_console_print(const char* format, ...) {
  va_list arguments;
  va_start(arguments, format);
  print_line(debug_console_write, format, arguments);
  va_end(arguments);
}

_Noreturn void machine_exit(uint8_t status) {
  port_write8(exit_port, status);
  halt_forever();
}
