#include "vmlab/para/hypercalls.hpp"

#include <cstring>
#include <vector>

#include "vmlab/format.hpp"
#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/page_walker.hpp"

namespace vmlab::para {

namespace {

constexpr std::string_view kHypercallNames[] = {
    "set_trap_table",
    "mmu_update",
    "update_va_mapping",
    "new_baseptr",
    "set_gdt",
    "stack_switch",
    "sched_op",
    "iret",
    "console_io",
    "multicall",
    "register_shared_info",
    "set_callbacks",
    "port_io",
    "flush_tlb",
};
static_assert(std::size(kHypercallNames) == VMLAB_HYPERCALL_COUNT);

// A canonical 48-bit address (Intel SDM vol. 1, 3.3.7.1).
bool is_canonical(GuestVirtAddr address) {
  const auto upper = static_cast<std::int64_t>(address.value()) >> 47;
  return upper == 0 || upper == -1;
}

// Descriptor checks for SET_GDT (Intel SDM vol. 3A, 3.4.5 and 8.2.3): the
// guest may describe flat 64-bit code, data, and 64-bit TSS descriptors, all
// of which the monitor's own GDT provides; never a gate or an LDT, which
// could hand out a privilege the deprivileged kernel does not have.
enum class DescriptorCheck { Ok, SystemPair, Bad };

DescriptorCheck check_descriptor(std::uint64_t descriptor) {
  if (descriptor == 0) return DescriptorCheck::Ok;
  const auto type = static_cast<unsigned>(descriptor >> 40) & 0xf;
  const bool system = ((descriptor >> 44) & 1) == 0;
  const bool present = ((descriptor >> 47) & 1) != 0;
  if (!present) return DescriptorCheck::Ok;  // a not-present descriptor grants nothing
  if (system)
    return type == 0x9 || type == 0xb ? DescriptorCheck::SystemPair : DescriptorCheck::Bad;
  const bool code = (type & 0x8) != 0;
  const bool long_mode = ((descriptor >> 53) & 1) != 0;
  const bool default_size = ((descriptor >> 54) & 1) != 0;
  if (code && (!long_mode || default_size)) return DescriptorCheck::Bad;  // 64-bit code only
  return DescriptorCheck::Ok;
}

// STACK_SWITCH and SET_CALLBACKS: an address the monitor will jump or
// switch to later must be canonical now.
std::int64_t set_canonical(GuestVirtAddr& field, GuestVirtAddr address) {
  if (!is_canonical(address)) return VMLAB_EINVAL;
  field = address;
  return VMLAB_OK;
}

}  // namespace

std::string_view hypercall_name(std::uint64_t number) {
  return number < std::size(kHypercallNames) ? kHypercallNames[number] : "unknown";
}

template <typename T>
std::optional<T> Hypercalls::read_virtual(GuestVirtAddr address) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (!is_canonical(address)) return std::nullopt;
  T object{};
  // Reading the object representation of a trivially copyable type.
  auto fault = m_environment.kernel_memory().read(
      address, std::span(reinterpret_cast<std::uint8_t*>(&object), sizeof(T)),
      monitor::AccessPrivilege::Supervisor);
  if (fault) return std::nullopt;
  return object;
}

template <typename T>
bool Hypercalls::write_virtual(GuestVirtAddr address, const T& value) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (!is_canonical(address)) return false;
  auto fault = m_environment.kernel_memory().write(
      address, std::span(reinterpret_cast<const std::uint8_t*>(&value), sizeof(T)),
      monitor::AccessPrivilege::Supervisor);
  return !fault;
}

// A registered frame the guest has since made a page table is no shared page:
// the monitor's stores (a fault address the guest chose, counters) would
// become entries the validator never saw. Events stay masked instead.
std::optional<vmlab_shared_info> Hypercalls::shared_info() const {
  if (!m_state.shared_info || m_validator.is_page_table(*m_state.shared_info)) return std::nullopt;
  auto info = m_memory.read_object<vmlab_shared_info>(*m_state.shared_info);
  if (!info) return std::nullopt;
  return *info;
}

void Hypercalls::write_shared_info(const vmlab_shared_info& info) {
  if (!m_state.shared_info || m_validator.is_page_table(*m_state.shared_info)) return;
  // The frame was checked to lie in guest RAM when it was registered.
  (void)m_memory.write_object(*m_state.shared_info, info);
}

bool Hypercalls::events_masked() const {
  auto info = shared_info();
  return !info || info->upcall_mask != 0;
}

