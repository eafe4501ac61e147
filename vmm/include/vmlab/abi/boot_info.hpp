// C++ view of the guest ABI header shared with the guest kernel.
#pragma once

#include <cstddef>
#include <cstdint>

#include "vmlab/boot_info.h"  // abi/vmlab/boot_info.h

static_assert(offsetof(vmlab_boot_info, devices) == 32 + 24 * VMLAB_MAX_MEM_REGIONS + 8);
