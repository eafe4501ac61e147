/* The boot information the kernel runs on: the vmlab boot_info the VMM built,
 * or the one the PVH path converted from Xen's hvm_start_info. The kernel
 * copies it (and the command line) into its own memory first thing, because
 * the original lives in low memory the kernel's page tables do not map. */
#ifndef VMLAB_GUEST_BOOT_H
#define VMLAB_GUEST_BOOT_H

/* Which entry the kernel came through; passed from boot.S to kernel_main. */
#define BOOT_ENTRY_VMLAB 0
#define BOOT_ENTRY_PVH 1

#ifndef __ASSEMBLER__

#include <stdbool.h>
#include <stdint.h>

#include "vmlab/boot_info.h"

/* Copies and checks the boot information at a physical address that the
 * current (boot) page tables map. Returns false, with boot_problem() set, if
 * it is not a usable vmlab_boot_info. */
bool boot_adopt(uint64_t boot_info_address, unsigned entry);

const char* boot_problem(void);
unsigned boot_entry_kind(void); /* BOOT_ENTRY_VMLAB or BOOT_ENTRY_PVH */
const struct vmlab_boot_info* boot_info(void);
const char* boot_command_line(void);

/* Bytes of RAM the memory map offers at or above VMLAB_BOOT_LOW_RESERVED. */
uint64_t boot_ram_bytes(void);

/* The occurrence-th device of a kind (0 = first), or NULL. */
const struct vmlab_device* boot_find_device(enum vmlab_device_kind kind, unsigned occurrence);

/* PVH path only, called from the 64-bit trampoline while the trampoline's
 * identity map is active: builds a vmlab_boot_info from hvm_start_info. */
struct vmlab_boot_info* pvh_build_boot_info(uint64_t start_info_address);

#endif /* __ASSEMBLER__ */

#endif /* VMLAB_GUEST_BOOT_H */
