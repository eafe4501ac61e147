#include "vmlab/devices/passthrough_controller.hpp"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <set>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace vmlab::devices {
namespace {

// Register access. The window is memory the guest writes while this thread
// runs, with no lock the guest could take, so every field is accessed
// through std::atomic_ref: each access is then a single naturally aligned
// load or store (the fields are naturally aligned in a page-aligned window,
// and the static_asserts below make sure no hidden lock is involved, since
// the guest's plain x86 loads and stores know nothing of one). Acquire on
// loads pairs with the driver's ordering of "commands, then sq_tail": once
// the new tail is seen, the commands it covers are visible. Release on
// stores makes everything the device wrote before (completions, counters)
// visible to whoever sees the new value. On x86 (TSO) both are plain moves.
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(alignof(vmlab_pt_registers) >= std::atomic_ref<std::uint64_t>::required_alignment);

template <typename T>
T load(T& field) {
  return std::atomic_ref<T>(field).load(std::memory_order_acquire);
}

template <typename T>
void store(T& field, T value) {
  std::atomic_ref<T>(field).store(value, std::memory_order_release);
}

void set_status(vmlab_pt_registers& registers, std::uint32_t bits) {
  std::atomic_ref<std::uint32_t>(registers.status).fetch_or(bits, std::memory_order_acq_rel);
}

void clear_status(vmlab_pt_registers& registers, std::uint32_t bits) {
  std::atomic_ref<std::uint32_t>(registers.status).fetch_and(~bits, std::memory_order_acq_rel);
}

// A device-owned counter register: only this thread writes it.
void increment(std::uint64_t& field) {
  store(field, load(field) + 1);
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Copies of the ABI structures as bytes, for DMA.
template <typename T>
std::span<std::uint8_t> bytes_of(T& object) {
  static_assert(std::is_trivially_copyable_v<T>);
  // The object representation of a trivially copyable type may be accessed
  // as unsigned char.
  return {reinterpret_cast<std::uint8_t*>(&object), sizeof(T)};
}

constexpr std::chrono::microseconds kShortestSleep{10};

std::mutex& claims_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::set<std::string>& claimed_devices() {  // guarded by claims_mutex()
  static std::set<std::string> devices;
  return devices;
}

}  // namespace

PassthroughController::PassthroughController(std::uint8_t* register_window,
                                             GuestMemoryAccess& memory, Iommu& iommu,
                                             BlockBackend& disk, InterruptCallback interrupt)
    // The window is a page of memory (an mmap'ed page, or a test buffer)
    // reserved for this layout; the guest sees the same bytes as struct
    // vmlab_pt_registers, and every access below goes through atomic_ref.
    : m_registers(reinterpret_cast<vmlab_pt_registers*>(register_window)),
      m_memory(memory),
      m_iommu(iommu),
      m_disk(disk),
      m_interrupt(std::move(interrupt)) {
  assert(register_window != nullptr &&
         reinterpret_cast<std::uintptr_t>(register_window) % alignof(vmlab_pt_registers) == 0);
  store(m_registers->magic, VMLAB_PT_MAGIC);
  store(m_registers->version, VMLAB_PT_VERSION);
  store(m_registers->capacity_sectors, m_disk.sector_count());
  store(m_registers->status, 0u);
  store(m_registers->fault_address, std::uint64_t{0});
  store(m_registers->commands_completed, std::uint64_t{0});
  store(m_registers->dma_faults, std::uint64_t{0});
}

PassthroughController::~PassthroughController() {
  stop();
}

Status PassthroughController::start() {
  if (m_thread.joinable()) return {};
  m_stop_requested.store(false, std::memory_order_release);
  try {
    m_thread = std::thread([this] { run(); });
  } catch (const std::system_error& error) {
    return Error::from_errno(PassthroughError::kThreadFailed,
                             "starting the passthrough device thread", error.code().value());
  }
  return {};
}

void PassthroughController::stop() {
  if (!m_thread.joinable()) return;
  {
    std::lock_guard lock(m_stop_mutex);
    m_stop_requested.store(true, std::memory_order_release);
  }
  m_stop_condition.notify_all();
  m_thread.join();
}

PassthroughCounters PassthroughController::counters() const {
  std::lock_guard lock(m_counters_mutex);
  return m_counters;
}

void PassthroughController::count(std::uint64_t PassthroughCounters::*counter,
                                  std::uint64_t amount) {
  std::lock_guard lock(m_counters_mutex);
  m_counters.*counter += amount;
}

// Adaptive polling: the doorbell is a plain memory write, so the device
// notices it only by looking. It spins (with PAUSE, kind to a sibling
// hyperthread) for kSpinWindow after the last activity, when the next
// command is likely close, then sleeps in doubling steps up to
// kLongestSleep. The sleep waits on m_stop_condition so stop() never waits
// for a step to end.
void PassthroughController::run() {
  auto last_activity = std::chrono::steady_clock::now();
  auto sleep = kShortestSleep;
  while (!m_stop_requested.load(std::memory_order_acquire)) {
    if (poll()) {
      last_activity = std::chrono::steady_clock::now();
      sleep = kShortestSleep;
      continue;
    }
    if (std::chrono::steady_clock::now() - last_activity < kSpinWindow) {
      cpu_relax();
      continue;
    }
    count(&PassthroughCounters::sleeps);
    std::unique_lock lock(m_stop_mutex);
    m_stop_condition.wait_for(lock, sleep,
                              [this] { return m_stop_requested.load(std::memory_order_acquire); });
    sleep = std::min(sleep * 2, kLongestSleep);
  }
}

bool PassthroughController::poll() {
  count(&PassthroughCounters::polls);
  const std::uint32_t control = load(m_registers->control);
  if ((control & VMLAB_PT_CONTROL_ENABLE) == 0) {
    if (m_state == State::Disabled) return false;
    // Clearing ENABLE resets the device, a FATAL state included.
    m_state = State::Disabled;
    clear_status(*m_registers, VMLAB_PT_STATUS_READY | VMLAB_PT_STATUS_FATAL);
    return true;
  }
  switch (m_state) {
    case State::Disabled:
      return enable();
    case State::Fatal:
      return false;
    case State::Serving:
      break;
  }

  // Indices from the guest are checked before they index anything: a
  // hostile tail or head stops the device instead of reaching past a queue.
  const std::uint32_t tail = load(m_registers->sq_tail);
  if (tail >= m_entries) {
    fail();
    return true;
  }
  bool posted = false;
  while (m_sq_head != tail && !m_stop_requested.load(std::memory_order_acquire)) {
    const std::uint32_t cq_head = load(m_registers->cq_head);
    if (cq_head >= m_entries) {
      fail();
      break;
    }
    // One slot stays free, so a full queue is told apart from an empty one
    // (as NVMe does): wait until the driver consumes a completion.
    if ((m_cq_tail + 1) % m_entries == cq_head) break;

    vmlab_pt_command command{};
    if (!dma_read(m_sq_address + std::uint64_t{m_sq_head} * sizeof(vmlab_pt_command),
                  bytes_of(command))) {
      fail();  // the submission queue was unmapped under the device
      break;
    }
    const std::uint16_t status = execute(command);

    // The entry without its phase first, then the phase: a driver polling
    // the phase sees a complete entry once the phase flips. x86 makes stores
    // visible in program order (Intel SDM vol. 3, 9.2.2), so only the
    // compiler must be kept from reordering or merging the two writes, which
    // is what a signal fence says (a thread fence would also do, but
    // ThreadSanitizer does not model one).
    vmlab_pt_completion completion{command.command_id, status, m_phase, 0};
    const std::uint64_t entry_address =
        m_cq_address + std::uint64_t{m_cq_tail} * sizeof(vmlab_pt_completion);
    auto entry = bytes_of(completion);
    constexpr std::size_t kPhaseOffset = offsetof(vmlab_pt_completion, phase);
    bool written = dma_write(entry_address, entry.first(kPhaseOffset));
    std::atomic_signal_fence(std::memory_order_release);
    written = written && dma_write(entry_address + kPhaseOffset, entry.subspan(kPhaseOffset));
    if (!written) {
      fail();  // the completion queue was unmapped under the device
      break;
    }

    m_sq_head = (m_sq_head + 1) % m_entries;
    m_cq_tail = (m_cq_tail + 1) % m_entries;
    if (m_cq_tail == 0) m_phase ^= 1;
    increment(m_registers->commands_completed);
    count(&PassthroughCounters::commands_completed);
    posted = true;
  }

  if (posted && (load(m_registers->control) & VMLAB_PT_CONTROL_INTERRUPTS) != 0) {
    store(m_registers->interrupt_cause, 1u);
    count(&PassthroughCounters::interrupts);
    if (m_interrupt) m_interrupt();
  }
  return posted;
}

bool PassthroughController::enable() {
  m_entries = load(m_registers->queue_entries);
  m_sq_address = load(m_registers->sq_address);
  m_cq_address = load(m_registers->cq_address);
  const bool power_of_two = m_entries >= 2 && (m_entries & (m_entries - 1)) == 0;
  if (!power_of_two || m_entries > VMLAB_PT_MAX_QUEUE_ENTRIES) {
    fail();
    return true;
  }
  // Both queues must be reachable in full now; each access is translated
  // again later, since the VMM may change the mappings.
  const DmaTranslation submission = m_iommu.translate(
      m_sq_address, std::uint64_t{m_entries} * sizeof(vmlab_pt_command), DmaDirection::Read);
  if (!submission) {
    fail();
    return true;
  }
  const DmaTranslation completion = m_iommu.translate(
      m_cq_address, std::uint64_t{m_entries} * sizeof(vmlab_pt_completion), DmaDirection::Write);
  if (!completion) {
    fail();
    return true;
  }
  m_sq_head = 0;
  m_cq_tail = 0;
  m_phase = 1;
  m_state = State::Serving;
  store(m_registers->capacity_sectors, m_disk.sector_count());
  clear_status(*m_registers, VMLAB_PT_STATUS_FATAL);
  set_status(*m_registers, VMLAB_PT_STATUS_READY);
  return true;
}

void PassthroughController::fail() {
  m_state = State::Fatal;
  clear_status(*m_registers, VMLAB_PT_STATUS_READY);
  set_status(*m_registers, VMLAB_PT_STATUS_FATAL);
}

std::uint16_t PassthroughController::execute(const vmlab_pt_command& command) {
  switch (command.opcode) {
    case VMLAB_PT_READ:
    case VMLAB_PT_WRITE:
      return transfer(command);
    case VMLAB_PT_FLUSH:
      count(&PassthroughCounters::flushes);
      if (!m_disk.flush()) {
        count(&PassthroughCounters::io_errors);
        return VMLAB_PT_ERROR_IO;
      }
      return VMLAB_PT_OK;
    default:
      count(&PassthroughCounters::invalid_commands);
      return VMLAB_PT_ERROR_INVALID;
  }
}

std::uint16_t PassthroughController::transfer(const vmlab_pt_command& command) {
  if (command.sector_count == 0 || command.sector_count > VMLAB_PT_MAX_TRANSFER_SECTORS) {
    count(&PassthroughCounters::invalid_commands);
    return VMLAB_PT_ERROR_INVALID;
  }
  const std::uint64_t capacity = m_disk.sector_count();
  if (command.sector >= capacity || command.sector_count > capacity - command.sector) {
    count(&PassthroughCounters::invalid_commands);
    return VMLAB_PT_ERROR_RANGE;
  }
  const bool to_memory = command.opcode == VMLAB_PT_READ;
  const std::uint64_t length = std::uint64_t{command.sector_count} * kSectorSize;
  const std::uint64_t offset = command.sector * kSectorSize;

  // The IOMMU translates the whole buffer before a byte moves: a DMA it
  // blocks anywhere moves nothing at all. A first look spares the disk a
  // transfer that cannot complete; the DMA itself translates again, under
  // the IOMMU's lock, since the VMM may change the mappings in between.
  const DmaTranslation translation = m_iommu.translate(
      command.buffer_address, length, to_memory ? DmaDirection::Write : DmaDirection::Read);
  if (!translation) {
    record_fault(translation.fault().iova);
    return VMLAB_PT_ERROR_DMA;
  }
  std::vector<std::uint8_t> data(length);
  if (to_memory) {
    count(&PassthroughCounters::reads);
    if (!m_disk.read(offset, data)) {
      count(&PassthroughCounters::io_errors);
      return VMLAB_PT_ERROR_IO;
    }
    if (!dma_write(command.buffer_address, data)) return VMLAB_PT_ERROR_DMA;
    count(&PassthroughCounters::bytes_to_memory, length);
  } else {
    count(&PassthroughCounters::writes);
    if (!dma_read(command.buffer_address, data)) return VMLAB_PT_ERROR_DMA;
    if (!m_disk.write(offset, data)) {
      count(&PassthroughCounters::io_errors);
      return VMLAB_PT_ERROR_IO;
    }
    count(&PassthroughCounters::bytes_to_disk, length);
  }
  return VMLAB_PT_OK;
}

void PassthroughController::record_fault(std::uint64_t iova) {
  store(m_registers->fault_address, iova);
  increment(m_registers->dma_faults);
  set_status(*m_registers, VMLAB_PT_STATUS_IOMMU_FAULT);
  count(&PassthroughCounters::dma_faults);
}

bool PassthroughController::dma_read(std::uint64_t iova, std::span<std::uint8_t> out) {
  if (const auto fault = m_iommu.copy_from_memory(iova, out, m_memory)) {
    record_fault(fault->iova);
    return false;
  }
  return true;
}

bool PassthroughController::dma_write(std::uint64_t iova, std::span<const std::uint8_t> in) {
  if (const auto fault = m_iommu.copy_to_memory(iova, in, m_memory)) {
    record_fault(fault->iova);
    return false;
  }
  return true;
}

void PassthroughController::ClaimToken::Release::operator()(const std::string* device) const {
  {
    std::lock_guard lock(claims_mutex());
    claimed_devices().erase(*device);
  }
  delete device;
}

Result<PassthroughController::ClaimToken> PassthroughController::claim(const std::string& device) {
  if (device.empty()) {
    return Error{PassthroughError::kUnnamed, "a passthrough device needs a name to be claimed by"};
  }
  std::lock_guard lock(claims_mutex());
  if (!claimed_devices().insert(device).second) {
    return Error{PassthroughError::kClaimed,
                 "the passthrough device " + device +
                     " already belongs to another VM: a passed-through device cannot be shared or "
                     "migrated"};
  }
  return ClaimToken(device);
}

}  // namespace vmlab::devices