void Hypercalls::set_events_masked(bool masked) {
  if (auto info = shared_info()) {
    info->upcall_mask = masked ? 1 : 0;
    write_shared_info(*info);
  }
}

bool Hypercalls::event_pending_flag() const {
  auto info = shared_info();
  return info && info->upcall_pending != 0;
}

void Hypercalls::set_event_pending(bool pending) {
  if (auto info = shared_info()) {
    info->upcall_pending = pending ? 1 : 0;
    write_shared_info(*info);
  }
}

void Hypercalls::set_fault_address(GuestVirtAddr address) {
  if (auto info = shared_info()) {
    info->cr2 = address.value();
    write_shared_info(*info);
  }
}

void Hypercalls::count_hypercall() {
  if (auto info = shared_info()) {
    ++info->hypercalls;
    write_shared_info(*info);
  }
}

void Hypercalls::count_event() {
  if (auto info = shared_info()) {
    ++info->events_delivered;
    write_shared_info(*info);
  }
}

HypercallOutcome Hypercalls::call(monitor::GuestRegisters& registers) {
  const std::array<std::uint64_t, 5> arguments = {registers.rdi, registers.rsi, registers.rdx,
                                                  registers.r10, registers.r8};
  count_hypercall();
  auto outcome = dispatch(registers.rax, arguments, registers, /*batched=*/false);
  if (outcome.continuation != HypercallContinuation::Iret) {
    registers.rax = static_cast<std::uint64_t>(outcome.result);
  }
  return outcome;
}

HypercallOutcome Hypercalls::dispatch(std::uint64_t number,
                                      const std::array<std::uint64_t, 5>& arguments,
                                      monitor::GuestRegisters& registers, bool batched) {
  HypercallOutcome outcome;
  switch (number) {
    case VMLAB_HYPERCALL_SET_TRAP_TABLE:
      outcome.result = set_trap_table(GuestVirtAddr(arguments[0]), arguments[1]);
      break;
    case VMLAB_HYPERCALL_MMU_UPDATE:
      outcome = mmu_update(GuestVirtAddr(arguments[0]), arguments[1]);
      break;
    case VMLAB_HYPERCALL_UPDATE_VA_MAPPING:
      outcome.result = update_va_mapping(GuestVirtAddr(arguments[0]), arguments[1]);
      break;
    case VMLAB_HYPERCALL_NEW_BASEPTR:
      outcome.result = new_baseptr(GuestPhysAddr(arguments[0]), arguments[1]);
      break;
    case VMLAB_HYPERCALL_SET_GDT:
      outcome.result = set_gdt(GuestVirtAddr(arguments[0]), arguments[1]);
      break;
    case VMLAB_HYPERCALL_STACK_SWITCH:
      outcome.result = set_canonical(m_state.kernel_stack, GuestVirtAddr(arguments[0]));
      break;
    case VMLAB_HYPERCALL_SCHED_OP:
      if (arguments[0] == VMLAB_SCHED_YIELD) {
        outcome.result = VMLAB_OK;
      } else if (arguments[0] == VMLAB_SCHED_BLOCK && !batched) {
        // Xen's SCHEDOP_block: unmask and sleep, atomically with respect to
        // event delivery (the vCPU does not run in between).
        set_events_masked(false);
        outcome.result = VMLAB_OK;
        outcome.continuation = HypercallContinuation::Block;
      } else {
        outcome.result = VMLAB_EINVAL;
      }
      break;
    case VMLAB_HYPERCALL_IRET:
      if (batched) {
        outcome.result = VMLAB_EINVAL;
        break;
      }
      outcome.result = iret(registers);
      if (outcome.result == VMLAB_OK) outcome.continuation = HypercallContinuation::Iret;
      break;
    case VMLAB_HYPERCALL_CONSOLE_IO:
      outcome.result = console_io(arguments[0], arguments[1], GuestVirtAddr(arguments[2]));
      break;
    case VMLAB_HYPERCALL_MULTICALL:
      if (batched) {
        outcome.result = VMLAB_EINVAL;
        break;
      }
      outcome = multicall(GuestVirtAddr(arguments[0]), arguments[1], registers);
      break;
    case VMLAB_HYPERCALL_REGISTER_SHARED_INFO:
      outcome.result = register_shared_info(GuestPhysAddr(arguments[0]));
      break;
    case VMLAB_HYPERCALL_SET_CALLBACKS:
      outcome.result = set_canonical(m_state.syscall_entry, GuestVirtAddr(arguments[0]));
      break;
    case VMLAB_HYPERCALL_PORT_IO:
      outcome.result = port_io(arguments[0], arguments[1], arguments[2], arguments[3]);
      break;
    case VMLAB_HYPERCALL_FLUSH_TLB:
      m_environment.flush_translations();
      outcome.result = VMLAB_OK;
      break;
    default:
      outcome.result = VMLAB_ENOSYS;
      break;
  }
  if (outcome.detail.empty()) {
    outcome.detail = std::string(hypercall_name(number)) + "(" + hex(arguments[0]) + ", " +
                     hex(arguments[1]) + ") = " + std::to_string(outcome.result);
  }
  return outcome;
}

