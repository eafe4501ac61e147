/* The kernel command line: space-separated key=value tokens,
 *   workload=NAME n=COUNT console=polled|irq hz=HZ
 * Unknown keys (and tokens without '=') are ignored; a bad value is an error. */
#ifndef VMLAB_GUEST_COMMAND_LINE_H
#define VMLAB_GUEST_COMMAND_LINE_H

#include <stdbool.h>
#include <stddef.h>

#include "workloads.h"

/* Fills options (workload NULL if the name was bad). On error returns false
 * with an explanation in message. */
bool command_line_parse(const char* text, struct run_options* options, char* message,
                        size_t capacity);

#endif /* VMLAB_GUEST_COMMAND_LINE_H */
