// Why the para mode refused what the VMM gave it (STYLE.md 6: one error type
// for the module): the page-table validator's configuration and the machine
// ParaMode::prepare gets. The guest's own requests are not errors of the VMM:
// the validator and the hypercalls answer them with the paravirtual ABI's
// result codes (VMLAB_EPERM, ... in abi/vmlab/hypercall.h), which the guest
// receives. What the monitor itself needs is a monitor::MonitorError.
#pragma once

#include "vmlab/result.hpp"

namespace vmlab::para {

// Found by argument-dependent lookup when a kind converts to std::error_code
// (the kinds live in this namespace, the function in vmlab).
using vmlab::make_error_code;

enum class ParaError {
  kInvalidGuestRam = 1,     // not whole 4 KiB pages, above 32 GiB, or more than the memory holds
  kInvalidLayout,           // the monitor region or a device window misplaced or overlapping
  kInvalidPagingParameter,  // a MAXPHYADDR outside [32, 52], or a PML4 slot that does not exist
  kInvalidMonitorEntry,     // the monitor's PML4 entry is not a supervisor table in its region
  kGuestMemoryTooLarge,     // more than the 1 GiB the boot tables map: lower --mem
};

constexpr const char* error_domain(ParaError) {
  return "para";
}

}  // namespace vmlab::para

VMLAB_ERROR_KINDS(vmlab::para::ParaError);
