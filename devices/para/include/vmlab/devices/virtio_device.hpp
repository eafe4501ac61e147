// What a virtio device type (block, and later others) implements, apart from
// the transport that carries it (virtio 1.2, 2: "Basic Facilities of a Virtio
// Device"; 4.2 for the MMIO transport that drives it here).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include <vmlab/devices/virtqueue.hpp>
#include <vmlab/result.hpp>

namespace vmlab::devices {

namespace virtio {

// Device status bits (virtio 1.2, 2.1).
constexpr std::uint32_t kStatusAcknowledge = 0x01;
constexpr std::uint32_t kStatusDriver = 0x02;
constexpr std::uint32_t kStatusDriverOk = 0x04;
constexpr std::uint32_t kStatusFeaturesOk = 0x08;
constexpr std::uint32_t kStatusDeviceNeedsReset = 0x40;
constexpr std::uint32_t kStatusFailed = 0x80;

// Reserved feature bits shared by every device type (virtio 1.2, 6).
constexpr std::uint64_t kFeatureIndirectDescriptors = 1ULL << 28;  // VIRTIO_F_INDIRECT_DESC
constexpr std::uint64_t kFeatureEventIndex = 1ULL << 29;           // VIRTIO_F_EVENT_IDX
constexpr std::uint64_t kFeatureVersion1 = 1ULL << 32;             // VIRTIO_F_VERSION_1

// Device types (virtio 1.2, 5).
constexpr std::uint32_t kDeviceIdBlock = 2;

}  // namespace virtio

// A device type's half of a virtio device. The transport owns the feature
// handshake, the status machine and the queue registers; the device type
// supplies its feature bits and configuration space and serves its queues.
class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  virtual std::string_view name() const = 0;
  virtual std::uint32_t device_id() const = 0;
  // Device-type and ring feature bits this device offers. The transport adds
  // VIRTIO_F_VERSION_1 itself: every vmlab device is a modern (1.x) device.
  virtual std::uint64_t features() const = 0;

  // The driver's accepted feature set, once the transport has checked it
  // against features() and set FEATURES_OK (virtio 1.2, 2.2); until then, and
  // after a reset, the device acts as if the driver had accepted none.
  virtual void accept_features(std::uint64_t features) = 0;

  virtual std::uint16_t queue_count() const = 0;
  virtual std::uint16_t queue_size_maximum(std::uint16_t queue_index) const = 0;

  // The device-specific configuration space (virtio 1.2, 2.5), `offset`
  // relative to its start. Bytes past its end read as zero and ignore writes.
  virtual void read_config(std::uint64_t offset, std::span<std::uint8_t> data) const = 0;
  virtual void write_config(std::uint64_t offset, std::span<const std::uint8_t> data) = 0;

  // Serves every buffer the driver has made available on `queue`, pushing each
  // one to the used ring; the transport decides about the interrupt once the
  // batch is done. An Error means the driver broke the virtqueue rules in a
  // way the device cannot answer on the ring (a malformed chain): the
  // transport then sets DEVICE_NEEDS_RESET and stops serving the queue.
  virtual Status process_queue(std::uint16_t queue_index, Virtqueue& queue) = 0;

  // Back to the state after construction (virtio 1.2, 2.4): the driver
  // wrote 0 to the status register.
  virtual void reset() = 0;
};

}  // namespace vmlab::devices
