#include "vmlab/monitor/page_walker.hpp"

#include <algorithm>
#include <utility>

namespace vmlab::monitor {

namespace {

// Bits high:low set.
constexpr std::uint64_t bit_range(unsigned high, unsigned low) {
  return ((high >= 63 ? ~0ULL : (1ULL << (high + 1)) - 1)) & ~((1ULL << low) - 1);
}

}  // namespace

PagingControls PagingControls::from(const VirtualCpu& cpu) {
  PagingControls controls;
  controls.write_protect = (cpu.cr0 & kCr0WriteProtect) != 0;
  controls.no_execute = (cpu.efer & kEferNoExecuteEnable) != 0;
  return controls;
}

PageWalker::PageWalker(GuestMemoryAccess& memory, std::uint64_t guest_ram_size,
                       PageWalkerOptions options)
    : m_memory(&memory), m_guest_ram_size(guest_ram_size), m_options(std::move(options)) {}

bool PageWalker::is_guest_ram(GuestPhysAddr frame) const {
  return m_guest_ram_size >= kPageSize && frame.value() <= m_guest_ram_size - kPageSize;
}

bool PageWalker::is_mappable(GuestPhysAddr frame) const {
  if (is_guest_ram(frame)) return true;
  return std::any_of(
      m_options.device_windows.begin(), m_options.device_windows.end(),
      [&](const PhysicalRange& window) { return window.contains(frame, kPageSize); });
}

std::uint64_t PageWalker::reserved_bits(std::uint64_t entry, unsigned level) const {
  // SDM vol. 3A, 4.5, tables 4-15 to 4-20: bits 51:MAXPHYADDR everywhere, XD
  // without EFER.NXE, PS in a PML4E, and the bits between the PAT bit and the
  // frame address of a 1 GiB or 2 MiB page.
  std::uint64_t reserved = 0;
  const unsigned width = std::clamp(m_controls.physical_address_bits, 32u, 52u);
  if (width < 52) reserved |= bit_range(51, width);
  if (!m_controls.no_execute) reserved |= page_entry::kExecuteDisable;
  const bool large = (entry & page_entry::kLargePage) != 0;
  if (level == 4) reserved |= page_entry::kLargePage;
  if (level == 3 && large) reserved |= bit_range(29, 13);
  if (level == 2 && large) reserved |= bit_range(20, 13);
  return reserved;
}

PageWalk PageWalker::walk(GuestVirtAddr address) const {
  PageWalk result;
  result.address = address;
  if (m_options.hidden_pml4_slot && table_index(address, 4) == *m_options.hidden_pml4_slot) {
    return result;  // NotPresent at level 4
  }
  const unsigned width = std::clamp(m_controls.physical_address_bits, 32u, 52u);
  const std::uint64_t address_mask = bit_range(width - 1, 12);
  std::uint64_t table = m_cr3 & page_entry::kAddressMask;  // SDM 4.5.2, table 4-12
  for (unsigned level = 4; level >= 1; --level) {
    result.level = level;
    // The guest's tables must be in its RAM: a table the monitor region
    // holds (the shadow tables themselves) must never be readable as one.
    if (!is_guest_ram(GuestPhysAddr(table))) return result;
    const GuestPhysAddr entry_address(table + std::uint64_t{table_index(address, level)} * 8);
    auto entry = m_memory->read_object<std::uint64_t>(entry_address);
    if (!entry) return result;
    result.entries[level] = *entry;
    result.entry_addresses[level] = entry_address;
    if ((*entry & page_entry::kPresent) == 0) return result;
    if ((*entry & reserved_bits(*entry, level)) != 0) {
      result.outcome = PageWalk::Outcome::ReservedBit;
      return result;
    }
    result.writable = result.writable && (*entry & page_entry::kWritable) != 0;
    result.user = result.user && (*entry & page_entry::kUser) != 0;
    if (m_controls.no_execute && (*entry & page_entry::kExecuteDisable) != 0) {
      result.executable = false;
    }
    const bool leaf = level == 1 || (level <= 3 && (*entry & page_entry::kLargePage) != 0);
    if (leaf) {
      const std::uint64_t page_size = result.page_size();
      const std::uint64_t frame = *entry & address_mask & ~(page_size - 1);
      result.physical_address = GuestPhysAddr(frame | (address.value() & (page_size - 1)));
      result.outcome = PageWalk::Outcome::Mapped;
      return result;
    }
    table = *entry & address_mask;
  }
  return result;  // not reached: level 1 is always a leaf
}

std::uint32_t PageWalker::fault_error_code(bool present, AccessKind access,
                                           AccessPrivilege privilege, bool reserved_bit) const {
  std::uint32_t code = 0;
  if (present) code |= kPageFaultPresent;
  if (access == AccessKind::Write) code |= kPageFaultWrite;
  if (privilege == AccessPrivilege::User) code |= kPageFaultUser;
  if (reserved_bit) code |= kPageFaultReservedBit;
  // SDM 4.7: I/D reports a fetch only when XD or SMEP can make fetches fault.
  if (access == AccessKind::Fetch && m_controls.no_execute) code |= kPageFaultFetch;
  return code;
}

std::optional<PageWalker::Fault> PageWalker::check(const PageWalk& walk, AccessKind access,
                                                   AccessPrivilege privilege) const {
  switch (walk.outcome) {
    case PageWalk::Outcome::NotPresent:
      return Fault{walk.address, fault_error_code(false, access, privilege, false)};
    case PageWalk::Outcome::ReservedBit:
      return Fault{walk.address, fault_error_code(true, access, privilege, true)};
    case PageWalk::Outcome::Mapped:
      break;
  }
  // SDM 4.6.1, without SMEP and SMAP (the vmlab guest sets neither): user
  // accesses need U/S at every level; writes need R/W at every level, except
  // supervisor writes with CR0.WP=0; fetches need XD clear at every level.
  bool allowed = true;
  if (privilege == AccessPrivilege::User && !walk.user) allowed = false;
  if (access == AccessKind::Write && !walk.writable &&
      (privilege == AccessPrivilege::User || m_controls.write_protect)) {
    allowed = false;
  }
  if (access == AccessKind::Fetch && !walk.executable) allowed = false;
  if (!allowed) return Fault{walk.address, fault_error_code(true, access, privilege, false)};
  // Rights first, so a guest that breaks them gets the architectural fault;
  // only an access the guest's tables allow learns that the frame is not
  // there for it.
  if (!is_mappable(walk.frame())) {
    return Fault{walk.address, fault_error_code(false, access, privilege, false)};
  }
  return std::nullopt;
}

Status PageWalker::mark_accessed(const PageWalk& walk, AccessKind access) {
  if (walk.outcome != PageWalk::Outcome::Mapped) return {};
  // SDM 4.8: the accessed flag of every paging-structure entry used, the dirty
  // flag of the leaf on a write. Read each entry again: with a recursive
  // mapping one entry can serve at two levels. The vCPU is stopped while the
  // monitor runs, so read-modify-write needs no locked operation here.
  for (unsigned level = 4; level >= walk.level; --level) {
    auto entry = m_memory->read_object<std::uint64_t>(walk.entry_addresses[level]);
    if (!entry) return entry.error();
    std::uint64_t updated = *entry | page_entry::kAccessed;
    if (level == walk.level && access == AccessKind::Write) updated |= page_entry::kDirty;
    if (updated != *entry) {
      if (auto status = m_memory->write_object(walk.entry_addresses[level], updated); !status) {
        return status;
      }
    }
  }
  return {};
}

std::variant<GuestPhysAddr, PageWalker::Fault> PageWalker::translate(GuestVirtAddr address,
                                                                     AccessKind access,
                                                                     AccessPrivilege privilege) {
  const PageWalk result = walk(address);
  if (auto fault = check(result, access, privilege)) return *fault;
  if (!mark_accessed(result, access)) {
    return Fault{address, fault_error_code(false, access, privilege, false)};
  }
  return result.physical_address;
}

std::variant<std::vector<PageWalker::Piece>, PageWalker::Fault> PageWalker::translate_range(
    GuestVirtAddr address, std::uint64_t length, AccessKind access,
    AccessPrivilege privilege) const {
  std::vector<Piece> pieces;
  for (std::uint64_t offset = 0; offset < length;) {
    // Linear addresses wrap at 2^64 like the processor's.
    const GuestVirtAddr virtual_address = address + offset;
    const std::uint64_t in_page = kPageSize - (virtual_address.value() & (kPageSize - 1));
    const std::uint64_t chunk = std::min(length - offset, in_page);
    PageWalk piece_walk = walk(virtual_address);
    if (auto fault = check(piece_walk, access, privilege)) return *fault;
    pieces.push_back(Piece{piece_walk, offset, chunk});
    offset += chunk;
  }
  return pieces;
}

std::optional<PageWalker::Fault> PageWalker::copy_in(GuestVirtAddr address,
                                                     std::span<std::uint8_t> out, AccessKind access,
                                                     AccessPrivilege privilege) {
  auto translated = translate_range(address, out.size(), access, privilege);
  if (auto* fault = std::get_if<Fault>(&translated)) return *fault;
  for (const Piece& piece : std::get<std::vector<Piece>>(translated)) {
    const auto not_there =
        Fault{piece.walk.address, fault_error_code(false, access, privilege, false)};
    if (!mark_accessed(piece.walk, access)) return not_there;
    // A device window is not memory the walker can read: the caller emulates
    // MMIO through translate() and the bus.
    if (!m_memory->read(piece.walk.physical_address, out.subspan(piece.offset, piece.length))) {
      return not_there;
    }
  }
  return std::nullopt;
}

std::optional<PageWalker::Fault> PageWalker::read(GuestVirtAddr address,
                                                  std::span<std::uint8_t> out,
                                                  AccessPrivilege privilege) {
  return copy_in(address, out, AccessKind::Read, privilege);
}

std::optional<PageWalker::Fault> PageWalker::fetch(GuestVirtAddr address,
                                                   std::span<std::uint8_t> out,
                                                   AccessPrivilege privilege) {
  return copy_in(address, out, AccessKind::Fetch, privilege);
}

std::optional<PageWalker::Fault> PageWalker::write(GuestVirtAddr address,
                                                   std::span<const std::uint8_t> in,
                                                   AccessPrivilege privilege) {
  auto translated = translate_range(address, in.size(), AccessKind::Write, privilege);
  if (auto* fault = std::get_if<Fault>(&translated)) return *fault;
  for (const Piece& piece : std::get<std::vector<Piece>>(translated)) {
    const auto not_there =
        Fault{piece.walk.address, fault_error_code(false, AccessKind::Write, privilege, false)};
    if (!mark_accessed(piece.walk, AccessKind::Write)) return not_there;
    if (!m_memory->write(piece.walk.physical_address, in.subspan(piece.offset, piece.length))) {
      return not_there;
    }
    if (m_observer) m_observer(piece.walk.physical_address, piece.length);
  }
  return std::nullopt;
}

}  // namespace vmlab::monitor
