// x86-64 architectural constants, once for the whole VMM: control registers,
// EFER and the MSRs vmlab touches, RFLAGS, exception vectors, page-fault
// error codes, paging-structure entries and selectors. Names follow the
// Intel SDM's; each group cites where it is defined.
#pragma once

#include <cstdint>

namespace vmlab {

// CR0 (Intel SDM vol. 3A, 2.5).
constexpr std::uint64_t kCr0ProtectionEnable = 1ull << 0;
constexpr std::uint64_t kCr0MonitorCoprocessor = 1ull << 1;
constexpr std::uint64_t kCr0Emulation = 1ull << 2;
constexpr std::uint64_t kCr0TaskSwitched = 1ull << 3;
constexpr std::uint64_t kCr0ExtensionType = 1ull << 4;
constexpr std::uint64_t kCr0NumericError = 1ull << 5;
constexpr std::uint64_t kCr0WriteProtect = 1ull << 16;
constexpr std::uint64_t kCr0AlignmentMask = 1ull << 18;
constexpr std::uint64_t kCr0NotWriteThrough = 1ull << 29;
constexpr std::uint64_t kCr0CacheDisable = 1ull << 30;
constexpr std::uint64_t kCr0Paging = 1ull << 31;

// CR3 in IA-32e mode (vol. 3A, 4.5): bits 62:52 are above any MAXPHYADDR;
// bit 63 is the "do not invalidate" hint when CR4.PCIDE = 1.
constexpr std::uint64_t kCr3ReservedHigh = 0x7ff0000000000000ull;
constexpr std::uint64_t kCr3NoInvalidate = 1ull << 63;

// CR4 (vol. 3A, 2.5).
constexpr std::uint64_t kCr4TimeStampDisable = 1ull << 2;
constexpr std::uint64_t kCr4PageSizeExtensions = 1ull << 4;
constexpr std::uint64_t kCr4PhysicalAddressExtension = 1ull << 5;
constexpr std::uint64_t kCr4PageGlobalEnable = 1ull << 7;
constexpr std::uint64_t kCr4PerformanceCounterEnable = 1ull << 8;
constexpr std::uint64_t kCr4UserModeInstructionPrevention = 1ull << 11;
constexpr std::uint64_t kCr4FiveLevelPaging = 1ull << 12;
constexpr std::uint64_t kCr4ProcessContextIdentifiers = 1ull << 17;
constexpr std::uint64_t kCr4SupervisorExecutionPrevention = 1ull << 20;
constexpr std::uint64_t kCr4SupervisorAccessPrevention = 1ull << 21;
constexpr std::uint64_t kCr4ProtectionKeys = 1ull << 22;
constexpr std::uint64_t kCr4ControlFlowEnforcement = 1ull << 23;
constexpr std::uint64_t kCr4SupervisorProtectionKeys = 1ull << 24;

// MSRs (vol. 4, table 2-2) and EFER's bits (vol. 3A, 2.2.1).
constexpr std::uint32_t kMsrEfer = 0xc0000080;
constexpr std::uint32_t kMsrStar = 0xc0000081;
constexpr std::uint32_t kMsrLstar = 0xc0000082;
constexpr std::uint32_t kMsrCstar = 0xc0000083;
constexpr std::uint32_t kMsrFmask = 0xc0000084;
constexpr std::uint32_t kMsrFsBase = 0xc0000100;
constexpr std::uint32_t kMsrGsBase = 0xc0000101;
constexpr std::uint32_t kMsrKernelGsBase = 0xc0000102;
constexpr std::uint64_t kEferSyscallEnable = 1ull << 0;
constexpr std::uint64_t kEferLongModeEnable = 1ull << 8;
constexpr std::uint64_t kEferLongModeActive = 1ull << 10;
constexpr std::uint64_t kEferNoExecuteEnable = 1ull << 11;

// RFLAGS (vol. 1, 3.4.3).
constexpr std::uint64_t kRflagsCarry = 1ull << 0;
constexpr std::uint64_t kRflagsFixed = 1ull << 1;  // always 1
constexpr std::uint64_t kRflagsParity = 1ull << 2;
constexpr std::uint64_t kRflagsAuxiliaryCarry = 1ull << 4;
constexpr std::uint64_t kRflagsZero = 1ull << 6;
constexpr std::uint64_t kRflagsSign = 1ull << 7;
constexpr std::uint64_t kRflagsTrap = 1ull << 8;
constexpr std::uint64_t kRflagsInterrupt = 1ull << 9;
constexpr std::uint64_t kRflagsDirection = 1ull << 10;
constexpr std::uint64_t kRflagsOverflow = 1ull << 11;
constexpr std::uint64_t kRflagsIoplMask = 3ull << 12;
constexpr unsigned kRflagsIoplShift = 12;
constexpr std::uint64_t kRflagsNestedTask = 1ull << 14;
constexpr std::uint64_t kRflagsResume = 1ull << 16;
constexpr std::uint64_t kRflagsVirtual8086 = 1ull << 17;
constexpr std::uint64_t kRflagsAlignmentCheck = 1ull << 18;
constexpr std::uint64_t kRflagsVirtualInterrupt = 1ull << 19;
constexpr std::uint64_t kRflagsVirtualInterruptPending = 1ull << 20;
constexpr std::uint64_t kRflagsIdentification = 1ull << 21;

// Exception vectors (vol. 3A, 6.3.1, table 6-1).
constexpr std::uint8_t kVectorDivideError = 0;
constexpr std::uint8_t kVectorDebug = 1;
constexpr std::uint8_t kVectorBreakpoint = 3;
constexpr std::uint8_t kVectorInvalidOpcode = 6;
constexpr std::uint8_t kVectorDoubleFault = 8;
constexpr std::uint8_t kVectorInvalidTss = 10;
constexpr std::uint8_t kVectorSegmentNotPresent = 11;
constexpr std::uint8_t kVectorStackFault = 12;
constexpr std::uint8_t kVectorGeneralProtection = 13;
constexpr std::uint8_t kVectorPageFault = 14;

// The vectors for which the CPU pushes an error code (vol. 3A, 6.15).
constexpr bool vector_has_error_code(std::uint8_t vector) {
  return vector == kVectorDoubleFault ||
         (vector >= kVectorInvalidTss && vector <= kVectorPageFault) || vector == 17 ||
         vector == 21 || vector == 29 || vector == 30;
}

// Page-fault error code bits (vol. 3A, 4.7).
constexpr std::uint32_t kPageFaultPresent = 1u << 0;
constexpr std::uint32_t kPageFaultWrite = 1u << 1;
constexpr std::uint32_t kPageFaultUser = 1u << 2;
constexpr std::uint32_t kPageFaultReservedBit = 1u << 3;
constexpr std::uint32_t kPageFaultFetch = 1u << 4;

// Paging-structure entry bits (vol. 3A, 4.5, tables 4-15 to 4-20).
namespace page_entry {
constexpr std::uint64_t kPresent = 1ull << 0;
constexpr std::uint64_t kWritable = 1ull << 1;
constexpr std::uint64_t kUser = 1ull << 2;
constexpr std::uint64_t kWriteThrough = 1ull << 3;
constexpr std::uint64_t kCacheDisable = 1ull << 4;
constexpr std::uint64_t kAccessed = 1ull << 5;
constexpr std::uint64_t kDirty = 1ull << 6;      // leaf entries only
constexpr std::uint64_t kLargePage = 1ull << 7;  // PS in a PDPTE or PDE; PAT in a PTE
constexpr std::uint64_t kGlobal = 1ull << 8;
constexpr std::uint64_t kExecuteDisable = 1ull << 63;  // XD: reserved unless EFER.NXE
constexpr std::uint64_t kAddressMask = 0x000ffffffffff000ull;
}  // namespace page_entry

// Selectors (vol. 3A, 3.4.2) and system-descriptor types (3.5, table 3-2).
constexpr std::uint16_t kSelectorPrivilegeMask = 0x3;
constexpr std::uint16_t kSelectorTableIndicator = 0x4;
constexpr std::uint8_t kDescriptorTypeLdt = 0x2;
constexpr std::uint8_t kDescriptorTypeAvailableTss = 0x9;
constexpr std::uint8_t kDescriptorTypeBusyFlag = 0x2;  // 0x9 -> 0xb

}  // namespace vmlab
