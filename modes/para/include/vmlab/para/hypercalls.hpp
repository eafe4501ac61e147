// The monitor's side of the paravirtual ABI (abi/vmlab/hypercall.h):
// one handler per hypercall, written against narrow interfaces (guest
// memory, the page-table validator, the VMM's ports and console) so unit
// tests drive every validation failure and batch with fakes, without KVM.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vmlab/address.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/hypercall.h"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/para/page_table_validator.hpp"

namespace vmlab::para {

// What a hypercall may ask of the rest of the VMM.
class HypercallEnvironment {
 public:
  virtual ~HypercallEnvironment() = default;
  // The current kernel address space, as a supervisor access would see it.
  virtual monitor::GuestVirtualMemory& kernel_memory() = 0;
  virtual std::uint32_t port_read(std::uint16_t port, unsigned size) = 0;
  virtual void port_write(std::uint16_t port, unsigned size, std::uint32_t value) = 0;
  virtual void console_write(std::string_view text) = 0;
  // Cached translations of the guest's tables must go (an entry that was
  // present changed, or the guest asked).
  virtual void flush_translations() = 0;
  // The kernel-mode root changed: the walker behind kernel_memory() follows.
  virtual void kernel_root_changed(GuestPhysAddr root) = 0;
};

// The selectors the guest kernel believes in (its own GDT's): event frames
// carry them, and IRET reads the privilege level from the CS it is given.
constexpr std::uint16_t kVirtualKernelCode = 0x08;
constexpr std::uint16_t kVirtualKernelData = 0x10;
constexpr std::uint16_t kVirtualUserData = 0x1b;
constexpr std::uint16_t kVirtualUserCode = 0x23;

struct TrapEntry {
  GuestVirtAddr handler{};  // 0: none registered
  bool mask_events = false;
};

// Everything hypercalls register or change for the one vCPU.
struct ParaState {
  std::array<TrapEntry, 256> trap_table{};
  GuestVirtAddr kernel_stack{};              // STACK_SWITCH; 0 until then
  GuestVirtAddr syscall_entry{};             // SET_CALLBACKS; 0 until then
  GuestPhysAddr kernel_root{};               // NEW_BASEPTR; 0 until the first
  GuestPhysAddr user_root{};                 // 0: the kernel-mode root
  std::optional<GuestPhysAddr> shared_info;  // REGISTER_SHARED_INFO: its frame
  GuestVirtAddr gdt_address{};
  std::uint32_t gdt_entries = 0;
  std::uint8_t cpl = 0;  // virtual: 0 kernel mode, 3 user mode
};

// After a hypercall, how the guest goes on.
enum class HypercallContinuation {
  Return,  // RAX holds the result; resume after the syscall
  Block,   // SCHED_OP BLOCK: wait for an event (events were unmasked)
  Iret,    // IRET replaced the registers and perhaps the privilege level
};

struct HypercallOutcome {
  std::int64_t result = 0;
  HypercallContinuation continuation = HypercallContinuation::Return;
  std::uint32_t batch_size = 1;  // requests in an MMU_UPDATE, calls in a MULTICALL
  std::string detail;            // for the trace: what was asked and what came back
};

class Hypercalls {
 public:
  // `memory` is guest RAM (guest-physical).
  Hypercalls(GuestMemoryAccess& memory, PageTableValidator& validator,
             HypercallEnvironment& environment, ParaState& state)
      : m_memory(memory), m_validator(validator), m_environment(environment), m_state(state) {}

  // The hypercall in registers.rax with its arguments (hypercall.h calling
  // convention). RAX receives the result unless the continuation is Iret.
  HypercallOutcome call(monitor::GuestRegisters& registers);

  // The shared page's event mask (masked until the page is registered).
  bool events_masked() const;
  void set_events_masked(bool masked);
  bool event_pending_flag() const;
  void set_event_pending(bool pending);
  void set_fault_address(GuestVirtAddr address);
  void count_hypercall();
  void count_event();

  // Batches larger than this are refused (EINVAL): a guest cannot make the
  // monitor loop for long on its behalf.
  static constexpr std::uint64_t kMaximumBatch = 4096;
  static constexpr std::uint64_t kMaximumConsoleWrite = 4096;
  static constexpr std::uint64_t kMaximumPortString = 65536;

 private:
  HypercallOutcome dispatch(std::uint64_t number, const std::array<std::uint64_t, 5>& arguments,
                            monitor::GuestRegisters& registers, bool batched);
  // The arguments are registers; each handler takes the ones that are
  // addresses as such.
  std::int64_t set_trap_table(GuestVirtAddr address, std::uint64_t count);
  HypercallOutcome mmu_update(GuestVirtAddr address, std::uint64_t count);
  std::int64_t update_va_mapping(GuestVirtAddr virtual_address, std::uint64_t value);
  std::int64_t new_baseptr(GuestPhysAddr root, std::uint64_t kind);
  std::int64_t set_gdt(GuestVirtAddr address, std::uint64_t entries);
  std::int64_t console_io(std::uint64_t operation, std::uint64_t count, GuestVirtAddr address);
  HypercallOutcome multicall(GuestVirtAddr address, std::uint64_t count,
                             monitor::GuestRegisters& registers);
  std::int64_t register_shared_info(GuestPhysAddr frame);
  std::int64_t port_io(std::uint64_t port, std::uint64_t flags, std::uint64_t value,
                       std::uint64_t count);
  std::int64_t iret(monitor::GuestRegisters& registers);

  // A batch (MMU_UPDATE, MULTICALL) of `count` elements: its outcome before
  // it runs, with its size for the trace and EINVAL if it is empty or larger
  // than kMaximumBatch.
  static HypercallOutcome start_batch(std::uint64_t count);
  // Runs a batch: each Element at `address` in turn is read, handed to
  // `handle` (which fills in its result) and written back. One the monitor
  // cannot read or write back ends it: those before it were applied and
  // carry their results, and the hypercall returns EFAULT (hypercall.h,
  // "Pointers"), as in Xen. Returns how many were written back.
  template <typename Element, typename Handle>
  std::uint64_t run_batch(GuestVirtAddr address, std::uint64_t count, Handle&& handle);
  // Applies one page-table write through the validator; flushes when a
  // present entry changed.
  std::int64_t apply_update(GuestPhysAddr pointer, std::uint64_t value);
  template <typename T>
  std::optional<T> read_virtual(GuestVirtAddr address);
  template <typename T>
  bool write_virtual(GuestVirtAddr address, const T& value);
  std::optional<vmlab_shared_info> shared_info() const;
  void write_shared_info(const vmlab_shared_info& info);

  GuestMemoryAccess& m_memory;
  PageTableValidator& m_validator;
  HypercallEnvironment& m_environment;
  ParaState& m_state;
};

std::string_view hypercall_name(std::uint64_t number);

}  // namespace vmlab::para
