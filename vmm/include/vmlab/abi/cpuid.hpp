// C++ view of the CPUID leaves the VMM publishes (abi/vmlab/cpuid.h).
#pragma once

#include "vmlab/cpuid.h"  // abi/vmlab/cpuid.h