std::int64_t Hypercalls::set_trap_table(GuestVirtAddr address, std::uint64_t count) {
  if (count > m_state.trap_table.size()) return VMLAB_EINVAL;
  // Read and check every entry before installing any, so a bad table
  // changes nothing.
  std::vector<vmlab_trap_info> entries;
  entries.reserve(count);
  for (std::uint64_t index = 0; index < count; ++index) {
    auto entry = read_virtual<vmlab_trap_info>(address + index * sizeof(vmlab_trap_info));
    if (!entry) return VMLAB_EFAULT;
    if (entry->handler != 0 && !is_canonical(GuestVirtAddr(entry->handler))) return VMLAB_EINVAL;
    if ((entry->flags & ~static_cast<unsigned>(VMLAB_TRAP_MASK_EVENTS)) != 0) return VMLAB_EINVAL;
    entries.push_back(*entry);
  }
  for (const auto& entry : entries) {
    m_state.trap_table[entry.vector] = {GuestVirtAddr(entry.handler),
                                        (entry.flags & VMLAB_TRAP_MASK_EVENTS) != 0};
  }
  return VMLAB_OK;
}

std::int64_t Hypercalls::apply_update(GuestPhysAddr pointer, std::uint64_t value) {
  auto update = m_validator.update(pointer, value);
  if (update.result == VMLAB_OK && update.flush_needed) m_environment.flush_translations();
  return update.result;
}

HypercallOutcome Hypercalls::start_batch(std::uint64_t count) {
  HypercallOutcome outcome;
  outcome.batch_size = static_cast<std::uint32_t>(std::min(count, kMaximumBatch));
  if (count == 0 || count > kMaximumBatch) outcome.result = VMLAB_EINVAL;
  return outcome;
}

template <typename Element, typename Handle>
std::uint64_t Hypercalls::run_batch(GuestVirtAddr address, std::uint64_t count, Handle&& handle) {
  for (std::uint64_t index = 0; index < count; ++index) {
    const GuestVirtAddr element_address = address + index * sizeof(Element);
    auto element = read_virtual<Element>(element_address);
    if (!element) return index;
    handle(*element);
    if (!write_virtual(element_address, *element)) return index;
  }
  return count;
}

HypercallOutcome Hypercalls::mmu_update(GuestVirtAddr address, std::uint64_t count) {
  HypercallOutcome outcome = start_batch(count);
  if (outcome.result != VMLAB_OK) return outcome;
  std::int64_t succeeded = 0;
  std::int64_t first_error = VMLAB_OK;
  const std::uint64_t done =
      run_batch<vmlab_mmu_update>(address, count, [&](vmlab_mmu_update& request) {
        request.result = apply_update(GuestPhysAddr(request.pointer), request.value);
        if (request.result == VMLAB_OK) {
          ++succeeded;
        } else if (first_error == VMLAB_OK) {
          first_error = request.result;
        }
      });
  const bool array_faulted = done != count;
  if (array_faulted && first_error == VMLAB_OK) first_error = VMLAB_EFAULT;
  outcome.result = array_faulted ? VMLAB_EFAULT : succeeded;
  outcome.detail = "mmu_update(" + std::to_string(count) +
                   " requests) = " + std::to_string(succeeded) +
                   (first_error == VMLAB_OK ? "" : ", first error " + std::to_string(first_error));
  return outcome;
}

