#include "vmlab/devices/iommu.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include <vmlab/format.hpp>

namespace vmlab::devices {
namespace {

bool page_aligned(std::uint64_t value) {
  return value % kPageSize == 0;
}

Status check_range(const char* what, std::uint64_t iova, std::uint64_t length) {
  if (length == 0 || !page_aligned(iova) || !page_aligned(length)) {
    return Error{IommuError::kBadRange,
                 std::string(what) + " of I/O virtual range " + range_text(iova, length) +
                     ": the start and the length must be non-zero multiples of 4 KiB"};
  }
  if (iova > std::numeric_limits<std::uint64_t>::max() - (length - 1)) {
    return Error{IommuError::kBadRange, std::string(what) + " of I/O virtual range starting at " +
                                            hex(iova) +
                                            ": the range wraps around the address space"};
  }
  return {};
}

}  // namespace

const char* describe(IommuFaultKind kind) {
  switch (kind) {
    case IommuFaultKind::NotMapped:
      return "not mapped";
    case IommuFaultKind::ReadOnly:
      return "write to a read-only page";
    case IommuFaultKind::WriteOnly:
      return "read of a write-only page";
  }
  return "unknown";
}

Iommu::Iommu(std::uint64_t guest_memory_size) : m_guest_memory_size(guest_memory_size) {}

Status Iommu::map(std::uint64_t iova, GuestPhysAddr guest_physical, std::uint64_t length,
                  IommuAccess access) {
  if (auto status = check_range("map", iova, length); !status) return status;
  if (!page_aligned(guest_physical.value())) {
    return Error{IommuError::kBadRange, "map to guest-physical " + hex(guest_physical.value()) +
                                            ": the address must be a multiple of 4 KiB"};
  }
  if (length > m_guest_memory_size || guest_physical.value() > m_guest_memory_size - length) {
    return Error{IommuError::kOutsideGuestMemory,
                 "map of I/O virtual range " + range_text(iova, length) + " to guest-physical " +
                     range_text(guest_physical.value(), length) + ": outside the guest's " +
                     std::to_string(m_guest_memory_size / KiB) +
                     " KiB of memory; a device may only reach the VM's own pages"};
  }
  if (!access.read && !access.write) {
    return Error{IommuError::kNoAccess,
                 "map of I/O virtual range " + range_text(iova, length) +
                     ": a mapping must allow reads, writes or both (unmap the range instead)"};
  }

  const std::uint64_t first_page = iova / kPageSize;
  const std::uint64_t page_count = length / kPageSize;
  std::lock_guard lock(m_mutex);
  for (std::uint64_t index = 0; index < page_count; ++index) {
    if (m_pages.contains(first_page + index)) {
      return Error{IommuError::kAlreadyMapped, "map of I/O virtual range " +
                                                   range_text(iova, length) + ": page " +
                                                   hex((first_page + index) * kPageSize) +
                                                   " is already mapped; unmap it first"};
    }
  }
  const std::uint64_t first_guest_page = guest_physical.value() / kPageSize;
  for (std::uint64_t index = 0; index < page_count; ++index) {
    m_pages.emplace(first_page + index, Entry{first_guest_page + index, access});
  }
  return {};
}

Status Iommu::unmap(std::uint64_t iova, std::uint64_t length) {
  if (auto status = check_range("unmap", iova, length); !status) return status;
  const std::uint64_t first_page = iova / kPageSize;
  const std::uint64_t page_count = length / kPageSize;
  std::lock_guard lock(m_mutex);
  // The range's pages are all mapped, hence at most m_pages.size() of them.
  if (page_count > m_pages.size()) {
    return Error{IommuError::kNotMapped, "unmap of I/O virtual range " + range_text(iova, length) +
                                             ": the range is not entirely mapped"};
  }
  for (std::uint64_t index = 0; index < page_count; ++index) {
    if (!m_pages.contains(first_page + index)) {
      return Error{IommuError::kNotMapped,
                   "unmap of I/O virtual range " + range_text(iova, length) + ": page " +
                       hex((first_page + index) * kPageSize) + " is not mapped"};
    }
  }
  for (std::uint64_t index = 0; index < page_count; ++index)
    m_pages.erase(first_page + index);
  return {};
}

Status Iommu::map_guest_ram(std::uint64_t ram_size) {
  if (ram_size == 0 || !page_aligned(ram_size) || ram_size > m_guest_memory_size) {
    return Error{
        ram_size > m_guest_memory_size ? IommuError::kOutsideGuestMemory : IommuError::kBadRange,
        "identity map of " + std::to_string(ram_size) +
            " bytes of guest RAM: the size must be a non-zero multiple of 4 KiB and at most "
            "the guest's " +
            std::to_string(m_guest_memory_size) + " bytes"};
  }
  {
    std::lock_guard lock(m_mutex);
    m_pages.clear();
    m_pages.reserve(ram_size / kPageSize);
  }
  return map(0, GuestPhysAddr(0), ram_size, IommuAccess{true, true});
}

void Iommu::set_enabled(bool enabled) {
  std::lock_guard lock(m_mutex);
  m_enabled = enabled;
}

bool Iommu::enabled() const {
  std::lock_guard lock(m_mutex);
  return m_enabled;
}

DmaTranslation Iommu::translate(std::uint64_t iova, std::uint64_t length, DmaDirection direction) {
  std::lock_guard lock(m_mutex);
  return translate_locked(iova, length, direction);
}

std::optional<IommuFault> Iommu::copy_to_memory(std::uint64_t iova,
                                                std::span<const std::uint8_t> in,
                                                GuestMemoryAccess& memory) {
  return dma(iova, in, DmaDirection::Write, memory,
             [&](GuestPhysAddr address, std::span<const std::uint8_t> piece) {
               return memory.write(address, piece).ok();
             });
}

std::optional<IommuFault> Iommu::copy_from_memory(std::uint64_t iova, std::span<std::uint8_t> out,
                                                  const GuestMemoryAccess& memory) {
  return dma(iova, out, DmaDirection::Read, memory,
             [&](GuestPhysAddr address, std::span<std::uint8_t> piece) {
               return memory.read(address, piece).ok();
             });
}

template <typename Bytes, typename Move>
std::optional<IommuFault> Iommu::dma(std::uint64_t iova, Bytes bytes, DmaDirection direction,
                                     const GuestMemoryAccess& memory, Move move) {
  std::lock_guard lock(m_mutex);
  const DmaTranslation translation = translate_locked(iova, bytes.size(), direction);
  if (!translation) return translation.fault();
  if (auto fault = check_inside(translation, iova, direction, memory)) return fault;
  for (const DmaPiece& piece : translation.pieces()) {
    // Inside memory (checked above), so no piece fails part way.
    if (!move(piece.address, bytes.first(piece.length))) {
      return IommuFault{iova, direction, IommuFaultKind::NotMapped};
    }
    bytes = bytes.subspan(piece.length);
  }
  return std::nullopt;
}

std::optional<IommuFault> Iommu::check_inside(const DmaTranslation& translation, std::uint64_t iova,
                                              DmaDirection direction,
                                              const GuestMemoryAccess& memory) {
  std::uint64_t offset = 0;
  for (const DmaPiece& piece : translation.pieces()) {
    if (!memory.contains(piece.address, piece.length)) {
      return block(IommuFault{iova + offset, direction, IommuFaultKind::NotMapped}).fault();
    }
    offset += piece.length;
  }
  return std::nullopt;
}

void Iommu::protect_from_device_writes(GuestPhysAddr frame, bool protect) {
  const std::uint64_t page = frame.value() / kPageSize;
  std::lock_guard lock(m_mutex);  // waits for a DMA in flight
  if (protect) {
    m_write_protected.insert(page);
  } else {
    m_write_protected.erase(page);
  }
}

std::size_t Iommu::protected_frames() const {
  std::lock_guard lock(m_mutex);
  return m_write_protected.size();
}

DmaTranslation Iommu::translate_locked(std::uint64_t iova, std::uint64_t length,
                                       DmaDirection direction) {
  if (length == 0) return DmaTranslation(std::vector<DmaPiece>{});
  if (!m_enabled) return translate_bypass(iova, length, direction);

  std::vector<DmaPiece> pieces;
  std::uint64_t address = iova;
  std::uint64_t remaining = length;
  while (remaining > 0) {
    const auto entry = m_pages.find(address / kPageSize);
    if (entry == m_pages.end()) {
      return block(IommuFault{address, direction, IommuFaultKind::NotMapped});
    }
    const IommuAccess access = entry->second.access;
    if (direction == DmaDirection::Write &&
        (!access.write || m_write_protected.contains(entry->second.guest_page))) {
      return block(IommuFault{address, direction, IommuFaultKind::ReadOnly});
    }
    if (direction == DmaDirection::Read && !access.read) {
      return block(IommuFault{address, direction, IommuFaultKind::WriteOnly});
    }
    const std::uint64_t offset = address % kPageSize;
    const std::uint64_t chunk = std::min(remaining, kPageSize - offset);
    const GuestPhysAddr target(entry->second.guest_page * kPageSize + offset);
    // Consecutive I/O pages often map to consecutive guest pages: one piece.
    if (!pieces.empty() && pieces.back().address + pieces.back().length == target) {
      pieces.back().length += chunk;
    } else {
      pieces.push_back(DmaPiece{target, chunk});
    }
    remaining -= chunk;
    if (remaining == 0) break;
    if (address > std::numeric_limits<std::uint64_t>::max() - chunk) {
      // The DMA runs off the top of the I/O address space.
      return block(IommuFault{0, direction, IommuFaultKind::NotMapped});
    }
    address += chunk;
  }
  return DmaTranslation(std::move(pieces));
}

DmaTranslation Iommu::translate_bypass(std::uint64_t iova, std::uint64_t length,
                                       DmaDirection direction) {
  // Identity, bounded by guest memory: the first byte at or past its end is
  // the first bad one.
  if (iova >= m_guest_memory_size) {
    return block(IommuFault{iova, direction, IommuFaultKind::NotMapped});
  }
  if (length > m_guest_memory_size - iova) {
    return block(IommuFault{m_guest_memory_size, direction, IommuFaultKind::NotMapped});
  }
  return DmaTranslation(std::vector<DmaPiece>{DmaPiece{GuestPhysAddr(iova), length}});
}

DmaTranslation Iommu::block(IommuFault fault) {
  if (m_recent_faults.size() == kRecentFaultLimit) m_recent_faults.pop_front();
  m_recent_faults.push_back(fault);
  m_fault_count.fetch_add(1, std::memory_order_release);
  return DmaTranslation(fault);
}

std::size_t Iommu::mapped_pages() const {
  std::lock_guard lock(m_mutex);
  return m_pages.size();
}

std::uint64_t Iommu::fault_count() const {
  return m_fault_count.load(std::memory_order_acquire);
}

std::vector<IommuFault> Iommu::recent_faults() const {
  std::lock_guard lock(m_mutex);
  return {m_recent_faults.begin(), m_recent_faults.end()};
}

std::vector<IommuFault> Iommu::take_recent_faults() {
  std::lock_guard lock(m_mutex);
  std::vector<IommuFault> faults(m_recent_faults.begin(), m_recent_faults.end());
  m_recent_faults.clear();
  return faults;
}

}  // namespace vmlab::devices
