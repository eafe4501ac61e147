#include <vmlab/devices/virtio_blk.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <string>
#include <utility>

#include <vmlab/little_endian.hpp>

namespace vmlab::devices {
namespace {

// struct virtio_blk_req's header (virtio 1.2, 5.2.6): le32 type, le32
// reserved, le64 sector.
constexpr std::uint64_t kHeaderLength = 16;
constexpr std::uint64_t kHeaderSectorOffset = 8;
constexpr std::uint64_t kStatusLength = 1;

enum class RequestType : std::uint32_t {
  In = virtio::kBlockRequestIn,
  Out = virtio::kBlockRequestOut,
  Flush = virtio::kBlockRequestFlush,
  GetId = virtio::kBlockRequestGetId,
};

// The pieces of the chain's buffers in one direction that lie between
// `skip_front` bytes after the start of that direction's bytes and
// `drop_back` bytes before their end: a request's data, without the header
// or the status byte around it.
std::vector<GuestBuffer> data_segments(const DescriptorChain& chain, bool device_writable,
                                       std::uint64_t skip_front, std::uint64_t drop_back) {
  const std::uint64_t total = device_writable ? chain.writable_length : chain.readable_length;
  const std::uint64_t end = total - drop_back;
  std::vector<GuestBuffer> segments;
  std::uint64_t position = 0;
  for (const GuestBuffer& buffer : chain.buffers) {
    if (buffer.device_writable != device_writable) continue;
    const std::uint64_t start = std::max(position, skip_front);
    const std::uint64_t stop = std::min(position + buffer.length, end);
    if (start < stop) {
      segments.push_back(GuestBuffer{buffer.address + (start - position),
                                     static_cast<std::uint32_t>(stop - start), device_writable});
    }
    position += buffer.length;
  }
  return segments;
}

// `error`, from guest memory, a virtqueue or the disk, as part of a request's
// answer: `kind` (or the error's own), and what the request was doing.
Error in_request(std::error_code kind, const std::string& context, const Error& error) {
  return Error{kind, context + error.message, error.system_errno};
}

}  // namespace

VirtioBlk::VirtioBlk(BlockBackend& backend, VirtioBlkOptions options)
    : m_backend(backend), m_options(options) {
  const std::uint16_t requested = m_options.queue_size == 0 ? 256 : m_options.queue_size;
  m_options.queue_size = std::bit_floor(std::min(requested, virtio::kMaximumQueueSize));
}

std::uint64_t VirtioBlk::features() const {
  std::uint64_t features = virtio::kBlockFeatureSizeMax | virtio::kBlockFeatureSegmentMax |
                           virtio::kBlockFeatureBlockSize | virtio::kBlockFeatureFlush |
                           virtio::kFeatureIndirectDescriptors;
  if (m_backend.read_only()) features |= virtio::kBlockFeatureReadOnly;
  if (m_options.event_index) features |= virtio::kFeatureEventIndex;
  return features;
}

std::uint16_t VirtioBlk::queue_size_maximum(std::uint16_t queue_index) const {
  return queue_index < queue_count() ? m_options.queue_size : 0;
}

void VirtioBlk::read_config(std::uint64_t offset, std::span<std::uint8_t> data) const {
  std::array<std::uint8_t, virtio::kBlockConfigLength> config{};
  const auto field = [&config](std::uint64_t field_offset, std::size_t length) {
    return std::span(config).subspan(field_offset, length);
  };
  store_little_endian(field(virtio::kBlockConfigCapacity, 8), m_backend.sector_count());
  store_little_endian(field(virtio::kBlockConfigSizeMax, 4), m_options.segment_size_maximum);
  store_little_endian(field(virtio::kBlockConfigSegmentMax, 4), m_options.segment_maximum);
  store_little_endian(field(virtio::kBlockConfigBlockSize, 4), kSectorSize);
  for (std::size_t index = 0; index < data.size(); ++index) {
    if (offset >= config.size() || index >= config.size() - offset) return;
    data[index] = config[offset + index];
  }
}

// Every field vmlab offers is read-only: `writeback` is writable only with
// VIRTIO_BLK_F_CONFIG_WCE (virtio 1.2, 5.2.4), which is not offered.
void VirtioBlk::write_config(std::uint64_t /*offset*/, std::span<const std::uint8_t> /*data*/) {}

Status VirtioBlk::process_queue(std::uint16_t /*queue_index*/, Virtqueue& queue) {
  // The driver may have queued several requests behind one notification:
  // serve them all (DESIGN.md 6, one notification per batch).
  for (;;) {
    auto popped = queue.pop();
    if (!popped) return popped.error();
    if (!popped->has_value()) return {};
    const DescriptorChain& chain = **popped;
    auto written = serve_request(queue.memory(), chain);
    if (!written) {
      ++m_statistics.malformed_requests;
      return written.error();
    }
    auto pushed = queue.push_used(chain.head, *written);
    if (!pushed) return pushed;
  }
}

Result<std::uint32_t> VirtioBlk::serve_request(GuestMemoryAccess& memory,
                                               const DescriptorChain& chain) {
  const std::string request = "request with head " + std::to_string(chain.head);
  if (chain.buffers.empty() || !chain.buffers.back().device_writable ||
      chain.buffers.back().length < kStatusLength) {
    return Error{VirtioBlkError::kMalformedRequest,
                 request +
                     ": the last descriptor is not a device-writable status byte (virtio 1.2, "
                     "5.2.6)"};
  }
  if (chain.readable_length < kHeaderLength) {
    return Error{VirtioBlkError::kMalformedRequest,
                 request + ": " + std::to_string(chain.readable_length) +
                     " device-readable bytes, too few for the 16-byte header (virtio 1.2, 5.2.6)"};
  }
  std::array<std::uint8_t, kHeaderLength> header_bytes{};
  auto status = chain.read(memory, 0, header_bytes);
  if (!status) {
    return in_request(VirtioBlkError::kGuestMemory,
                      request + ": reading the header: ", status.error());
  }
  const std::span<const std::uint8_t> header(header_bytes);
  const auto type = static_cast<std::uint32_t>(load_little_endian(header.first(4)));
  const std::uint64_t sector = load_little_endian(header.subspan(kHeaderSectorOffset, 8));

  const std::uint8_t result = execute(memory, chain, type, sector);

  const GuestBuffer& last = chain.buffers.back();
  status = memory.write_object(last.address + (last.length - kStatusLength), result);
  if (!status) {
    return in_request(VirtioBlkError::kGuestMemory,
                      request + ": writing the status byte: ", status.error());
  }
  // The whole device-writable part counts as written: the status byte is its
  // last byte, and the driver may not look past `len` (virtio 1.2, 2.7.8.2).
  return static_cast<std::uint32_t>(chain.writable_length);
}

std::uint8_t VirtioBlk::execute(GuestMemoryAccess& memory, const DescriptorChain& chain,
                                std::uint32_t type, std::uint64_t sector) {
  switch (static_cast<RequestType>(type)) {
    case RequestType::In:
      ++m_statistics.read_requests;
      return transfer(memory, chain, sector, Direction::ToGuest);
    case RequestType::Out:
      ++m_statistics.write_requests;
      return transfer(memory, chain, sector, Direction::ToDisk);
    case RequestType::Flush:
      ++m_statistics.flush_requests;
      return flush(chain);
    case RequestType::GetId:
      ++m_statistics.get_id_requests;
      return get_id(memory, chain);
  }
  // Discard, write zeroes, lifetime and zoned requests need features vmlab
  // does not offer (virtio 1.2, 5.2.6.2).
  ++m_statistics.unsupported_requests;
  return virtio::kBlockStatusUnsupported;
}

// The data buffers of a read are device-writable, those of a write
// device-readable (virtio 1.2, 5.2.6); the data moves through the bounce
// buffer, at most kBounceLength bytes at a time.
std::uint8_t VirtioBlk::transfer(GuestMemoryAccess& memory, const DescriptorChain& chain,
                                 std::uint64_t sector, Direction direction) {
  const bool to_guest = direction == Direction::ToGuest;
  const std::string request = to_guest ? "read request" : "write request";
  const std::uint64_t stray_bytes =
      to_guest ? chain.readable_length - kHeaderLength : chain.writable_length - kStatusLength;
  if (stray_bytes > 0) {
    return io_error(Error{VirtioBlkError::kBadBuffers,
                          request + " with " + std::to_string(stray_bytes) +
                              (to_guest ? " bytes of device-readable data; its data buffers "
                                          "must be device-writable"
                                        : " bytes of device-writable data; its data buffers "
                                          "must be device-readable")});
  }
  // virtio 1.2, 5.2.6.2: a write to a read-only device fails and writes nothing.
  if (!to_guest && m_backend.read_only()) {
    return io_error(Error{VirtioBlkError::kReadOnly, "write request to a read-only disk"});
  }
  const auto segments = to_guest ? data_segments(chain, true, 0, kStatusLength)
                                 : data_segments(chain, false, kHeaderLength, 0);
  if (auto allowed = check_transfer(segments, sector); !allowed) {
    return io_error(in_request(allowed.error().kind, request + ": ", allowed.error()));
  }
  std::uint64_t disk_offset = sector * kSectorSize;
  for (const GuestBuffer& segment : segments) {
    for (std::uint64_t done = 0; done < segment.length;) {
      const std::size_t length = std::min<std::uint64_t>(kBounceLength, segment.length - done);
      m_bounce.resize(length);
      auto moved = move_through_bounce(memory, segment.address + done, disk_offset, direction);
      if (!moved) return io_error(in_request(moved.error().kind, request + ": ", moved.error()));
      done += length;
      disk_offset += length;
      (to_guest ? m_statistics.bytes_read : m_statistics.bytes_written) += length;
    }
  }
  return virtio::kBlockStatusOk;
}

// One bounce buffer's worth: disk, then guest memory, for a read; the other
// way round for a write. A disk failure keeps its DiskError.
Status VirtioBlk::move_through_bounce(GuestMemoryAccess& memory, GuestPhysAddr address,
                                      std::uint64_t disk_offset, Direction direction) {
  const auto disk_failed = [](const Error& error) {
    return in_request(error.kind, "the disk failed: ", error);
  };
  const auto memory_failed = [](const Error& error) {
    return in_request(VirtioBlkError::kGuestMemory, "", error);
  };
  if (direction == Direction::ToGuest) {
    if (auto read = m_backend.read(disk_offset, m_bounce); !read) return disk_failed(read.error());
    if (auto written = memory.write(address, m_bounce); !written) {
      return memory_failed(written.error());
    }
    return {};
  }
  if (auto read = memory.read(address, m_bounce); !read) return memory_failed(read.error());
  if (auto written = m_backend.write(disk_offset, m_bounce); !written) {
    return disk_failed(written.error());
  }
  return {};
}

std::uint8_t VirtioBlk::flush(const DescriptorChain& chain) {
  if (chain.readable_length > kHeaderLength || chain.writable_length > kStatusLength) {
    return io_error(Error{VirtioBlkError::kBadBuffers, "flush request with data buffers"});
  }
  auto status = m_backend.flush();
  if (!status) {
    return io_error(
        in_request(status.error().kind, "flush request: the disk failed: ", status.error()));
  }
  return virtio::kBlockStatusOk;
}

std::uint8_t VirtioBlk::get_id(GuestMemoryAccess& memory, const DescriptorChain& chain) {
  if (chain.readable_length > kHeaderLength) {
    return io_error(Error{VirtioBlkError::kBadBuffers, "get-id request with device-readable data"});
  }
  // The id is 20 bytes, NUL-padded, and not NUL-terminated when it fills
  // them (virtio 1.2, 5.2.6); a shorter buffer gets its first bytes.
  std::array<std::uint8_t, virtio::kBlockIdLength> id{};
  const std::string serial = m_backend.serial();
  std::memcpy(id.data(), serial.data(), std::min(serial.size(), id.size()));
  const std::size_t length = std::min<std::uint64_t>(id.size(), chain.writable_length - 1);
  auto status = chain.write(memory, 0, std::span(id.data(), length));
  if (!status) {
    return io_error(in_request(VirtioBlkError::kGuestMemory, "get-id request: ", status.error()));
  }
  return virtio::kBlockStatusOk;
}

Status VirtioBlk::check_transfer(const std::vector<GuestBuffer>& segments,
                                 std::uint64_t sector) const {
  if ((m_accepted_features & virtio::kBlockFeatureSegmentMax) != 0 &&
      segments.size() > m_options.segment_maximum) {
    return Error{VirtioBlkError::kOverSegmentLimit, std::to_string(segments.size()) +
                                                        " data segments, more than seg_max " +
                                                        std::to_string(m_options.segment_maximum)};
  }
  std::uint64_t length = 0;
  for (const GuestBuffer& segment : segments) {
    if ((m_accepted_features & virtio::kBlockFeatureSizeMax) != 0 &&
        segment.length > m_options.segment_size_maximum) {
      return Error{VirtioBlkError::kOverSegmentLimit,
                   "a data segment of " + std::to_string(segment.length) +
                       " bytes, larger than size_max " +
                       std::to_string(m_options.segment_size_maximum)};
    }
    length += segment.length;
  }
  if (length % kSectorSize != 0) {
    return Error{VirtioBlkError::kPartialSector,
                 std::to_string(length) + " data bytes, not a whole number of 512-byte sectors"};
  }
  const std::uint64_t capacity = m_backend.sector_count();
  const std::uint64_t count = length / kSectorSize;
  if (sector > capacity || count > capacity - sector) {
    return Error{VirtioBlkError::kOutOfRange,
                 "sectors " + std::to_string(sector) + " + " + std::to_string(count) +
                     " run past the end of the " + std::to_string(capacity) + "-sector disk"};
  }
  return {};
}

std::uint8_t VirtioBlk::io_error(Error reason) {
  ++m_statistics.io_errors;
  m_last_io_error = std::move(reason);
  return virtio::kBlockStatusIoError;
}

}  // namespace vmlab::devices
