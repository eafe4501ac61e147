#include <vmlab/devices/virtqueue.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <limits>
#include <string>
#include <utility>

#include <vmlab/format.hpp>

namespace vmlab::devices {
namespace {

// Virtio 1.x rings are little-endian (virtio 1.2, 2.7, "le16"/"le32"/"le64"),
// so they are read as host integers only on a little-endian host.
static_assert(std::endian::native == std::endian::little);

// struct virtq_desc (virtio 1.2, 2.7.5).
struct RingDescriptor {
  std::uint64_t address;
  std::uint32_t length;
  std::uint16_t flags;
  std::uint16_t next;
};
static_assert(sizeof(RingDescriptor) == 16);

// struct virtq_used_elem (virtio 1.2, 2.7.8).
struct RingUsedElement {
  std::uint32_t id;
  std::uint32_t length;
};
static_assert(sizeof(RingUsedElement) == 8);

// Offsets inside the driver area (struct virtq_avail) and the device area
// (struct virtq_used): flags, idx, ring[size], then the event index field.
constexpr std::uint64_t kRingIndexOffset = 2;
constexpr std::uint64_t kRingEntriesOffset = 4;

// A failed access to guest memory, as this module reports it.
Error guest_memory_error(const std::string& what, const Error& error) {
  return Error{VirtqueueError::kGuestMemory, what + error.message, error.system_errno};
}

Status check_area(const GuestMemoryAccess& memory, const char* what, GuestPhysAddr address,
                  std::uint64_t alignment, std::uint64_t length) {
  if (address.value() % alignment != 0) {
    return Error{VirtqueueError::kBadLayout, std::string(what) + " at " + hex(address.value()) +
                                                 " is not " + std::to_string(alignment) +
                                                 "-byte aligned (virtio 1.2, 2.7)"};
  }
  if (!memory.contains(address, length)) {
    return Error{
        VirtqueueError::kBadLayout,
        std::string(what) + " " + range_text(address.value(), length) + " is outside guest RAM"};
  }
  return {};
}

// Calls `copy(buffer, offset_in_buffer, offset_in_data, count)` for each
// piece of the chain's buffers in one direction that falls in
// [offset, offset + size) of that direction's bytes.
template <typename Copy>
Status for_each_piece(const std::vector<GuestBuffer>& buffers, bool device_writable,
                      std::uint64_t offset, std::uint64_t size, Copy&& copy) {
  std::uint64_t position = 0;  // where the current buffer starts in the stream
  std::uint64_t done = 0;
  for (const GuestBuffer& buffer : buffers) {
    if (done == size) break;
    if (buffer.device_writable != device_writable) continue;
    const std::uint64_t end = position + buffer.length;
    if (offset + done < end) {
      const std::uint64_t within = offset + done - position;
      const std::uint64_t count = std::min<std::uint64_t>(buffer.length - within, size - done);
      auto status = copy(buffer, within, done, count);
      if (!status) return status;
      done += count;
    }
    position = end;
  }
  return {};
}

// Copies between `bytes` and the chain's bytes of one direction, from
// `offset` on, one piece at a time: `copy(address, piece)` is a guest memory
// read or write.
template <typename Bytes, typename Copy>
Status copy_chain(const DescriptorChain& chain, bool device_writable, std::uint64_t offset,
                  Bytes bytes, Copy&& copy) {
  const std::uint64_t length = device_writable ? chain.writable_length : chain.readable_length;
  if (offset > length || bytes.size() > length - offset) {
    return Error{VirtqueueError::kPastChainEnd,
                 std::string(device_writable ? "write" : "read") + " of " +
                     std::to_string(bytes.size()) + " bytes at " + std::to_string(offset) +
                     " is past the chain's " + std::to_string(length) +
                     (device_writable ? " device-writable bytes" : " device-readable bytes")};
  }
  return for_each_piece(chain.buffers, device_writable, offset, bytes.size(),
                        [&](const GuestBuffer& buffer, std::uint64_t within, std::uint64_t done,
                            std::uint64_t count) -> Status {
                          auto copied = copy(buffer.address + within, bytes.subspan(done, count));
                          if (!copied) return guest_memory_error("", copied.error());
                          return {};
                        });
}

}  // namespace

Status DescriptorChain::read(const GuestMemoryAccess& memory, std::uint64_t offset,
                             std::span<std::uint8_t> out) const {
  return copy_chain(*this, false, offset, out,
                    [&](GuestPhysAddr address, std::span<std::uint8_t> piece) {
                      return memory.read(address, piece);
                    });
}

Status DescriptorChain::write(GuestMemoryAccess& memory, std::uint64_t offset,
                              std::span<const std::uint8_t> in) const {
  return copy_chain(*this, true, offset, in,
                    [&](GuestPhysAddr address, std::span<const std::uint8_t> piece) {
                      return memory.write(address, piece);
                    });
}

Result<Virtqueue> Virtqueue::create(GuestMemoryAccess& memory, const VirtqueueLayout& layout,
                                    std::uint16_t maximum_size, VirtqueueFeatures features) {
  if (layout.size == 0 || layout.size > maximum_size || !std::has_single_bit(layout.size)) {
    return Error{VirtqueueError::kBadLayout, "queue size " + std::to_string(layout.size) +
                                                 " is not a power of two between 1 and " +
                                                 std::to_string(maximum_size) +
                                                 " (virtio 1.2, 2.7)"};
  }
  const std::uint64_t size = layout.size;
  // Area sizes from the table in virtio 1.2, 2.7; the event index fields are
  // part of the areas whether or not VIRTIO_F_EVENT_IDX is negotiated.
  auto status = check_area(memory, "descriptor table", layout.descriptor_table,
                           virtio::kDescriptorTableAlignment, sizeof(RingDescriptor) * size);
  if (!status) return status.error();
  status = check_area(memory, "driver area (available ring)", layout.driver_area,
                      virtio::kDriverAreaAlignment, 6 + 2 * size);
  if (!status) return status.error();
  status = check_area(memory, "device area (used ring)", layout.device_area,
                      virtio::kDeviceAreaAlignment, 6 + sizeof(RingUsedElement) * size);
  if (!status) return status.error();
  return Virtqueue(memory, layout, features);
}

GuestPhysAddr Virtqueue::available_index_address() const {
  return m_layout.driver_area + kRingIndexOffset;
}
GuestPhysAddr Virtqueue::available_ring_address(std::uint16_t slot) const {
  return m_layout.driver_area + kRingEntriesOffset + 2 * std::uint64_t{slot};
}
GuestPhysAddr Virtqueue::used_event_address() const {
  return available_ring_address(m_layout.size);
}
GuestPhysAddr Virtqueue::used_index_address() const {
  return m_layout.device_area + kRingIndexOffset;
}
GuestPhysAddr Virtqueue::used_ring_address(std::uint16_t slot) const {
  return m_layout.device_area + kRingEntriesOffset + sizeof(RingUsedElement) * slot;
}
GuestPhysAddr Virtqueue::available_event_address() const {
  return used_ring_address(m_layout.size);
}

Result<std::uint16_t> Virtqueue::pending_count() const {
  auto index = m_memory->read_object<std::uint16_t>(available_index_address());
  if (!index) return guest_memory_error("reading the available ring's idx: ", index.error());
  const auto pending = static_cast<std::uint16_t>(*index - m_last_available_index);
  // The driver can have at most Queue Size chains outstanding, since each
  // needs its own head descriptor (virtio 1.2, 2.7.6, 2.7.13.3).
  if (pending > m_layout.size) {
    return Error{VirtqueueError::kBadAvailableIndex,
                 "available ring idx jumped from " + std::to_string(m_last_available_index) +
                     " to " + std::to_string(*index) + ", more than the queue's " +
                     std::to_string(m_layout.size) + " entries (virtio 1.2, 2.7.13.3)"};
  }
  return pending;
}

Result<std::optional<DescriptorChain>> Virtqueue::pop() {
  auto pending = pending_count();
  if (!pending) return pending.error();
  if (*pending == 0) {
    if (!m_features.event_index) return std::optional<DescriptorChain>{};
    // Ask to be notified when the driver adds the next chain (virtio 1.2,
    // 2.7.10), then look once more: a chain added before the driver could see
    // avail_event would otherwise wait for a notification that never comes.
    auto written = m_memory->write_object(available_event_address(), m_last_available_index);
    if (!written) return guest_memory_error("writing avail_event: ", written.error());
    std::atomic_thread_fence(std::memory_order_seq_cst);
    pending = pending_count();
    if (!pending) return pending.error();
    if (*pending == 0) return std::optional<DescriptorChain>{};
  }
  // The ring entry and the descriptors are read after the idx that published
  // them (virtio 1.2, 2.7.13.3: the driver writes them before idx).
  std::atomic_thread_fence(std::memory_order_acquire);
  const auto slot = static_cast<std::uint16_t>(m_last_available_index & (m_layout.size - 1));
  auto head = m_memory->read_object<std::uint16_t>(available_ring_address(slot));
  if (!head) return guest_memory_error("reading the available ring: ", head.error());
  if (*head >= m_layout.size) {
    return Error{VirtqueueError::kDescriptorOutOfRange,
                 "available ring entry " + std::to_string(m_last_available_index) +
                     " names descriptor " + std::to_string(*head) + ", outside the " +
                     std::to_string(m_layout.size) + "-entry descriptor table"};
  }
  auto chain = walk_chain(*head);
  if (!chain) return chain.error();
  ++m_last_available_index;
  ++m_chains_popped;
  return std::optional<DescriptorChain>(std::move(*chain));
}

Result<DescriptorChain> Virtqueue::walk_chain(std::uint16_t head) const {
  DescriptorChain chain;
  chain.head = head;
  GuestPhysAddr table = m_layout.descriptor_table;
  std::uint32_t table_entries = m_layout.size;
  bool in_indirect_table = false;
  std::uint32_t index = head;
  // A chain visits each descriptor of its table at most once (virtio 1.2,
  // 2.7.5.2: a chain is no longer than the table and has no loops), so the
  // walk is bounded by the table size whatever the driver wrote.
  std::uint32_t visited = 0;

  auto fail = [&](VirtqueueError kind, const std::string& problem) -> Error {
    std::string where = in_indirect_table ? "indirect descriptor " + std::to_string(index) +
                                                " (table at " + hex(table.value()) + ")"
                                          : "descriptor " + std::to_string(index);
    return Error{kind, "chain with head " + std::to_string(head) + ": " + where + ": " + problem};
  };

  for (;;) {
    if (index >= table_entries) {
      return fail(VirtqueueError::kDescriptorOutOfRange,
                  "index out of range for a " + std::to_string(table_entries) + "-entry table");
    }
    if (visited == table_entries) {
      return fail(VirtqueueError::kDescriptorLoop,
                  "chain is longer than its " + std::to_string(table_entries) +
                      "-entry table, so it loops (virtio 1.2, 2.7.5.2)");
    }
    ++visited;
    auto descriptor = m_memory->read_object<RingDescriptor>(table + sizeof(RingDescriptor) * index);
    if (!descriptor) {
      return fail(VirtqueueError::kGuestMemory, "cannot be read: " + descriptor.error().message);
    }

    if ((descriptor->flags & virtio::kDescriptorIndirect) != 0) {
      // The rules for indirect tables are virtio 1.2, 2.7.5.3.1; the WRITE
      // flag of the descriptor that points to the table means nothing
      // (2.7.5.3.2).
      if (!m_features.indirect_descriptors) {
        return fail(VirtqueueError::kBadIndirectTable,
                    "INDIRECT set but VIRTIO_F_INDIRECT_DESC was not negotiated");
      }
      if (in_indirect_table) {
        return fail(VirtqueueError::kBadIndirectTable, "INDIRECT inside an indirect table");
      }
      if ((descriptor->flags & virtio::kDescriptorNext) != 0) {
        return fail(VirtqueueError::kBadIndirectTable, "INDIRECT combined with NEXT");
      }
      if (descriptor->length == 0 || descriptor->length % sizeof(RingDescriptor) != 0) {
        return fail(VirtqueueError::kBadIndirectTable, "indirect table length " +
                                                           std::to_string(descriptor->length) +
                                                           " is not a non-zero multiple of 16");
      }
      const auto entries = static_cast<std::uint32_t>(descriptor->length / sizeof(RingDescriptor));
      if (entries > virtio::kMaximumIndirectDescriptors) {
        return fail(VirtqueueError::kBadIndirectTable,
                    "indirect table of " + std::to_string(entries) +
                        " descriptors is larger than the " +
                        std::to_string(virtio::kMaximumIndirectDescriptors) + " vmlab accepts");
      }
      if (!m_memory->contains(GuestPhysAddr(descriptor->address), descriptor->length)) {
        return fail(VirtqueueError::kOutsideGuestMemory,
                    "indirect table " + range_text(descriptor->address, descriptor->length) +
                        " is outside guest RAM");
      }
      table = GuestPhysAddr(descriptor->address);
      table_entries = entries;
      in_indirect_table = true;
      index = 0;
      visited = 0;
      continue;
    }

    if (descriptor->length > std::numeric_limits<std::uint64_t>::max() - descriptor->address) {
      return fail(VirtqueueError::kOutsideGuestMemory,
                  "buffer " + range_text(descriptor->address, descriptor->length) +
                      " wraps around the address space");
    }
    if (!m_memory->contains(GuestPhysAddr(descriptor->address), descriptor->length)) {
      return fail(VirtqueueError::kOutsideGuestMemory,
                  "buffer " + range_text(descriptor->address, descriptor->length) +
                      " is outside guest RAM");
    }
    const bool device_writable = (descriptor->flags & virtio::kDescriptorWrite) != 0;
    if (!device_writable && chain.writable_length != 0) {
      return fail(VirtqueueError::kBadBufferOrder,
                  "device-readable buffer after a device-writable one (virtio 1.2, 2.7.4.2)");
    }
    const std::uint64_t total = chain.readable_length + chain.writable_length + descriptor->length;
    if (total > std::numeric_limits<std::uint32_t>::max()) {
      return fail(VirtqueueError::kChainTooLong,
                  "chain holds more than 4 GiB (virtio 1.2, 2.7.5.2)");
    }
    (device_writable ? chain.writable_length : chain.readable_length) += descriptor->length;
    chain.buffers.push_back(
        GuestBuffer{GuestPhysAddr(descriptor->address), descriptor->length, device_writable});

    if ((descriptor->flags & virtio::kDescriptorNext) == 0) return chain;
    index = descriptor->next;
  }
}

Status Virtqueue::push_used(std::uint16_t head, std::uint32_t bytes_written) {
  const auto slot = static_cast<std::uint16_t>(m_used_index & (m_layout.size - 1));
  auto status =
      m_memory->write_object(used_ring_address(slot), RingUsedElement{head, bytes_written});
  if (!status) return guest_memory_error("writing the used ring: ", status.error());
  // The element is visible before the idx that hands it to the driver
  // (virtio 1.2, 2.7.8.2).
  std::atomic_thread_fence(std::memory_order_release);
  const auto next_index = static_cast<std::uint16_t>(m_used_index + 1);
  status = m_memory->write_object(used_index_address(), next_index);
  if (!status) return guest_memory_error("writing the used ring's idx: ", status.error());
  m_used_index = next_index;
  ++m_used_pushed;
  return {};
}

Result<bool> Virtqueue::needs_interrupt() {
  const std::uint16_t new_index = m_used_index;
  const std::uint16_t old_index = m_signalled_used_index;
  if (new_index == old_index) return false;
  m_signalled_used_index = new_index;
  // The used idx store is ordered before the load of the driver's
  // suppression field; otherwise the driver could re-enable interrupts after
  // the device looked and before it saw the new entries, and wait forever.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (m_features.event_index) {
    auto used_event = m_memory->read_object<std::uint16_t>(used_event_address());
    if (!used_event) return guest_memory_error("reading used_event: ", used_event.error());
    // vring_need_event (virtio 1.2, 2.7.10): interrupt when used_event lies
    // in [old_index, new_index), the entries pushed since the last decision.
    return static_cast<std::uint16_t>(new_index - *used_event - 1) <
           static_cast<std::uint16_t>(new_index - old_index);
  }
  auto flags = m_memory->read_object<std::uint16_t>(m_layout.driver_area);
  if (!flags) return guest_memory_error("reading the available ring's flags: ", flags.error());
  return (*flags & virtio::kAvailableNoInterrupt) == 0;
}

}  // namespace vmlab::devices
