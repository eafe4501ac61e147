#include "vmlab/monitor/trap_frame.hpp"

#include <array>
#include <string>

#include "vmlab/format.hpp"
#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/monitor/monitor_region.hpp"

namespace vmlab::monitor {

namespace {

// The frame's quadwords after the error code, in the order the CPU pushed
// them from the top (SDM vol. 3A, figure 6-9).
enum FrameSlot : std::size_t { kSlotRip, kSlotCs, kSlotRflags, kSlotRsp, kSlotSs, kSlotCount };

}  // namespace

Result<TrapFrame> read_trap_frame(const GuestMemoryAccess& physical, std::uint8_t vector,
                                  GuestVirtAddr monitor_rsp) {
  const bool has_error = vector_has_error_code(vector);
  std::array<std::uint64_t, kSlotCount + 1> words{};
  const std::size_t count = kSlotCount + (has_error ? 1 : 0);
  const std::uint64_t bytes = count * sizeof(std::uint64_t);
  if (monitor_rsp < monitor_virtual(kStackOffset) ||
      monitor_rsp + bytes > monitor_virtual(kFaultStackTopOffset)) {
    return Error{MonitorError::kBadTrapFrame, "monitor stack pointer " + hex(monitor_rsp.value()) +
                                                  " is outside the monitor stack"};
  }
  // Safe: the array is trivially copyable and `bytes` is at most its size.
  const std::span<std::uint8_t> raw(reinterpret_cast<std::uint8_t*>(words.data()), bytes);
  const GuestPhysAddr where = monitor_physical(monitor_rsp - kMonitorVirtualBase);
  if (auto status = physical.read(where, raw); !status) {
    return Error{MonitorError::kBadTrapFrame, "the trap frame at " + hex(monitor_rsp.value()) +
                                                  " cannot be read: " + status.error().message};
  }

  const std::uint64_t* pushed = has_error ? words.data() + 1 : words.data();
  TrapFrame frame;
  frame.vector = vector;
  if (has_error) frame.error_code = static_cast<std::uint32_t>(words[0]);
  frame.rip = GuestVirtAddr(pushed[kSlotRip]);
  frame.cs = static_cast<std::uint16_t>(pushed[kSlotCs]);
  frame.rflags = pushed[kSlotRflags];
  frame.rsp = GuestVirtAddr(pushed[kSlotRsp]);
  frame.ss = static_cast<std::uint16_t>(pushed[kSlotSs]);
  if (frame.real_cpl() == 0) {
    return Error{MonitorError::kMonitorFault, "the monitor itself took exception " +
                                                  std::to_string(vector) + " at rip " +
                                                  hex(frame.rip.value())};
  }
  return frame;
}

bool is_syscall_fetch_fault(const TrapFrame& frame, GuestVirtAddr cr2) {
  const GuestVirtAddr stub = monitor_virtual(kSyscallStubOffset);
  return frame.vector == kVectorPageFault && cr2 == stub && frame.rip == stub &&
         (frame.error_code.value_or(0) & (kPageFaultUser | kPageFaultWrite)) == kPageFaultUser;
}

}  // namespace vmlab::monitor
