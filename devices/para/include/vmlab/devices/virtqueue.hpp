// The device side of a split virtqueue (virtio 1.2, 2.7): the descriptor
// table, the available ring the driver fills and the used ring the device
// fills, all in guest memory.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <vmlab/address.hpp>
#include <vmlab/guest_memory.hpp>
#include <vmlab/result.hpp>
#include "vmlab/result.hpp"

namespace vmlab::devices {

// Why a virtqueue cannot be set up, or a chain the driver made available is
// refused (virtio 1.2, 2.7); the transport then sets DEVICE_NEEDS_RESET. New
// kinds go last.
enum class VirtqueueError {
  kBadLayout = 1,         // a size not a power of two up to the maximum, or an area misplaced
  kGuestMemory,           // a ring, descriptor or buffer could not be read or written
  kBadAvailableIndex,     // the available ring's idx ran ahead by more than the queue size
  kDescriptorOutOfRange,  // a head or next index past the end of its descriptor table
  kDescriptorLoop,        // a chain longer than its table, so it loops
  kBadIndirectTable,      // INDIRECT not negotiated, nested or with NEXT, or a bad table length
  kOutsideGuestMemory,    // a buffer or indirect table outside guest RAM or wrapping around
  kBadBufferOrder,        // a device-readable buffer after a device-writable one
  kChainTooLong,          // a chain of more than 4 GiB
  kPastChainEnd,          // DescriptorChain::read or write past the chain's bytes
};
constexpr const char* error_domain(VirtqueueError) {
  return "virtqueue";
}
using vmlab::make_error_code;  // found by argument-dependent lookup here

namespace virtio {

// Descriptor flags (virtio 1.2, 2.7.5).
constexpr std::uint16_t kDescriptorNext = 1;
constexpr std::uint16_t kDescriptorWrite = 2;
constexpr std::uint16_t kDescriptorIndirect = 4;

// Available ring flags (virtio 1.2, 2.7.7).
constexpr std::uint16_t kAvailableNoInterrupt = 1;

// Queue Size is a power of two no larger than this (virtio 1.2, 2.7).
constexpr std::uint16_t kMaximumQueueSize = 32768;
// The largest indirect table the device follows, in descriptors. The spec
// sets no limit; the table is walked one descriptor at a time, so this only
// bounds the walk and the chain's buffer list.
constexpr std::uint32_t kMaximumIndirectDescriptors = kMaximumQueueSize;

// Alignment of the three areas (virtio 1.2, 2.7, the table after "Queue Size").
constexpr std::uint64_t kDescriptorTableAlignment = 16;
constexpr std::uint64_t kDriverAreaAlignment = 2;
constexpr std::uint64_t kDeviceAreaAlignment = 4;

}  // namespace virtio

// One buffer of a descriptor chain, already checked to lie inside guest RAM.
struct GuestBuffer {
  GuestPhysAddr address;
  std::uint32_t length = 0;
  bool device_writable = false;
};

// A descriptor chain as the device consumes it: indirect tables are already
// followed, so `buffers` is the flat list of what the driver offered, every
// device-readable buffer before every device-writable one (virtio 1.2, 2.7.4).
struct DescriptorChain {
  std::uint16_t head = 0;  // the id the used element reports back
  std::vector<GuestBuffer> buffers;
  std::uint64_t readable_length = 0;
  std::uint64_t writable_length = 0;

  // Copies the chain's device-readable bytes [offset, offset + out.size())
  // into `out`, across buffer boundaries (virtio 1.2, 2.7.4: a device may not
  // assume a particular arrangement of descriptors).
  Status read(const GuestMemoryAccess& memory, std::uint64_t offset,
              std::span<std::uint8_t> out) const;
  // Copies `in` to the chain's device-writable bytes [offset, offset + in.size()).
  Status write(GuestMemoryAccess& memory, std::uint64_t offset,
               std::span<const std::uint8_t> in) const;
};

// Where the driver put the queue and how big it is (the QueueNum and
// QueueDesc/QueueDriver/QueueDevice registers of virtio 1.2, 4.2.2).
struct VirtqueueLayout {
  std::uint16_t size = 0;
  GuestPhysAddr descriptor_table;
  GuestPhysAddr driver_area;  // the available ring
  GuestPhysAddr device_area;  // the used ring
};

// The negotiated feature bits that change how the rings are read.
struct VirtqueueFeatures {
  bool indirect_descriptors = false;  // VIRTIO_F_INDIRECT_DESC
  bool event_index = false;           // VIRTIO_F_EVENT_IDX
};

// Every access to the rings and descriptors goes through GuestMemoryAccess, so
// an address the driver got wrong is an Error, never a host fault, and a
// driver rewriting the rings while the device reads them can only produce a
// chain that fails validation. The guest's vCPUs run concurrently with the
// device, so pop(), push_used() and needs_interrupt() fence their accesses in
// the orders virtio 1.2, 2.7.13 and 2.7.14 rely on.
class Virtqueue {
 public:
  // Checks the layout: a power-of-two size no larger than `maximum_size`, and
  // three aligned areas inside guest RAM.
  static Result<Virtqueue> create(GuestMemoryAccess& memory, const VirtqueueLayout& layout,
                                  std::uint16_t maximum_size, VirtqueueFeatures features);

  // The next available chain, or nullopt when the driver has made none
  // available. An Error names what makes the chain (or the ring) invalid;
  // the queue is then unusable until the device is reset.
  Result<std::optional<DescriptorChain>> pop();

  // Returns the chain with head `head` to the driver, reporting that the
  // device wrote `bytes_written` bytes into its device-writable buffers.
  Status push_used(std::uint16_t head, std::uint32_t bytes_written);

  // Whether the driver wants an interrupt for the used elements pushed since
  // the previous call (virtio 1.2, 2.7.7 and, with EVENT_IDX, 2.7.10). Call
  // once per batch.
  Result<bool> needs_interrupt();

  GuestMemoryAccess& memory() const { return *m_memory; }
  const VirtqueueLayout& layout() const { return m_layout; }
  VirtqueueFeatures features() const { return m_features; }
  std::uint16_t last_available_index() const { return m_last_available_index; }
  std::uint16_t used_index() const { return m_used_index; }
  std::uint64_t chains_popped() const { return m_chains_popped; }
  std::uint64_t used_pushed() const { return m_used_pushed; }

 private:
  Virtqueue(GuestMemoryAccess& memory, const VirtqueueLayout& layout, VirtqueueFeatures features)
      : m_memory(&memory), m_layout(layout), m_features(features) {}

  Result<std::uint16_t> pending_count() const;
  Result<DescriptorChain> walk_chain(std::uint16_t head) const;

  GuestPhysAddr available_index_address() const;
  GuestPhysAddr available_ring_address(std::uint16_t slot) const;
  GuestPhysAddr used_event_address() const;
  GuestPhysAddr used_index_address() const;
  GuestPhysAddr used_ring_address(std::uint16_t slot) const;
  GuestPhysAddr available_event_address() const;

  GuestMemoryAccess* m_memory;
  VirtqueueLayout m_layout;
  VirtqueueFeatures m_features;
  std::uint16_t m_last_available_index = 0;
  std::uint16_t m_used_index = 0;
  std::uint16_t m_signalled_used_index = 0;  // used idx at the last interrupt decision
  std::uint64_t m_chains_popped = 0;
  std::uint64_t m_used_pushed = 0;
};

}  // namespace vmlab::devices

VMLAB_ERROR_KINDS(vmlab::devices::VirtqueueError);