std::int64_t Hypercalls::update_va_mapping(GuestVirtAddr virtual_address, std::uint64_t value) {
  if (!is_canonical(virtual_address) || m_state.kernel_root == GuestPhysAddr()) return VMLAB_EINVAL;
  // The 4 KiB entry for the address: walk the kernel-mode tables down to
  // the page table that holds it (SDM vol. 3A, 4.5).
  GuestPhysAddr table = m_state.kernel_root;
  for (unsigned level = 4; level > 1; --level) {
    const GuestPhysAddr entry_address =
        table + monitor::table_index(virtual_address, level) * sizeof(std::uint64_t);
    auto entry = m_memory.read_object<std::uint64_t>(entry_address);
    if (!entry) return VMLAB_EFAULT;
    if ((*entry & page_entry::kPresent) == 0) return VMLAB_EFAULT;
    if ((*entry & page_entry::kLargePage) != 0) return VMLAB_EINVAL;
    table = GuestPhysAddr(*entry & page_entry::kAddressMask);
  }
  return apply_update(table + monitor::table_index(virtual_address, 1) * sizeof(std::uint64_t),
                      value);
}

std::int64_t Hypercalls::new_baseptr(GuestPhysAddr root, std::uint64_t kind) {
  if (kind != VMLAB_BASEPTR_KERNEL && kind != VMLAB_BASEPTR_USER) return VMLAB_EINVAL;
  GuestPhysAddr& current = kind == VMLAB_BASEPTR_KERNEL ? m_state.kernel_root : m_state.user_root;
  const GuestPhysAddr none;
  if (kind == VMLAB_BASEPTR_USER && root == none) {
    if (current != none) (void)m_validator.unpin_root(current);
    current = none;
    return VMLAB_OK;
  }
  if (root == current) return VMLAB_OK;
  const std::int64_t result = m_validator.pin_root(root);
  if (result != VMLAB_OK) return result;
  if (current != none) (void)m_validator.unpin_root(current);
  current = root;
  if (kind == VMLAB_BASEPTR_KERNEL) m_environment.kernel_root_changed(root);
  return VMLAB_OK;
}

std::int64_t Hypercalls::set_gdt(GuestVirtAddr address, std::uint64_t entries) {
  if (entries == 0 || entries > 8192) return VMLAB_EINVAL;  // a GDT holds 8192 descriptors
  for (std::uint64_t index = 0; index < entries; ++index) {
    auto descriptor = read_virtual<std::uint64_t>(address + index * 8);
    if (!descriptor) return VMLAB_EFAULT;
    switch (check_descriptor(*descriptor)) {
      case DescriptorCheck::Ok:
        break;
      case DescriptorCheck::SystemPair:
        ++index;  // the upper half of a 16-byte TSS descriptor
        if (index >= entries) return VMLAB_EINVAL;
        break;
      case DescriptorCheck::Bad:
        return VMLAB_EPERM;
    }
  }
  m_state.gdt_address = address;
  m_state.gdt_entries = static_cast<std::uint32_t>(entries);
  return VMLAB_OK;
}

std::int64_t Hypercalls::console_io(std::uint64_t operation, std::uint64_t count,
                                    GuestVirtAddr address) {
  if (operation != VMLAB_CONSOLE_WRITE || count > kMaximumConsoleWrite) return VMLAB_EINVAL;
  std::string text(count, '\0');
  if (!is_canonical(address) ||
      m_environment.kernel_memory().read(
          address, std::span(reinterpret_cast<std::uint8_t*>(text.data()), text.size()),
          monitor::AccessPrivilege::Supervisor)) {
    return VMLAB_EFAULT;
  }
  m_environment.console_write(text);
  return static_cast<std::int64_t>(count);
}

HypercallOutcome Hypercalls::multicall(GuestVirtAddr address, std::uint64_t count,
                                       monitor::GuestRegisters& registers) {
  HypercallOutcome outcome = start_batch(count);
  if (outcome.result != VMLAB_OK) return outcome;
  const std::uint64_t ran = run_batch<vmlab_multicall>(address, count, [&](vmlab_multicall& entry) {
    const std::array<std::uint64_t, 5> arguments = {entry.arguments[0], entry.arguments[1],
                                                    entry.arguments[2], entry.arguments[3],
                                                    entry.arguments[4]};
    entry.result = dispatch(entry.op, arguments, registers, /*batched=*/true).result;
  });
  outcome.result = ran != count ? VMLAB_EFAULT : static_cast<std::int64_t>(ran);
  outcome.detail = "multicall(" + std::to_string(count) + " calls) = " + std::to_string(ran);
  return outcome;
}

