// The IOMMU model (DESIGN.md 6): an I/O page table of 4 KiB pages that the
// VMM programs from the guest's memory map and that a passthrough device's
// every DMA goes through. Like DMA remapping hardware (Intel VT-d 3.0, 3.6
// and 7.1) a blocked access moves nothing and is recorded as a fault for the
// VMM to report.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <vmlab/address.hpp>
#include <vmlab/dma_remapping.hpp>
#include <vmlab/guest_memory.hpp>
#include <vmlab/result.hpp>
#include "vmlab/result.hpp"

namespace vmlab::devices {

// Why the VMM's change to the I/O page table was refused (the table is then
// unchanged). A DMA the table blocks is not an Error but an IommuFault. New
// kinds go last.
enum class IommuError {
  kBadRange = 1,        // not whole 4 KiB pages, empty, or wrapping around the address space
  kOutsideGuestMemory,  // a mapping to guest-physical memory the VM does not have
  kNoAccess,            // a mapping that allows neither reads nor writes
  kAlreadyMapped,       // map() over a mapped page: unmap it first
  kNotMapped,           // unmap() of a page that is not mapped
};
constexpr const char* error_domain(IommuError) {
  return "iommu";
}
using vmlab::make_error_code;  // found by argument-dependent lookup here

// What a mapping allows the device to do to guest memory.
struct IommuAccess {
  bool read = true;
  bool write = true;
};

// The direction of one DMA, seen from memory: a device reads memory to send
// it to the disk and writes memory with what it read from the disk.
enum class DmaDirection { Read, Write };

enum class IommuFaultKind {
  NotMapped,  // no mapping for the page (or, in bypass mode, outside guest RAM)
  ReadOnly,   // a write to a page mapped without write access
  WriteOnly,  // a read of a page mapped without read access
};

struct IommuFault {
  std::uint64_t iova = 0;  // the first byte the device may not touch
  DmaDirection direction = DmaDirection::Read;
  IommuFaultKind kind = IommuFaultKind::NotMapped;
};

// One guest-physically contiguous piece of a DMA.
struct DmaPiece {
  GuestPhysAddr address;
  std::uint64_t length = 0;
};

// Either the pieces of a DMA, in order, covering its whole length, or the
// fault that blocked it.
class [[nodiscard]] DmaTranslation {
 public:
  explicit DmaTranslation(std::vector<DmaPiece> pieces) : m_pieces(std::move(pieces)) {}
  explicit DmaTranslation(IommuFault fault) : m_fault(fault), m_blocked(true) {}

  bool ok() const { return !m_blocked; }
  explicit operator bool() const { return ok(); }
  const std::vector<DmaPiece>& pieces() const { return m_pieces; }
  const IommuFault& fault() const { return m_fault; }

 private:
  std::vector<DmaPiece> m_pieces;
  IommuFault m_fault;
  bool m_blocked = false;
};

const char* describe(IommuFaultKind kind);

// Thread-safe: the VMM thread programs the table while a device thread
// translates. One mutex guards the table and the fault record, and is held
// through a whole DMA (copy_to_memory, copy_from_memory), so a change to the
// table takes effect between two DMAs, never in the middle of one: what
// hardware gets from an IOTLB invalidation that waits for DMA in flight.
class Iommu final : public DmaRemapping {
 public:
  static constexpr std::size_t kRecentFaultLimit = 64;

  // Every mapping must land inside [0, guest_memory_size) guest-physical.
  explicit Iommu(std::uint64_t guest_memory_size);

  // Maps [iova, iova + length) to [guest_physical, guest_physical + length),
  // page-aligned. Refuses an overlap with an existing mapping and a target
  // outside guest memory; a refused call changes nothing.
  Status map(std::uint64_t iova, GuestPhysAddr guest_physical, std::uint64_t length,
             IommuAccess access);
  // Unmaps [iova, iova + length); every page must be mapped.
  Status unmap(std::uint64_t iova, std::uint64_t length);
  // Replaces the table with the identity map of [0, ram_size), read-write.
  Status map_guest_ram(std::uint64_t ram_size);

  // Off is bypass mode (`--iommu off`): iova == guest-physical for anything
  // inside guest memory, and still nothing outside it.
  void set_enabled(bool enabled);
  bool enabled() const;

  // Walks the whole range page by page before anything moves. A blocked
  // access is recorded.
  DmaTranslation translate(std::uint64_t iova, std::uint64_t length, DmaDirection direction);

  // One DMA: translates [iova, iova + size) and moves the bytes between
  // `memory` and the buffer, all under the table's lock. Nothing moves if
  // any byte is blocked (recorded like translate()) or lies outside
  // `memory`; the fault is returned.
  std::optional<IommuFault> copy_to_memory(std::uint64_t iova, std::span<const std::uint8_t> in,
                                           GuestMemoryAccess& memory);
  std::optional<IommuFault> copy_from_memory(std::uint64_t iova, std::span<std::uint8_t> out,
                                             const GuestMemoryAccess& memory);

  // DmaRemapping: a protected guest frame is read-only to every mapping that
  // reaches it (the para mode's page tables). Bypass mode ignores it: with
  // the IOMMU off nothing is remapped or protected.
  void protect_from_device_writes(GuestPhysAddr frame, bool protect) override;
  std::size_t protected_frames() const;

  std::uint64_t guest_memory_size() const { return m_guest_memory_size; }
  std::size_t mapped_pages() const;
  std::uint64_t fault_count() const;
  // The most recent faults, oldest first, at most kRecentFaultLimit.
  std::vector<IommuFault> recent_faults() const;
  // Hands the recorded faults to the VMM (one remapping-fault event each)
  // and forgets them; the counter keeps counting.
  std::vector<IommuFault> take_recent_faults();

 private:
  struct Entry {
    std::uint64_t guest_page = 0;
    IommuAccess access;
  };

  DmaTranslation block(IommuFault fault);  // requires m_mutex
  // One DMA under the lock: translate, check, then `move` each piece.
  template <typename Bytes, typename Move>
  std::optional<IommuFault> dma(std::uint64_t iova, Bytes bytes, DmaDirection direction,
                                const GuestMemoryAccess& memory, Move move);
  DmaTranslation translate_locked(std::uint64_t iova, std::uint64_t length,
                                  DmaDirection direction);  // requires m_mutex
  // The translation's pieces all inside `memory`, or the fault (recorded).
  std::optional<IommuFault> check_inside(const DmaTranslation& translation, std::uint64_t iova,
                                         DmaDirection direction,
                                         const GuestMemoryAccess& memory);  // requires m_mutex
  DmaTranslation translate_bypass(std::uint64_t iova, std::uint64_t length,
                                  DmaDirection direction);  // requires m_mutex

  const std::uint64_t m_guest_memory_size;
  mutable std::mutex m_mutex;
  bool m_enabled = true;
  std::unordered_map<std::uint64_t, Entry> m_pages;     // I/O page number -> entry
  std::unordered_set<std::uint64_t> m_write_protected;  // guest page numbers
  std::deque<IommuFault> m_recent_faults;
  // Written under m_mutex, read without it: the run loop asks after every
  // exit, and must not wait for a DMA in flight to learn nothing happened.
  std::atomic<std::uint64_t> m_fault_count{0};
};

}  // namespace vmlab::devices

VMLAB_ERROR_KINDS(vmlab::devices::IommuError);
