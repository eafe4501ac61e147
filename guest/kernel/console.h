/* Output: human text on the 16550 UART, machine-readable result lines on the
 * debug console port, and the exit port that ends the run (DESIGN.md 3). */
#ifndef VMLAB_GUEST_CONSOLE_H
#define VMLAB_GUEST_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum console_mode {
  CONSOLE_MODE_POLLED = 0,
  CONSOLE_MODE_INTERRUPT = 1,
};

/* Finds the UART, debug console and exit port in the boot device table and
 * programs the UART for polled transmission. */
void console_init(void);

/* Switches the UART to interrupt-driven transmission (THR-empty interrupt and
 * a ring buffer). Returns false if the UART is missing or has no IRQ. */
bool console_use_interrupts(void);

bool console_has_uart(void);
uint16_t console_uart_base(void);
uint32_t console_uart_irq(void);

/* Returns once every byte has been handed to the UART, in either mode, so
 * that the number of UART interrupts a write causes does not depend on timing. */
void console_write(const char* text, size_t length);
void console_print(const char* format, ...) __attribute__((format(printf, 1, 2)));

/* Polled output that works whatever state the interrupt path is in: for fatal errors. */
void console_emergency_print(const char* format, ...) __attribute__((format(printf, 1, 2)));

/* The UART's interrupt handler. */
void console_interrupt(void);

/* One line to the debug console port, for the host to parse. */
void debug_console_print(const char* format, ...) __attribute__((format(printf, 1, 2)));

/* Writes the status to the exit port (QEMU isa-debug-exit, vmlab's exit port)
 * and halts if the machine is still running. */
_Noreturn void machine_exit(uint8_t status);

#endif /* VMLAB_GUEST_CONSOLE_H */
