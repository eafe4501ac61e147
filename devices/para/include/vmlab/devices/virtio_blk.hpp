// The virtio block device (virtio 1.2, 5.2) over a BlockBackend: one request
// queue, read, write, flush and get-id requests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include <vmlab/address.hpp>
#include <vmlab/devices/block_backend.hpp>
#include <vmlab/devices/virtio_device.hpp>
#include <vmlab/devices/virtqueue.hpp>
#include <vmlab/result.hpp>
#include "vmlab/result.hpp"

namespace vmlab::devices {

// Why virtio-blk refused a request: kMalformedRequest cannot be answered on
// the ring (the transport sets DEVICE_NEEDS_RESET); the others are answered
// with VIRTIO_BLK_S_IOERR, as is a failure of the disk (its DiskError).
// New kinds go last.
enum class VirtioBlkError {
  kMalformedRequest = 1,  // no room for the 16-byte header or the status byte
  kGuestMemory,           // the header, the data or the status byte could not be moved
  kBadBuffers,            // data buffers the type does not take: the wrong direction, or any
  kPartialSector,         // data that is not a whole number of 512-byte sectors
  kOverSegmentLimit,      // more data segments than seg_max, or one larger than size_max
  kOutOfRange,            // sectors past the end of the disk
  kReadOnly,              // a write to a read-only disk
};
constexpr const char* error_domain(VirtioBlkError) {
  return "virtio-blk";
}
using vmlab::make_error_code;  // found by argument-dependent lookup here

namespace virtio {

// Block device feature bits (virtio 1.2, 5.2.3).
constexpr std::uint64_t kBlockFeatureSizeMax = 1ULL << 1;
constexpr std::uint64_t kBlockFeatureSegmentMax = 1ULL << 2;
constexpr std::uint64_t kBlockFeatureReadOnly = 1ULL << 5;
constexpr std::uint64_t kBlockFeatureBlockSize = 1ULL << 6;
constexpr std::uint64_t kBlockFeatureFlush = 1ULL << 9;

// Request types and status values (virtio 1.2, 5.2.6).
constexpr std::uint32_t kBlockRequestIn = 0;
constexpr std::uint32_t kBlockRequestOut = 1;
constexpr std::uint32_t kBlockRequestFlush = 4;
constexpr std::uint32_t kBlockRequestGetId = 8;
constexpr std::uint8_t kBlockStatusOk = 0;
constexpr std::uint8_t kBlockStatusIoError = 1;
constexpr std::uint8_t kBlockStatusUnsupported = 2;
constexpr std::size_t kBlockIdLength = 20;

// Offsets in struct virtio_blk_config (virtio 1.2, 5.2.4).
constexpr std::uint64_t kBlockConfigCapacity = 0;
constexpr std::uint64_t kBlockConfigSizeMax = 8;
constexpr std::uint64_t kBlockConfigSegmentMax = 12;
constexpr std::uint64_t kBlockConfigBlockSize = 20;
constexpr std::uint64_t kBlockConfigLength = 24;  // up to and including blk_size

}  // namespace virtio

struct VirtioBlkOptions {
  // Offer VIRTIO_F_EVENT_IDX, so the driver can suppress notifications and
  // interrupts by index (virtio 1.2, 2.7.7, 2.7.10).
  bool event_index = false;
  // QueueNumMax; rounded down to a power of two no larger than 32768.
  std::uint16_t queue_size = 256;
  // seg_max and size_max of the configuration space: the most data buffers a
  // request may have, and the most bytes in one of them.
  std::uint32_t segment_maximum = 254;
  std::uint32_t segment_size_maximum = static_cast<std::uint32_t>(1 * MiB);
};

// Counters the benchmark prints, kept across device resets.
struct VirtioBlkStatistics {
  std::uint64_t read_requests = 0;
  std::uint64_t write_requests = 0;
  std::uint64_t flush_requests = 0;
  std::uint64_t get_id_requests = 0;
  std::uint64_t unsupported_requests = 0;  // answered VIRTIO_BLK_S_UNSUPP
  std::uint64_t io_errors = 0;             // answered VIRTIO_BLK_S_IOERR
  std::uint64_t malformed_requests = 0;    // no header or status byte: the device needs a reset
  std::uint64_t bytes_read = 0;            // disk to guest
  std::uint64_t bytes_written = 0;         // guest to disk
};

// A request is a 16-byte device-readable header, data buffers, and a
// device-writable status byte at the very end (virtio 1.2, 5.2.6). The header
// and data may be split across descriptors in any way (2.7.4).
//
// A request the device can answer but not perform gets VIRTIO_BLK_S_IOERR:
// past the end of the disk, a write to a read-only disk, a backend error,
// data buffers of the wrong direction, a length that is not whole sectors,
// or more or larger segments than seg_max and size_max allow (checked when
// the driver accepted VIRTIO_BLK_F_SEG_MAX or _SIZE_MAX). These are all
// checked before the first byte moves, so nothing reaches the disk (only a
// disk that fails part-way through a write can have taken its first part),
// and guest memory outside the request's device-writable buffers is never
// written. A chain with no room for the header or the status byte cannot be
// answered at all; process_queue() returns an Error for it.
class VirtioBlk final : public VirtioDevice {
 public:
  static constexpr std::size_t kBounceLength = 256 * KiB;

