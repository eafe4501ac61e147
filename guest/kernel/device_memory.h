/* Device register windows (virtio-mmio and the like) that lie outside RAM and
 * so outside the kernel's physical map. They are mapped uncached, in the
 * kernel's address space only, at DEVICE_MEMORY_BASE. */
#ifndef VMLAB_GUEST_DEVICE_MEMORY_H
#define VMLAB_GUEST_DEVICE_MEMORY_H

#include <stdint.h>

/* PML4 slot 2: clear of the user layout (slot 0), the physical map (slot 1)
 * and the monitor region a VMM may place in slot 511 (user_abi.h). The user
 * task's root copies only slot 1 and the kernel image (task.c), so user code
 * cannot reach a device window. */
#define DEVICE_MEMORY_BASE 0x0000010000000000ull
#define DEVICE_MEMORY_SIZE 0x0000008000000000ull /* one PML4 slot: 512 GiB */

/* Maps [physical, physical + size) uncached (PCD|PWT), supervisor-only and
 * writable, and returns the virtual address of physical; NULL if the window
 * space or RAM for page tables runs out. Mappings are never removed. Access
 * the result with mmio_read32/mmio_write32 (port_io.h), with the kernel's
 * page tables loaded. */
volatile void* device_memory_map(uint64_t physical, uint64_t size);

#endif /* VMLAB_GUEST_DEVICE_MEMORY_H */
