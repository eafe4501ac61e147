#include "vmlab/para/page_table_validator.hpp"

#include <algorithm>
#include <limits>
#include <utility>

#include "vmlab/format.hpp"

namespace vmlab::para {

namespace {

namespace entry_bits = page_entry;

constexpr unsigned kPageShift = 12;
constexpr std::uint64_t kEntrySize = 8;

// Below 32 GiB, guest RAM holds fewer than 2^32 eight-byte entries, and each
// entry adds at most 1 to any one frame's counts, so 32-bit counts cannot
// overflow. Only pins are not entries, and pin_root() checks them.
constexpr std::uint64_t kLargestGuestRam = 32 * GiB - kPageSize;

// Bits high:low set.
constexpr std::uint64_t bit_range(unsigned high, unsigned low) {
  return ((high >= 63 ? ~0ULL : (1ULL << (high + 1)) - 1)) & ~((1ULL << low) - 1);
}

bool page_aligned(std::uint64_t value) {
  return (value & (kPageSize - 1)) == 0;
}

bool is_leaf(std::uint64_t entry, unsigned level) {
  return level == 1 || (level == 2 && (entry & entry_bits::kLargePage) != 0);
}

// A 4 KiB page at level 1; a 2 MiB page at level 2 (SDM vol. 3A, 4.5,
// table 4-18: bits 51:21 locate it, bit 12 is its PAT bit).
std::uint64_t leaf_size(unsigned level) {
  return level == 1 ? kPageSize : monitor::kLargePageSize;
}
GuestPhysAddr leaf_base(std::uint64_t entry, unsigned level) {
  return GuestPhysAddr(entry & entry_bits::kAddressMask & ~(leaf_size(level) - 1));
}

// The table an entry above level 1 points at (SDM vol. 3A, 4.5, bits 51:12).
GuestPhysAddr table_of(std::uint64_t entry) {
  return GuestPhysAddr(entry & entry_bits::kAddressMask);
}

std::uint64_t frame_number(GuestPhysAddr address) {
  return address.value() >> kPageShift;
}

GuestPhysAddr frame_address(std::uint64_t frame) {
  return GuestPhysAddr(frame << kPageShift);
}

std::string entry_text(std::uint64_t entry, GuestPhysAddr location, unsigned level) {
  return "entry " + hex(entry) + " at " + hex(location.value()) + " (level " +
         std::to_string(level) + ")";
}

bool overlaps(const PhysicalRange& range, GuestPhysAddr base, std::uint64_t size) {
  return range.size != 0 && size != 0 && base < range.base + range.size && range.base < base + size;
}

}  // namespace

Result<PageTableValidator> PageTableValidator::create(GuestMemoryAccess& memory,
                                                      PageTableValidatorConfig config) {
  const std::uint64_t ram_size = config.guest_ram_size;
  const PhysicalRange& monitor = config.monitor;
  if (ram_size == 0 || !page_aligned(ram_size) || ram_size > kLargestGuestRam) {
    return Error{ParaError::kInvalidGuestRam,
                 "page-table validator: guest RAM size " + hex(ram_size) +
                     " must be a non-zero multiple of 4 KiB below 32 GiB"};
  }
  if (memory.size() < ram_size) {
    return Error{ParaError::kInvalidGuestRam,
                 "page-table validator: guest memory (" + hex(memory.size()) +
                     " bytes) is smaller than guest RAM (" + hex(ram_size) + " bytes)"};
  }
  if (config.physical_address_bits < 32 || config.physical_address_bits > 52) {
    return Error{ParaError::kInvalidPagingParameter,
                 "page-table validator: MAXPHYADDR " +
                     std::to_string(config.physical_address_bits) + " is outside [32, 52]"};
  }
  if (config.reserved_pml4_slot >= monitor::kPageTableEntries) {
    return Error{ParaError::kInvalidPagingParameter, "page-table validator: PML4 slot " +
                                                         std::to_string(config.reserved_pml4_slot) +
                                                         " does not exist; use 511"};
  }
  if (monitor.size == 0 || !page_aligned(monitor.base.value()) || !page_aligned(monitor.size) ||
      monitor.base.value() + monitor.size < monitor.base.value()) {
    return Error{ParaError::kInvalidLayout,
                 "page-table validator: the monitor region must be whole 4 KiB pages"};
  }
  if (overlaps(monitor, GuestPhysAddr(0), ram_size)) {
    return Error{ParaError::kInvalidLayout, "page-table validator: the monitor region " +
                                                describe_range(monitor.base, monitor.size) +
                                                " overlaps guest RAM; place it above " +
                                                hex(ram_size)};
  }
  for (const PhysicalRange& window : config.device_windows) {
    if (window.base + window.size < window.base || overlaps(window, GuestPhysAddr(0), ram_size) ||
        overlaps(window, monitor.base, monitor.size)) {
      return Error{ParaError::kInvalidLayout,
                   "page-table validator: device window " +
                       describe_range(window.base, window.size) +
                       " wraps around or overlaps guest RAM or the monitor region"};
    }
  }
  // The guest runs at CPL3, so a U=0 entry keeps it out of the monitor region
  // (SDM vol. 3A, 4.6.1), and the monitor's own tables must be out of the
  // guest's reach, inside the monitor region.
  const std::uint64_t monitor_entry = config.monitor_pml4_entry;
  if ((monitor_entry & entry_bits::kPresent) == 0 || (monitor_entry & entry_bits::kUser) != 0 ||
      (monitor_entry & entry_bits::kLargePage) != 0 ||
      !monitor.contains(GuestPhysAddr(monitor_entry & entry_bits::kAddressMask), kPageSize)) {
    return Error{ParaError::kInvalidMonitorEntry,
                 "page-table validator: the monitor's PML4 entry " + hex(monitor_entry) +
                     " must be present, supervisor-only and point at a table inside the monitor "
                     "region"};
  }
  return PageTableValidator(memory, std::move(config));
}

PageTableValidator::PageTableValidator(GuestMemoryAccess& memory, PageTableValidatorConfig config)
    : m_memory(&memory),
      m_config(std::move(config)),
      m_frames(m_config.guest_ram_size / kPageSize) {}

std::int64_t PageTableValidator::pin_root(GuestPhysAddr root) {
  const std::uint64_t address = root.value();  // for messages
  if (!page_aligned(address)) {
    return fail(VMLAB_EINVAL, "root " + hex(address) + " is not 4 KiB aligned");
  }
  if (overlaps_monitor(root, kPageSize)) {
    return fail(VMLAB_EPERM, "root " + hex(address) + " is in the monitor region");
  }
  if (!in_ram(root, kPageSize)) {
    return fail(VMLAB_EFAULT, "root " + hex(address) + " is outside guest RAM");
  }
  FrameState& state = m_frames[frame_number(root)];
  if (state.level == 4) {
    if (state.references == std::numeric_limits<std::uint32_t>::max()) {
      return fail(VMLAB_ENOMEM, "root " + hex(address) + " has too many pins");
    }
    ++state.references;
    return VMLAB_OK;
  }
  if (state.level != 0) {
    return fail(VMLAB_EBUSY, "root " + hex(address) + " is a level-" + std::to_string(state.level) +
                                 " table, not a PML4");
  }
  if (state.writable_mappings != 0) {
    return fail(VMLAB_EPERM, "root " + hex(address) + " has " +
                                 std::to_string(state.writable_mappings) +
                                 " writable mappings; map it read-only first");
  }
  if (const std::int64_t result = validate_new_table(frame_number(root), 4); result != VMLAB_OK) {
    return result;
  }
  const GuestPhysAddr slot = root + std::uint64_t{m_config.reserved_pml4_slot} * kEntrySize;
  if (!m_memory->write_object(slot, m_config.monitor_pml4_entry)) {
    drop_reference(frame_number(root));
    return fail(VMLAB_EFAULT, "cannot write the monitor entry at " + hex(slot.value()));
  }
  return VMLAB_OK;
}

std::int64_t PageTableValidator::unpin_root(GuestPhysAddr root) {
  const std::uint64_t address = root.value();  // for messages
  if (!page_aligned(address)) {
    return fail(VMLAB_EINVAL, "root " + hex(address) + " is not 4 KiB aligned");
  }
  if (!in_ram(root, kPageSize)) {
    return fail(VMLAB_EFAULT, "root " + hex(address) + " is outside guest RAM");
  }
  // A PML4 is only ever referenced by pins: no entry points at level 4.
  if (m_frames[frame_number(root)].level != 4) {
    return fail(VMLAB_EINVAL, "root " + hex(address) + " is not a pinned PML4");
  }
  drop_reference(frame_number(root));
  return VMLAB_OK;
}

UpdateResult PageTableValidator::update(GuestPhysAddr entry_pointer, std::uint64_t new_value) {
  const std::uint64_t address = entry_pointer.value();  // for messages and the index
  if ((address & (kEntrySize - 1)) != 0) {
    return {fail(VMLAB_EINVAL, "entry pointer " + hex(address) + " is not 8-byte aligned")};
  }
  if (!in_ram(entry_pointer, kEntrySize)) {
    return {fail(VMLAB_EFAULT, "entry pointer " + hex(address) + " is outside guest RAM")};
  }
  auto old_value = m_memory->read_object<std::uint64_t>(entry_pointer);
  if (!old_value) {
    return {fail(VMLAB_EFAULT, "cannot read the entry at " + hex(address))};
  }
  const FrameState& state = m_frames[frame_number(entry_pointer)];
  const unsigned level = state.level;
  if (level == 0) {
    // A table being built: validated as a whole when an entry first points at
    // it. The request is only a courtesy, unless the guest could not have
    // made the store itself.
    if (state.writable_mappings != 0) {
      return {fail(VMLAB_EPERM, "frame " + hex(address & ~(kPageSize - 1)) +
                                    " is not a page table and is mapped writable: write it "
                                    "directly")};
    }
    if (!m_memory->write_object(entry_pointer, new_value)) {
      return {fail(VMLAB_EFAULT, "cannot write the entry at " + hex(address))};
    }
    return {VMLAB_OK, false};
  }
  const auto index = static_cast<unsigned>((address & (kPageSize - 1)) / kEntrySize);
  if (skipped_slot(level, index)) {
    return {fail(VMLAB_EPERM, "entry at " + hex(address) + " is PML4 slot " +
                                  std::to_string(index) + ", which belongs to the monitor")};
  }
  // New before old, as Xen's mod_l1_entry does: if the new entry is refused,
  // nothing has changed yet.
  if (const std::int64_t result = validate_entry(new_value, level, entry_pointer);
      result != VMLAB_OK) {
    return {result, false};
  }
  if (!m_memory->write_object(entry_pointer, new_value)) {
    release_entry(new_value, level);
    return {fail(VMLAB_EFAULT, "cannot write the entry at " + hex(address))};
  }
  release_entry(*old_value, level);
  const bool was_present = (*old_value & entry_bits::kPresent) != 0;
  return {VMLAB_OK, was_present && *old_value != new_value};
}

unsigned PageTableValidator::level_of(GuestPhysAddr frame) const {
  const FrameState* state = state_of(frame);
  return state != nullptr ? state->level : 0;
}

std::uint32_t PageTableValidator::reference_count(GuestPhysAddr frame) const {
  const FrameState* state = state_of(frame);
  return state != nullptr ? state->references : 0;
}

std::uint32_t PageTableValidator::writable_mappings(GuestPhysAddr frame) const {
  const FrameState* state = state_of(frame);
  return state != nullptr ? state->writable_mappings : 0;
}

// Each validate_* call either succeeds with all its effects or fails with
// none of them, so a caller undoes its own earlier steps and nothing else.
std::int64_t PageTableValidator::validate_entry(std::uint64_t entry, unsigned level,
                                                GuestPhysAddr location) {
  if ((entry & entry_bits::kPresent) == 0) return VMLAB_OK;  // the CPU ignores the rest (SDM 4.5)
  if (const std::uint64_t reserved = entry & reserved_bits(entry, level); reserved != 0) {
    return fail(VMLAB_EINVAL,
                entry_text(entry, location, level) + " sets reserved bits " + hex(reserved));
  }
  if (level == 3 && (entry & entry_bits::kLargePage) != 0) {
    return fail(VMLAB_EINVAL, entry_text(entry, location, level) +
                                  " maps a 1 GiB page; para mode accepts 4 KiB and 2 MiB pages");
  }
  if (is_leaf(entry, level)) return validate_leaf(entry, level, location);
  return validate_table_pointer(entry, level, location);
}

std::int64_t PageTableValidator::validate_leaf(std::uint64_t entry, unsigned level,
                                               GuestPhysAddr location) {
  const GuestPhysAddr base = leaf_base(entry, level);
  const std::uint64_t size = leaf_size(level);
  // Before the RAM check, so the error names the real problem.
  if (overlaps_monitor(base, size)) {
    return fail(VMLAB_EPERM, entry_text(entry, location, level) + " maps the monitor region");
  }
  if (!in_ram(base, size)) {
    if (in_device_window(base, size)) return VMLAB_OK;
    return fail(VMLAB_EFAULT, entry_text(entry, location, level) + " maps " +
                                  describe_range(base, size) +
                                  ", not all of it in guest RAM or in one device window");
  }
  if ((entry & entry_bits::kWritable) == 0) return VMLAB_OK;
  const std::uint64_t first = frame_number(base);
  const std::uint64_t end = first + size / kPageSize;
  for (std::uint64_t frame = first; frame < end; ++frame) {
    if (m_frames[frame].level != 0) {
      return fail(VMLAB_EPERM, entry_text(entry, location, level) +
                                   " is writable and maps page-table frame " +
                                   hex(frame_address(frame).value()) + " (level " +
                                   std::to_string(m_frames[frame].level) + ")");
    }
  }
  for (std::uint64_t frame = first; frame < end; ++frame)
    ++m_frames[frame].writable_mappings;
  return VMLAB_OK;
}

std::int64_t PageTableValidator::validate_table_pointer(std::uint64_t entry, unsigned level,
                                                        GuestPhysAddr location) {
  const GuestPhysAddr table = table_of(entry);
  const unsigned child_level = level - 1;
  if (overlaps_monitor(table, kPageSize)) {
    return fail(VMLAB_EPERM,
                entry_text(entry, location, level) + " points at a table in the monitor region");
  }
  // Device windows hold pages, never tables: the CPU would walk MMIO.
  if (!in_ram(table, kPageSize)) {
    return fail(VMLAB_EFAULT,
                entry_text(entry, location, level) + " points at a table outside guest RAM");
  }
  FrameState& state = m_frames[frame_number(table)];
  if (state.level != 0) {
    if (state.progress == Progress::Validating) {
      return fail(VMLAB_EBUSY, entry_text(entry, location, level) + " points at " +
                                   hex(table.value()) + ", a level-" + std::to_string(state.level) +
                                   " table it is itself part of: a table may not reference "
                                   "itself or a table above it");
    }
    if (state.level != child_level) {
      return fail(VMLAB_EBUSY, entry_text(entry, location, level) + " uses " + hex(table.value()) +
                                   " as a level-" + std::to_string(child_level) +
                                   " table, but it is a level-" + std::to_string(state.level) +
                                   " table");
    }
    ++state.references;  // cannot overflow below kLargestGuestRam
    return VMLAB_OK;
  }
  if (state.writable_mappings != 0) {
    return fail(VMLAB_EPERM, entry_text(entry, location, level) + " uses " + hex(table.value()) +
                                 " as a level-" + std::to_string(child_level) + " table, but " +
                                 std::to_string(state.writable_mappings) +
                                 " writable mappings of it exist");
  }
  return validate_new_table(frame_number(table), child_level);
}

std::int64_t PageTableValidator::validate_new_table(std::uint64_t frame, unsigned level) {
  // Out of a device's reach before its contents are read, so what is
  // validated is what stays.
  protect_from_devices(frame, true);
  TableEntries entries{};
  if (const std::int64_t result = read_table(frame, entries); result != VMLAB_OK) {
    protect_from_devices(frame, false);
    return result;
  }
  FrameState& state = m_frames[frame];
  // Typed while its entries are checked: a writable leaf to it, or a pointer
  // back to it, from its own subtree is then refused like any other.
  state.level = static_cast<std::uint8_t>(level);
  state.progress = Progress::Validating;
  const GuestPhysAddr base = frame_address(frame);
  for (unsigned index = 0; index < monitor::kPageTableEntries; ++index) {
    if (skipped_slot(level, index)) continue;
    const GuestPhysAddr location = base + std::uint64_t{index} * kEntrySize;
    if (const std::int64_t result = validate_entry(entries[index], level, location);
        result != VMLAB_OK) {
      release_entries(entries, level, index);
      state.level = 0;
      state.progress = Progress::Settled;
      protect_from_devices(frame, false);
      return result;
    }
  }
  state.progress = Progress::Settled;
  state.references = 1;
  ++m_page_table_count;
  return VMLAB_OK;
}

// The exact inverse of a validate_entry() that succeeded on the same value.
void PageTableValidator::release_entry(std::uint64_t entry, unsigned level) {
  if ((entry & entry_bits::kPresent) == 0) return;
  if (!is_leaf(entry, level)) {
    drop_reference(frame_number(table_of(entry)));
    return;
  }
  const GuestPhysAddr base = leaf_base(entry, level);
  const std::uint64_t size = leaf_size(level);
  if ((entry & entry_bits::kWritable) == 0 || !in_ram(base, size)) return;
  const std::uint64_t first = frame_number(base);
  const std::uint64_t end = first + size / kPageSize;
  for (std::uint64_t frame = first; frame < end; ++frame)
    --m_frames[frame].writable_mappings;
}

void PageTableValidator::release_entries(const TableEntries& entries, unsigned level,
                                         unsigned count) {
  for (unsigned index = 0; index < count; ++index) {
    if (!skipped_slot(level, index)) release_entry(entries[index], level);
  }
}

void PageTableValidator::drop_reference(std::uint64_t frame) {
  FrameState& state = m_frames[frame];
  if (--state.references != 0) return;
  // The frame's contents are what was validated: since it was typed only
  // update() has changed them (and the CPU's accessed and dirty flags, which
  // change nothing here). A read cannot fail inside RAM; if it did, the
  // entries' contributions would stay counted, which only refuses more.
  TableEntries entries{};
  if (read_table(frame, entries) == VMLAB_OK) {
    release_entries(entries, state.level, monitor::kPageTableEntries);
  }
  state.level = 0;
  --m_page_table_count;
  protect_from_devices(frame, false);
}

void PageTableValidator::protect_from_devices(std::uint64_t frame, bool protect) {
  if (m_config.dma_remapping != nullptr) {
    m_config.dma_remapping->protect_from_device_writes(frame_address(frame), protect);
  }
}

std::int64_t PageTableValidator::read_table(std::uint64_t frame, TableEntries& entries) {
  const GuestPhysAddr address = frame_address(frame);
  // Reading the array's object representation through bytes is well defined:
  // std::uint64_t is trivially copyable, and the guest's entries are
  // little-endian like the host.
  auto status = m_memory->read(
      address, std::span(reinterpret_cast<std::uint8_t*>(entries.data()), kPageSize));
  if (!status) return fail(VMLAB_EFAULT, "cannot read the table at " + hex(address.value()));
  return VMLAB_OK;
}

// SDM vol. 3A, 4.5, tables 4-15 to 4-20. XD (bit 63) is accepted: if the
// monitor left EFER.NXE clear, the guest only faults on its own page.
std::uint64_t PageTableValidator::reserved_bits(std::uint64_t entry, unsigned level) const {
  std::uint64_t reserved = 0;
  if (m_config.physical_address_bits < 52) {
    reserved |= bit_range(51, m_config.physical_address_bits);
  }
  const bool large = (entry & entry_bits::kLargePage) != 0;
  if (level == 4) reserved |= entry_bits::kLargePage;
  if (level == 3 && large) reserved |= bit_range(29, 13);
  if (level == 2 && large) reserved |= bit_range(20, 13);
  return reserved;
}

bool PageTableValidator::skipped_slot(unsigned level, unsigned index) const {
  return level == 4 && index == m_config.reserved_pml4_slot;
}

bool PageTableValidator::in_ram(GuestPhysAddr base, std::uint64_t size) const {
  return size <= m_config.guest_ram_size && base.value() <= m_config.guest_ram_size - size;
}

bool PageTableValidator::in_device_window(GuestPhysAddr base, std::uint64_t size) const {
  return std::any_of(m_config.device_windows.begin(), m_config.device_windows.end(),
                     [&](const PhysicalRange& window) { return window.contains(base, size); });
}

bool PageTableValidator::overlaps_monitor(GuestPhysAddr base, std::uint64_t size) const {
  return overlaps(m_config.monitor, base, size);
}

const PageTableValidator::FrameState* PageTableValidator::state_of(GuestPhysAddr address) const {
  const std::uint64_t frame = frame_number(address);
  return frame < m_frames.size() ? &m_frames[frame] : nullptr;
}

std::int64_t PageTableValidator::fail(std::int64_t code, std::string detail) {
  m_last_error = std::move(detail);
  return code;
}

std::string_view describe_result(std::int64_t code) {
  switch (code) {
    case VMLAB_OK:
      return "OK: done";
    case VMLAB_EPERM:
      return "EPERM: a valid request the rules forbid (a monitor mapping, a writable page table)";
    case VMLAB_ENOMEM:
      return "ENOMEM: the monitor ran out of room for what was asked";
    case VMLAB_EFAULT:
      return "EFAULT: an address outside guest RAM";
    case VMLAB_EBUSY:
      return "EBUSY: the frame is in use as another kind of page";
    case VMLAB_EINVAL:
      return "EINVAL: a malformed argument";
    case VMLAB_ENOSYS:
      return "ENOSYS: no such hypercall";
    default:
      return "unknown result code";
  }
}

}  // namespace vmlab::para