  // `backend` must outlive the device.
  explicit VirtioBlk(BlockBackend& backend, VirtioBlkOptions options = {});

  std::string_view name() const override { return "virtio-blk"; }
  std::uint32_t device_id() const override { return virtio::kDeviceIdBlock; }
  std::uint64_t features() const override;
  void accept_features(std::uint64_t features) override { m_accepted_features = features; }
  std::uint16_t queue_count() const override { return 1; }
  std::uint16_t queue_size_maximum(std::uint16_t queue_index) const override;
  void read_config(std::uint64_t offset, std::span<std::uint8_t> data) const override;
  void write_config(std::uint64_t offset, std::span<const std::uint8_t> data) override;
  Status process_queue(std::uint16_t queue_index, Virtqueue& queue) override;
  void reset() override { m_accepted_features = 0; }

  const VirtioBlkOptions& options() const { return m_options; }
  const VirtioBlkStatistics& statistics() const { return m_statistics; }
  // Why the most recent request got VIRTIO_BLK_S_IOERR; nullopt if none has.
  const std::optional<Error>& last_io_error() const { return m_last_io_error; }

 private:
  // The device-writable bytes the request reported, or an Error when the
  // chain is malformed.
  Result<std::uint32_t> serve_request(GuestMemoryAccess& memory, const DescriptorChain& chain);
  std::uint8_t execute(GuestMemoryAccess& memory, const DescriptorChain& chain, std::uint32_t type,
                       std::uint64_t sector);
  // A read (disk to guest) or write request's data, moved sector by sector.
  enum class Direction { ToGuest, ToDisk };
  std::uint8_t transfer(GuestMemoryAccess& memory, const DescriptorChain& chain,
                        std::uint64_t sector, Direction direction);
  Status move_through_bounce(GuestMemoryAccess& memory, GuestPhysAddr address,
                             std::uint64_t disk_offset, Direction direction);
  std::uint8_t flush(const DescriptorChain& chain);
  std::uint8_t get_id(GuestMemoryAccess& memory, const DescriptorChain& chain);
  // Checks a transfer of `segments` at `sector` against the disk and the
  // segment limits the driver accepted.
  Status check_transfer(const std::vector<GuestBuffer>& segments, std::uint64_t sector) const;
  std::uint8_t io_error(Error reason);

  BlockBackend& m_backend;
  VirtioBlkOptions m_options;
  VirtioBlkStatistics m_statistics;
  std::uint64_t m_accepted_features = 0;
  std::optional<Error> m_last_io_error;
  // Data on its way between guest memory and the disk, at most
  // kBounceLength bytes at a time whatever the segment sizes.
  std::vector<std::uint8_t> m_bounce;
};

}  // namespace vmlab::devices

VMLAB_ERROR_KINDS(vmlab::devices::VirtioBlkError);
