#include "vmlab/full/shadow_pager.hpp"
#include "vmlab/format.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>

namespace vmlab::full {

// The monitor this technique is built on (modes/monitor/).
using namespace monitor;  // NOLINT(google-build-using-namespace)

namespace {

constexpr unsigned kMonitorSlot = 511;

// Intermediate shadow entries grant everything; each leaf carries the rights
// of the whole guest walk (SDM 4.6.1 combines them across levels), which is
// correct because no shadow table is shared between two guest paths. A and D
// are set in advance so the CPU never writes the shadow entries.
constexpr std::uint64_t kShadowTableFlags =
    page_entry::kPresent | page_entry::kWritable | page_entry::kUser | page_entry::kAccessed;
// The monitor region: supervisor-only (U=0 in the slot-511 PML4 entry already
// makes every address under it supervisor, SDM 4.6.1).
constexpr std::uint64_t kMonitorTableFlags =
    page_entry::kPresent | page_entry::kWritable | page_entry::kAccessed;
constexpr std::uint64_t kMonitorLeafFlags = kMonitorTableFlags | page_entry::kDirty;

constexpr std::uint64_t kMinimumFreeTables = 8;  // two roots and one fill's three tables, twice

bool overlaps(const PhysicalRange& range, std::uint64_t start, std::uint64_t end) {
  return range.base.value() < end && start < range.base.value() + range.size;
}

bool page_aligned(std::uint64_t value) {
  return (value & (kPageSize - 1)) == 0;
}

}  // namespace

Result<std::unique_ptr<ShadowPager>> ShadowPager::create(GuestMemoryAccess& memory,
                                                         ShadowPagerConfig config) {
  const auto& monitor = config.monitor;
  const auto& pool = config.table_pool;
  if (config.guest_ram_size == 0 || !page_aligned(config.guest_ram_size)) {
    return Error{ShadowPagingError::kInvalidLayout, "shadow pager: guest RAM size " +
                                                        hex(config.guest_ram_size) +
                                                        " is not a non-zero multiple of 4 KiB"};
  }
  if (monitor.size == 0 || !page_aligned(monitor.base.value()) || !page_aligned(monitor.size) ||
      monitor.base.value() + monitor.size < monitor.base.value()) {
    return Error{ShadowPagingError::kInvalidLayout,
                 "shadow pager: the monitor region must be whole 4 KiB pages"};
  }
  if (overlaps(monitor, 0, config.guest_ram_size)) {
    return Error{ShadowPagingError::kInvalidLayout,
                 "shadow pager: the monitor region " + describe_range(monitor.base, monitor.size) +
                     " overlaps guest RAM; place it above " + hex(config.guest_ram_size)};
  }
  for (const auto& window : config.device_windows) {
    if (overlaps(window, 0, config.guest_ram_size) ||
        overlaps(window, monitor.base.value(), monitor.base.value() + monitor.size)) {
      return Error{ShadowPagingError::kInvalidLayout,
                   "shadow pager: device window " + describe_range(window.base, window.size) +
                       " overlaps guest RAM or the monitor region"};
    }
  }
  const GuestVirtAddr virtual_base = config.monitor_virtual_base;
  if (!page_aligned(virtual_base.value()) || table_index(virtual_base, 4) != kMonitorSlot ||
      (virtual_base.value() >> 48) != 0xffff ||
      monitor.size > (std::numeric_limits<std::uint64_t>::max() - virtual_base.value()) + 1) {
    return Error{
        ShadowPagingError::kInvalidLayout,
        "shadow pager: the monitor's virtual base " + hex(virtual_base.value()) +
            " must be a canonical, page-aligned address in PML4 slot 511 with room for the "
            "region"};
  }
  if (pool.size == 0 || !page_aligned(pool.base.value()) || !page_aligned(pool.size) ||
      !monitor.contains(pool.base, pool.size)) {
    return Error{ShadowPagingError::kInvalidLayout,
                 "shadow pager: the table pool " + describe_range(pool.base, pool.size) +
                     " must be whole 4 KiB pages inside the monitor region " +
                     describe_range(monitor.base, monitor.size)};
  }
  if (config.translation_cache) {
    const auto& cache = *config.translation_cache;
    const std::uint64_t start = cache.physical.base.value();
    const std::uint64_t end = start + cache.physical.size;
    const std::uint64_t monitor_first = table_index(virtual_base, 3);
    const std::uint64_t monitor_last = table_index(virtual_base + (monitor.size - 1), 3);
    const bool inside_slot = table_index(cache.virtual_base, 4) == kMonitorSlot &&
                             (cache.virtual_base.value() >> 48) == 0xffff &&
                             cache.physical.size <= ~cache.virtual_base.value() + 1;
    const std::uint64_t cache_first = table_index(cache.virtual_base, 3);
    const std::uint64_t cache_last =
        inside_slot ? table_index(cache.virtual_base + (cache.physical.size - 1), 3) : 0;
    bool outside_windows = true;
    for (const auto& window : config.device_windows)
      outside_windows = outside_windows && !overlaps(window, start, end);
    if (cache.physical.size == 0 || !page_aligned(start) || !page_aligned(cache.physical.size) ||
        end < start || overlaps(monitor, start, end) || start < config.guest_ram_size ||
        !outside_windows || !page_aligned(cache.virtual_base.value()) || !inside_slot ||
        (cache_first <= monitor_last && monitor_first <= cache_last) ||
        !page_aligned(cache.writable_bytes) || !page_aligned(cache.code_offset) ||
        cache.writable_bytes > cache.code_offset || cache.code_offset > cache.physical.size) {
      return Error{ShadowPagingError::kInvalidLayout,
                   "shadow pager: the translation cache " +
                       describe_range(cache.physical.base, cache.physical.size) + " at " +
                       hex(cache.virtual_base.value()) +
                       " must be whole pages outside RAM, the monitor region and the device "
                       "windows, in PML4 slot 511 beside the monitor's mapping, its writable "
                       "pages before its code"};
    }
  }
  if (pool.size / kPageSize > std::numeric_limits<std::uint32_t>::max()) {
    return Error{ShadowPagingError::kInvalidLayout, "shadow pager: the table pool is too large"};
  }
  // The pool is not cleared here: allocate() clears each table when it hands
  // it out, and the CPU only reaches tables through entries pointing at
  // them. Clearing megabytes up front would cost start-up time and touch
  // every page of a pool a short run never uses.
  if (config.cached_address_spaces == 0) config.cached_address_spaces = 1;

  std::unique_ptr<ShadowPager> pager(new ShadowPager(memory, std::move(config)));
  if (auto status = pager->build_monitor_mapping(); !status) return status.error();
  if (pager->m_config.translation_cache) {
    if (auto status = pager->build_translation_cache_mapping(); !status) return status.error();
  }
  if (pager->m_free.size() < kMinimumFreeTables) {
    return Error{ShadowPagingError::kPoolTooSmall,
                 "shadow pager: the table pool (" + std::to_string(pager->m_tables.size()) +
                     " pages) leaves fewer than " + std::to_string(kMinimumFreeTables) +
                     " pages after the monitor mapping; make it larger"};
  }
  // No address space until the first set_guest_cr3(): a root beyond any RAM
  // (a detached one, only the monitor mapping), so guest frame 0 is not taken
  // for a page table.
  pager->m_walker.set_root(page_entry::kAddressMask);
  pager->make_current_space();
  if (pager->m_failure) return *pager->m_failure;
  return pager;
}

ShadowPager::ShadowPager(GuestMemoryAccess& memory, ShadowPagerConfig config)
    : m_memory(&memory),
      m_config(std::move(config)),
      m_walker(memory, m_config.guest_ram_size,
               PageWalkerOptions{m_config.device_windows, kMonitorSlot}) {
  const auto pages = static_cast<std::uint32_t>(m_config.table_pool.size / kPageSize);
  m_tables.resize(pages);
  // m_entries grows in allocate(), up to the highest table handed out.
  m_free.reserve(pages);
  // Hand out low pool pages first: the free list is a stack.
  for (std::uint32_t table = pages; table > 0; --table)
    m_free.push_back(table - 1);
  m_walker.set_write_observer([this](GuestPhysAddr address, std::uint64_t length) {
    guest_page_table_written(address, length);
  });
}

Status ShadowPager::build_monitor_mapping() {
  auto pdpt = allocate(TableRole::Monitor, 3, GuestPhysAddr());
  if (!pdpt)
    return Error{ShadowPagingError::kPoolTooSmall,
                 "shadow pager: the table pool is too small for the monitor mapping"};
  m_monitor_pdpt = *pdpt;
  return map_region(m_monitor_pdpt, m_config.monitor_virtual_base, m_config.monitor.size,
                    kMonitorTableFlags, [&](std::uint64_t offset) {
                      return (m_config.monitor.base.value() + offset) | kMonitorLeafFlags;
                    });
}

// The kernel view's slot 511 under bt: the monitor's entries, supervisor-only
// as in the other view (U=0 in each PDPT entry), and the TC's, user-accessible
// all the way down (SDM 4.6.1: U/S must be 1 at every level).
Status ShadowPager::build_translation_cache_mapping() {
  const auto& cache = *m_config.translation_cache;
  auto pdpt = allocate(TableRole::Monitor, 3, GuestPhysAddr());
  if (!pdpt) {
    return Error{ShadowPagingError::kPoolTooSmall,
                 "shadow pager: the table pool is too small for the translation cache mapping"};
  }
  m_kernel_slot_pdpt = *pdpt;
  for (unsigned index = 0; index < kPageTableEntries; ++index)
    store(m_kernel_slot_pdpt, index, entry(m_monitor_pdpt, index));
  m_translation_cache_leaves.clear();
  return map_region(
      m_kernel_slot_pdpt, cache.virtual_base, cache.physical.size, kShadowTableFlags,
      [&](std::uint64_t offset) {
        return translation_cache_leaf(offset, offset < cache.writable_bytes);
      },
      &m_translation_cache_leaves);
}

std::uint64_t ShadowPager::translation_cache_leaf(std::uint64_t offset, bool writable) const {
  const auto& cache = *m_config.translation_cache;
  std::uint64_t value = (cache.physical.base.value() + offset) | page_entry::kPresent |
                        page_entry::kUser | page_entry::kAccessed | page_entry::kDirty;
  if (writable) value |= page_entry::kWritable;
  if (offset < cache.code_offset) value |= page_entry::kExecuteDisable;
  return value;
}

Status ShadowPager::map_region(std::uint32_t pdpt, GuestVirtAddr virtual_base, std::uint64_t size,
                               std::uint64_t table_flags,
                               const std::function<std::uint64_t(std::uint64_t)>& leaf,
                               std::vector<EntryLocation>* leaves) {
  for (std::uint64_t offset = 0; offset < size; offset += kPageSize) {
    const GuestVirtAddr address = virtual_base + offset;
    std::uint32_t table = pdpt;
    for (unsigned level = 3; level > 1; --level) {
      const unsigned index = table_index(address, level);
      if ((entry(table, index) & page_entry::kPresent) == 0) {
        auto child = allocate(TableRole::Monitor, level - 1, GuestPhysAddr());
        if (!child) {
          return Error{ShadowPagingError::kPoolTooSmall,
                       "shadow pager: the table pool is too small to map the monitor region"};
        }
        store(table, index, table_address(*child).value() | table_flags);
      }
      table = table_at(entry(table, index));
    }
    store(table, table_index(address, 1), leaf(offset));
    if (leaves != nullptr) leaves->push_back({table, table_index(address, 1)});
  }
  if (m_failure) return *m_failure;
  return {};
}

// ---- Pool pages and entries ------------------------------------------------

GuestPhysAddr ShadowPager::table_address(std::uint32_t table) const {
  return m_config.table_pool.base + std::uint64_t{table} * kPageSize;
}

std::uint32_t ShadowPager::table_at(std::uint64_t value) const {
  return static_cast<std::uint32_t>(
      ((value & page_entry::kAddressMask) - m_config.table_pool.base.value()) / kPageSize);
}

std::uint64_t ShadowPager::entry(std::uint32_t table, unsigned index) const {
  return m_entries[std::size_t{table} * kPageTableEntries + index];
}

void ShadowPager::store(std::uint32_t table, unsigned index, std::uint64_t value) {
  std::uint64_t& slot = m_entries[std::size_t{table} * kPageTableEntries + index];
  const std::uint64_t old = slot;
  if (old == value) return;
  constexpr std::uint64_t kWritableLeaf = page_entry::kPresent | page_entry::kWritable;
  if (m_tables[table].level == 1 && m_tables[table].role != TableRole::Monitor) {
    const EntryLocation location{table, index};
    if ((old & kWritableLeaf) == kWritableLeaf) {
      forget_writable_leaf(old & page_entry::kAddressMask, location);
    }
    if ((value & kWritableLeaf) == kWritableLeaf) {
      m_writable_leaves[value & page_entry::kAddressMask].push_back(location);
    }
  }
  // A translation the TLB may hold is now wrong unless the change only adds
  // rights to the same frame (a stale, stricter entry just faults again and
  // that #PF drops it, SDM 4.10.4.3).
  if ((old & page_entry::kPresent) != 0) {
    const std::uint64_t kept = old & value;
    const bool same_frame = (old & page_entry::kAddressMask) == (value & page_entry::kAddressMask);
    const bool lost_rights = (kept & kWritableLeaf) != (old & kWritableLeaf) ||
                             ((value & ~old) & page_entry::kExecuteDisable) != 0;
    if (!same_frame || lost_rights) m_flush_requested = true;
  }
  slot = value;
  auto status = m_memory->write_object(table_address(table) + std::uint64_t{index} * 8, value);
  if (!status && !m_failure) {
    m_failure = Error{ShadowPagingError::kTableAccessFailed,
                      "shadow pager: writing a shadow entry failed: " + status.error().message};
  }
}

void ShadowPager::clear_entry(std::uint32_t table, unsigned index) {
  const std::uint64_t old = entry(table, index);
  if ((old & page_entry::kPresent) == 0) return;
  store(table, index, 0);
  if (m_tables[table].level > 1) release(table_at(old));
}

std::optional<std::uint32_t> ShadowPager::allocate(TableRole role, unsigned level,
                                                   GuestPhysAddr guest_table) {
  if (m_free.empty()) return std::nullopt;
  const std::uint32_t table = m_free.back();
  m_free.pop_back();
  m_tables[table] = Table{role, level, guest_table};
  const std::size_t first = std::size_t{table} * kPageTableEntries;
  if (m_entries.size() < first + kPageTableEntries) {
    // A table never handed out before: the free list gives low pages first,
    // so the copy grows (zeroed) only as far as the pool is used.
    m_entries.resize(first + kPageTableEntries);
  } else {
    std::fill_n(m_entries.begin() + static_cast<std::ptrdiff_t>(first), kPageTableEntries, 0);
  }
  if (auto status = m_memory->fill(table_address(table), 0, kPageSize); !status && !m_failure) {
    m_failure = Error{ShadowPagingError::kTableAccessFailed,
                      "shadow pager: clearing a shadow table failed: " + status.error().message};
  }
  if (role == TableRole::Mirror) {
    auto& mirrors = m_mirrors[guest_table.value()];
    mirrors.push_back(table);
    // The frame is a page table from now on: no shadow leaf may let the
    // guest write it without a fault.
    if (mirrors.size() == 1) write_protect(guest_table);
  }
  return table;
}

void ShadowPager::release(std::uint32_t table) {
  const Table record = m_tables[table];
  for (unsigned index = 0; index < kPageTableEntries; ++index) {
    const std::uint64_t value = entry(table, index);
    if ((value & page_entry::kPresent) == 0) continue;
    if (record.level == 4 && index == kMonitorSlot) continue;  // the shared monitor PDPT
    if (record.level > 1) {
      release(table_at(value));
    } else if ((value & page_entry::kWritable) != 0) {
      forget_writable_leaf(value & page_entry::kAddressMask, EntryLocation{table, index});
    }
  }
  if (record.role == TableRole::Mirror) {
    auto mirrors = m_mirrors.find(record.guest_table.value());
    if (mirrors != m_mirrors.end()) {
      std::erase(mirrors->second, table);
      if (mirrors->second.empty()) m_mirrors.erase(mirrors);
    }
  }
  m_tables[table] = Table{};
  m_free.push_back(table);
}

void ShadowPager::forget_writable_leaf(std::uint64_t frame, EntryLocation location) {
  auto leaves = m_writable_leaves.find(frame);
  if (leaves == m_writable_leaves.end()) return;
  auto& list = leaves->second;
  auto found = std::find(list.begin(), list.end(), location);
  if (found != list.end()) {
    *found = list.back();
    list.pop_back();
  }
  if (list.empty()) m_writable_leaves.erase(leaves);
}

void ShadowPager::write_protect(GuestPhysAddr frame) {
  auto leaves = m_writable_leaves.extract(frame.value());
  if (leaves.empty()) return;
  for (const EntryLocation& location : leaves.mapped()) {
    // The reverse-map record is gone already, so store() has none to drop.
    store(location.table, location.index,
          entry(location.table, location.index) & ~(page_entry::kWritable | page_entry::kDirty));
    ++m_counters.write_protections;
  }
}

// ---- Address spaces ----------------------------------------------------------

bool ShadowPager::allocate_roots(AddressSpace& space) {
  const GuestPhysAddr guest_root = space.guest_root;
  const bool in_ram = m_walker.is_guest_ram(guest_root);
  for (std::size_t view = 0; view < space.roots.size(); ++view) {
    auto table = in_ram ? allocate(TableRole::Mirror, 4, guest_root)
                        : allocate(TableRole::Detached, 4, GuestPhysAddr());
    if (!table) {
      // Give back the first root if the second did not fit.
      for (std::size_t allocated = 0; allocated < view; ++allocated)
        release(space.roots[allocated]);
      return false;
    }
    // bt: the kernel view (index 0) reaches the TC, user-accessible.
    const bool with_cache = view == 0 && m_kernel_slot_pdpt != 0;
    store(*table, kMonitorSlot,
          with_cache ? table_address(m_kernel_slot_pdpt).value() | kShadowTableFlags
                     : table_address(m_monitor_pdpt).value() | kMonitorTableFlags);
    space.roots[view] = *table;
  }
  return true;
}

void ShadowPager::release_space(const AddressSpace& space) {
  for (std::uint32_t root : space.roots)
    release(root);
  m_flush_requested = true;
}

// Makes the walker's CR3 the current address space, reusing kept roots.
void ShadowPager::make_current_space() {
  const GuestPhysAddr guest_root(m_walker.root() & page_entry::kAddressMask);
  ++m_use_clock;
  for (std::size_t index = 0; index < m_spaces.size(); ++index) {
    if (m_spaces[index].guest_root == guest_root) {
      if (index != m_current) ++m_counters.cr3_cache_hits;
      m_current = index;
      m_spaces[index].last_use = m_use_clock;
      return;
    }
  }
  // Keep at most cached_address_spaces: drop the least recently used.
  while (m_spaces.size() >= m_config.cached_address_spaces) {
    auto oldest = std::min_element(
        m_spaces.begin(), m_spaces.end(),
        [](const AddressSpace& a, const AddressSpace& b) { return a.last_use < b.last_use; });
    release_space(*oldest);
    m_spaces.erase(oldest);
  }
  AddressSpace space;
  space.guest_root = guest_root;
  space.last_use = m_use_clock;
  if (!allocate_roots(space)) {
    reset();  // clears m_spaces and comes back here with an empty pool
    return;
  }
  m_spaces.push_back(space);
  m_current = m_spaces.size() - 1;
}

std::uint32_t ShadowPager::current_root(ShadowView view) const {
  return m_spaces[m_current].roots[view == ShadowView::Kernel ? 0 : 1];
}

GuestPhysAddr ShadowPager::root(ShadowView view) const {
  return table_address(current_root(view));
}

bool ShadowPager::is_guest_page_table(GuestPhysAddr address) const {
  return m_mirrors.contains(address.value() & ~(kPageSize - 1));
}

void ShadowPager::protect_code_frame(GuestPhysAddr address) {
  const GuestPhysAddr frame(address.value() & ~(kPageSize - 1));
  if (m_code_frames.insert(frame.value()).second) write_protect(frame);
}

void ShadowPager::unprotect_code_frame(GuestPhysAddr address) {
  m_code_frames.erase(address.value() & ~(kPageSize - 1));
}

bool ShadowPager::is_code_frame(GuestPhysAddr address) const {
  return m_code_frames.contains(address.value() & ~(kPageSize - 1));
}

void ShadowPager::set_code_write_observer(std::function<void(GuestPhysAddr)> observer) {
  m_code_write_observer = std::move(observer);
}

Status ShadowPager::set_translation_cache_page_writable(std::uint64_t offset, bool writable) {
  const std::uint64_t page = offset / kPageSize;
  if (page >= m_translation_cache_leaves.size()) {
    return Error{ShadowPagingError::kInvalidLayout,
                 "shadow pager: no translation cache page at offset " + hex(offset)};
  }
  // Losing the right to write makes store() ask for a TLB flush.
  const EntryLocation leaf = m_translation_cache_leaves[page];
  store(leaf.table, leaf.index, translation_cache_leaf(page * kPageSize, writable));
  if (m_failure) return *m_failure;
  return {};
}

bool ShadowPager::take_tlb_flush_request() {
  return std::exchange(m_flush_requested, false);
}

void ShadowPager::set_guest_cr3(std::uint64_t cr3) {
  ++m_counters.cr3_switches;
  m_walker.set_root(cr3);
  make_current_space();
}

void ShadowPager::set_paging_controls(PagingControls controls) {
  if (controls == m_walker.controls()) return;
  m_walker.set_controls(controls);
  reset();
}

void ShadowPager::reset() {
  ++m_counters.resets;
  for (std::uint32_t table = 0; table < m_tables.size(); ++table) {
    if (m_tables[table].role == TableRole::Monitor || m_tables[table].role == TableRole::Free) {
      continue;
    }
    m_tables[table] = Table{};
  }
  m_free.clear();
  for (auto table = static_cast<std::uint32_t>(m_tables.size()); table > 0; --table) {
    if (m_tables[table - 1].role == TableRole::Free) m_free.push_back(table - 1);
  }
  m_mirrors.clear();
  m_writable_leaves.clear();
  m_spaces.clear();
  m_current = 0;
  m_flush_requested = true;
  // create() checked that the pool holds two roots after the monitor mapping.
  AddressSpace space;
  space.guest_root = GuestPhysAddr(m_walker.root() & page_entry::kAddressMask);
  space.last_use = ++m_use_clock;
  (void)allocate_roots(space);
  m_spaces.push_back(space);
}

// ---- Coherence -----------------------------------------------------------------

void ShadowPager::guest_page_table_written(GuestPhysAddr address, std::uint64_t length) {
  if (length == 0 || (m_mirrors.empty() && m_code_frames.empty())) return;
  const std::uint64_t first = address.value();
  const std::uint64_t last = first + std::min<std::uint64_t>(length - 1, ~first);
  for (std::uint64_t frame = first & ~(kPageSize - 1); frame <= last; frame += kPageSize) {
    if (m_code_write_observer && m_code_frames.contains(frame)) {
      m_code_write_observer(GuestPhysAddr(frame));
    }
    auto mirrors = m_mirrors.find(frame);
    if (mirrors != m_mirrors.end()) {
      const auto first_index = static_cast<unsigned>((std::max(first, frame) - frame) / 8);
      const auto last_index =
          static_cast<unsigned>((std::min(last, frame + kPageSize - 1) - frame) / 8);
      // Zapping can release other mirrors of this frame (a table below one
      // being zapped), so work on a copy and skip what is gone.
      const std::vector<std::uint32_t> tables = mirrors->second;
      for (std::uint32_t table : tables) {
        const Table& record = m_tables[table];
        if (record.role != TableRole::Mirror || record.guest_table.value() != frame) continue;
        for (unsigned index = first_index; index <= last_index; ++index) {
          if (record.level == 4 && index == kMonitorSlot) continue;
          if ((entry(table, index) & page_entry::kPresent) == 0) continue;
          clear_entry(table, index);
          ++m_counters.zaps;
        }
      }
    }
    if (frame + kPageSize < frame) break;  // the top page of the address space
  }
}

void ShadowPager::invalidate_page(GuestVirtAddr address) {
  ++m_counters.page_invalidations;
  if (table_index(address, 4) == kMonitorSlot) return;
  // The shadow never holds a translation older than the guest's tables, so
  // this is for the guest's sake: the next access walks its tables again.
  for (ShadowView view : {ShadowView::Kernel, ShadowView::User}) {
    std::uint32_t table = current_root(view);
    bool reached = true;
    for (unsigned level = 4; level > 1; --level) {
      const std::uint64_t value = entry(table, table_index(address, level));
      if ((value & page_entry::kPresent) == 0) {
        reached = false;
        break;
      }
      table = table_at(value);
    }
    if (reached) clear_entry(table, table_index(address, 1));
  }
}

// ---- Faults ----------------------------------------------------------------------

std::uint64_t ShadowPager::leaf_value(ShadowView view, const PageWalk& walk,
                                      AccessKind access) const {
  const GuestPhysAddr frame = walk.frame();
  // The guest kernel really runs at CPL3: both views are user pages.
  std::uint64_t value =
      frame.value() | page_entry::kPresent | page_entry::kUser | page_entry::kAccessed;
  const bool guest_allows_write = view == ShadowView::User
                                      ? walk.writable
                                      : walk.writable || !m_walker.controls().write_protect;
  const bool dirty =
      access == AccessKind::Write || (walk.entries[walk.level] & page_entry::kDirty) != 0;
  if (guest_allows_write && dirty && !is_guest_page_table(frame) && !is_code_frame(frame)) {
    value |= page_entry::kWritable | page_entry::kDirty;
  }
  // XD only when the guest enabled it, and the real EFER.NXE follows the
  // guest's, so the bit is never reserved in the shadow (SDM 4.5). Under bt
  // the guest kernel executes nothing of its own (the real EFER.NXE is set).
  const bool kernel_runs_from_cache = view == ShadowView::Kernel && m_config.translation_cache;
  if (!walk.executable || kernel_runs_from_cache) value |= page_entry::kExecuteDisable;
  return value;
}

ShadowPager::FillOutcome ShadowPager::fill(ShadowView view, const PageWalk& walk, AccessKind access,
                                           FaultResolution& resolution) {
  const GuestVirtAddr address = walk.address;
  std::uint32_t table = current_root(view);
  for (unsigned level = 4; level > 1; --level) {
    const unsigned index = table_index(address, level);
    const std::uint64_t value = entry(table, index);
    if ((value & page_entry::kPresent) != 0) {
      table = table_at(value);
      continue;
    }
    // Below a guest large page (or a piece of one) the shadow splits it into
    // 4 KiB pieces; otherwise the child mirrors the guest's next table.
    const bool split = m_tables[table].role == TableRole::Split || walk.level == level;
    auto child = split ? allocate(TableRole::Split, level - 1, GuestPhysAddr())
                       : allocate(TableRole::Mirror, level - 1, walk.table(level - 1));
    if (!child) return FillOutcome::PoolExhausted;
    store(table, index, table_address(*child).value() | kShadowTableFlags);
    table = *child;
  }
  const unsigned index = table_index(address, 1);
  if (access == AccessKind::Write && is_guest_page_table(walk.frame())) {
    // Map it read-only so reads stop faulting; the write itself is the
    // monitor's to emulate, which sets the dirty flag.
    (void)m_walker.mark_accessed(walk, AccessKind::Read);
    store(table, index, leaf_value(view, walk, AccessKind::Read));
    ++m_counters.page_table_writes;
    resolution.kind = FaultResolution::Kind::PageTableWrite;
    resolution.physical_address = walk.physical_address;
    return FillOutcome::Done;
  }
  if (access == AccessKind::Write && is_code_frame(walk.frame())) {
    // As for a page table: readable now, the write the monitor's to handle.
    (void)m_walker.mark_accessed(walk, AccessKind::Read);
    store(table, index, leaf_value(view, walk, AccessKind::Read));
    ++m_counters.code_writes;
    resolution.kind = FaultResolution::Kind::CodeWrite;
    resolution.physical_address = walk.physical_address;
    return FillOutcome::Done;
  }
  if (auto status = m_walker.mark_accessed(walk, access); !status && !m_failure) {
    m_failure =
        Error{ShadowPagingError::kTableAccessFailed,
              "shadow pager: setting the guest's accessed flags failed: " + status.error().message};
  }
  store(table, index, leaf_value(view, walk, access));
  ++m_counters.fills;
  resolution.kind = FaultResolution::Kind::Filled;
  return FillOutcome::Done;
}

Result<FaultResolution> ShadowPager::handle_fault(ShadowView view, GuestVirtAddr address,
                                                  std::uint32_t hardware_error_code) {
  if (m_failure) return *m_failure;
  if ((hardware_error_code & kPageFaultReservedBit) != 0) {
    return Error{ShadowPagingError::kReservedBitInShadow,
                 "shadow pager: reserved-bit page fault at " + hex(address.value()) +
                     ": a shadow entry has XD set while the real EFER.NXE is clear; the real "
                     "EFER.NXE must follow the guest's"};
  }
  if ((hardware_error_code & kPageFaultUser) == 0) {
    return Error{ShadowPagingError::kMonitorFault,
                 "shadow pager: page fault at CPL0 at " + hex(address.value()) +
                     ": the monitor touched an address outside its region"};
  }
  // The real error code says what the access was; the view says at which
  // privilege the guest believes it ran.
  const AccessKind access = (hardware_error_code & kPageFaultFetch) != 0   ? AccessKind::Fetch
                            : (hardware_error_code & kPageFaultWrite) != 0 ? AccessKind::Write
                                                                           : AccessKind::Read;
  const AccessPrivilege privilege =
      view == ShadowView::Kernel ? AccessPrivilege::Supervisor : AccessPrivilege::User;
  const PageWalk walk = m_walker.walk(address);
  if (auto fault = m_walker.check(walk, access, privilege)) {
    ++m_counters.reflections;
    FaultResolution resolution;
    resolution.kind = FaultResolution::Kind::ReflectToGuest;
    resolution.address = fault->address;
    resolution.guest_error_code = fault->error_code;
    return resolution;
  }
  FaultResolution resolution;
  if (view == ShadowView::Kernel && access == AccessKind::Fetch && m_config.translation_cache) {
    // bt: the guest kernel may run this code, from the TC (its leaves stay
    // no-execute). The accessed flags are set when the translator reads it.
    resolution.kind = FaultResolution::Kind::KernelFetch;
    resolution.address = address;
    return resolution;
  }
  if (fill(view, walk, access, resolution) == FillOutcome::PoolExhausted) {
    // Start over with an empty pool; create() made sure one fill fits.
    reset();
    if (fill(view, walk, access, resolution) == FillOutcome::PoolExhausted) {
      return Error{ShadowPagingError::kPoolTooSmall,
                   "shadow pager: the table pool cannot hold one translation"};
    }
  }
  if (m_failure) return *m_failure;
  return resolution;
}

}  // namespace vmlab::full