std::int64_t Hypercalls::register_shared_info(GuestPhysAddr frame) {
  if ((frame.value() & (kPageSize - 1)) != 0) return VMLAB_EINVAL;
  if (!m_memory.contains(frame, kPageSize)) return VMLAB_EFAULT;
  // The monitor writes this page from the host: it must not be a page table.
  if (m_validator.is_page_table(frame)) return VMLAB_EBUSY;
  m_state.shared_info = frame;
  vmlab_shared_info info{};
  info.upcall_mask = 1;  // events stay masked until the kernel unmasks them
  write_shared_info(info);
  return VMLAB_OK;
}

std::int64_t Hypercalls::port_io(std::uint64_t port, std::uint64_t flags, std::uint64_t value,
                                 std::uint64_t count) {
  const unsigned size = static_cast<unsigned>(flags & VMLAB_PORT_SIZE_MASK);
  const std::uint64_t known = VMLAB_PORT_SIZE_MASK | VMLAB_PORT_INPUT | VMLAB_PORT_STRING;
  if (port > 0xffff || (flags & ~known) != 0 || (size != 1 && size != 2 && size != 4)) {
    return VMLAB_EINVAL;
  }
  const auto port16 = static_cast<std::uint16_t>(port);
  const bool input = (flags & VMLAB_PORT_INPUT) != 0;
  if ((flags & VMLAB_PORT_STRING) == 0) {
    if (input) return m_environment.port_read(port16, size);
    m_environment.port_write(port16, size, static_cast<std::uint32_t>(value));
    return VMLAB_OK;
  }
  // ins/outs on the kernel's behalf (SDM vol. 2A, INS/OUTS): the buffer is
  // checked whole first, so a bad pointer moves no data.
  const std::uint64_t bytes = count * size;
  if (count == 0 || count > kMaximumPortString) return VMLAB_EINVAL;
  std::vector<std::uint8_t> buffer(bytes);
  auto& memory = m_environment.kernel_memory();
  const GuestVirtAddr buffer_address(value);  // the string forms' buffer
  if (!is_canonical(buffer_address) || !is_canonical(buffer_address + (bytes - 1))) {
    return VMLAB_EFAULT;
  }
  if (input) {
    // Writable check first: a read-only buffer must not swallow device data.
    // Writing back what the buffer holds probes every page without changing it.
    if (memory.read(buffer_address, buffer, monitor::AccessPrivilege::Supervisor) ||
        memory.write(buffer_address, buffer, monitor::AccessPrivilege::Supervisor)) {
      return VMLAB_EFAULT;
    }
    for (std::uint64_t index = 0; index < count; ++index) {
      const std::uint32_t element = m_environment.port_read(port16, size);
      std::memcpy(buffer.data() + index * size, &element, size);
    }
    if (memory.write(buffer_address, buffer, monitor::AccessPrivilege::Supervisor)) {
      return VMLAB_EFAULT;
    }
  } else {
    if (memory.read(buffer_address, buffer, monitor::AccessPrivilege::Supervisor)) {
      return VMLAB_EFAULT;
    }
    for (std::uint64_t index = 0; index < count; ++index) {
      std::uint32_t element = 0;
      std::memcpy(&element, buffer.data() + index * size, size);
      m_environment.port_write(port16, size, element);
    }
  }
  return static_cast<std::int64_t>(count);
}

std::int64_t Hypercalls::iret(monitor::GuestRegisters& registers) {
  auto frame = read_virtual<vmlab_iret_frame>(GuestVirtAddr(registers.rsp));
  if (!frame) return VMLAB_EFAULT;
  const auto target_cpl = static_cast<std::uint8_t>(frame->cs & 3);
  if (target_cpl != 0 && target_cpl != 3) return VMLAB_EINVAL;
  if (!is_canonical(GuestVirtAddr(frame->rip)) || !is_canonical(GuestVirtAddr(frame->rsp))) {
    return VMLAB_EINVAL;
  }
  registers.rax = frame->rax;
  registers.rcx = frame->rcx;
  registers.r11 = frame->r11;
  registers.rip = frame->rip;
  registers.rsp = frame->rsp;
  // IF is the event mask; IOPL stays 0 (port access goes through PORT_IO);
  // the rest of RFLAGS is the guest's own arithmetic state.
  set_events_masked((frame->rflags & kRflagsInterrupt) == 0);
  registers.rflags =
      (frame->rflags & ~(kRflagsIoplMask | kRflagsNestedTask | kRflagsVirtual8086)) | kRflagsFixed;
  m_state.cpl = target_cpl;
  return VMLAB_OK;
}

}  // namespace vmlab::para
