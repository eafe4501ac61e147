// C++ view of the CPUID leaves the VMM publishes (guest/abi/vmlab/cpuid.h).
#pragma once

#include "vmlab/cpuid.h"  // guest/abi/vmlab/cpuid.h
