#include <vmlab/devices/virtio_blk.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <utility>

namespace vmlab::devices {
namespace {

static_assert(std::endian::native == std::endian::little);

// struct virtio_blk_req's header (virtio 1.2, 5.2.6): le32 type, le32
// reserved, le64 sector.
struct RequestHeader {
  std::uint32_t type;
  std::uint32_t reserved;
  std::uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);
constexpr std::uint64_t kHeaderLength = sizeof(RequestHeader);
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

void store_little_endian(std::span<std::uint8_t> bytes, std::uint64_t offset, std::uint64_t value,
                         std::size_t length) {
  for (std::size_t index = 0; index < length; ++index) {
    bytes[offset + index] = static_cast<std::uint8_t>(value >> (8 * index));
  }
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
  store_little_endian(config, virtio::kBlockConfigCapacity, m_backend.sector_count(), 8);
  store_little_endian(config, virtio::kBlockConfigSizeMax, m_options.segment_size_maximum, 4);
  store_little_endian(config, virtio::kBlockConfigSegmentMax, m_options.segment_maximum, 4);
  store_little_endian(config, virtio::kBlockConfigBlockSize, kSectorSize, 4);
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
    return Error{request +
                 ": the last descriptor is not a device-writable status byte (virtio 1.2, 5.2.6)"};
  }
  if (chain.readable_length < kHeaderLength) {
    return Error{request + ": " + std::to_string(chain.readable_length) +
                 " device-readable bytes, too few for the 16-byte header (virtio 1.2, 5.2.6)"};
  }
  std::array<std::uint8_t, kHeaderLength> header_bytes{};
  auto status = chain.read(memory, 0, header_bytes);
  if (!status) return Error{request + ": reading the header: " + status.error().message};
  RequestHeader header{};
  std::memcpy(&header, header_bytes.data(), sizeof header);

  const std::uint8_t result = execute(memory, chain, header.type, header.sector);

  const GuestBuffer& last = chain.buffers.back();
  status = memory.write_object(last.address + (last.length - kStatusLength), result);
  if (!status) return Error{request + ": writing the status byte: " + status.error().message};
  // The whole device-writable part counts as written: the status byte is its
  // last byte, and the driver may not look past `len` (virtio 1.2, 2.7.8.2).
  return static_cast<std::uint32_t>(chain.writable_length);
}

std::uint8_t VirtioBlk::execute(GuestMemoryAccess& memory, const DescriptorChain& chain,
                                std::uint32_t type, std::uint64_t sector) {
  switch (static_cast<RequestType>(type)) {
    case RequestType::In:
      ++m_statistics.read_requests;
      return read_sectors(memory, chain, sector);
    case RequestType::Out:
      ++m_statistics.write_requests;
      return write_sectors(memory, chain, sector);
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

std::uint8_t VirtioBlk::read_sectors(GuestMemoryAccess& memory, const DescriptorChain& chain,
                                     std::uint64_t sector) {
  if (chain.readable_length > kHeaderLength) {
    return io_error("read request with " + std::to_string(chain.readable_length - kHeaderLength) +
                    " bytes of device-readable data; its data buffers must be device-writable");
  }
  const auto segments = data_segments(chain, true, 0, kStatusLength);
  if (auto problem = check_transfer(segments, sector); !problem.empty()) {
    return io_error("read request: " + problem);
  }
  std::uint64_t disk_offset = sector * kSectorSize;
  for (const GuestBuffer& segment : segments) {
    for (std::uint64_t done = 0; done < segment.length;) {
      const std::size_t length = std::min<std::uint64_t>(kBounceLength, segment.length - done);
      m_bounce.resize(length);
      auto status = m_backend.read(disk_offset, m_bounce);
      if (!status) return io_error("read request: the disk failed: " + status.error().message);
      status = memory.write(segment.address + done, m_bounce);
      if (!status) return io_error("read request: " + status.error().message);
      done += length;
      disk_offset += length;
      m_statistics.bytes_read += length;
    }
  }
  return virtio::kBlockStatusOk;
}

std::uint8_t VirtioBlk::write_sectors(GuestMemoryAccess& memory, const DescriptorChain& chain,
                                      std::uint64_t sector) {
  if (chain.writable_length > kStatusLength) {
    return io_error("write request with " + std::to_string(chain.writable_length - kStatusLength) +
                    " bytes of device-writable data; its data buffers must be device-readable");
  }
  // virtio 1.2, 5.2.6.2: a write to a read-only device fails and writes nothing.
  if (m_backend.read_only()) return io_error("write request to a read-only disk");
  const auto segments = data_segments(chain, false, kHeaderLength, 0);
  if (auto problem = check_transfer(segments, sector); !problem.empty()) {
    return io_error("write request: " + problem);
  }
  std::uint64_t disk_offset = sector * kSectorSize;
  for (const GuestBuffer& segment : segments) {
    for (std::uint64_t done = 0; done < segment.length;) {
      const std::size_t length = std::min<std::uint64_t>(kBounceLength, segment.length - done);
      m_bounce.resize(length);
      auto status = memory.read(segment.address + done, m_bounce);
      if (!status) return io_error("write request: " + status.error().message);
      status = m_backend.write(disk_offset, m_bounce);
      if (!status) return io_error("write request: the disk failed: " + status.error().message);
      done += length;
      disk_offset += length;
      m_statistics.bytes_written += length;
    }
  }
  return virtio::kBlockStatusOk;
}

std::uint8_t VirtioBlk::flush(const DescriptorChain& chain) {
  if (chain.readable_length > kHeaderLength || chain.writable_length > kStatusLength) {
    return io_error("flush request with data buffers");
  }
  auto status = m_backend.flush();
  if (!status) return io_error("flush request: the disk failed: " + status.error().message);
  return virtio::kBlockStatusOk;
}

std::uint8_t VirtioBlk::get_id(GuestMemoryAccess& memory, const DescriptorChain& chain) {
  if (chain.readable_length > kHeaderLength) {
    return io_error("get-id request with device-readable data");
  }
  // The id is 20 bytes, NUL-padded, and not NUL-terminated when it fills
  // them (virtio 1.2, 5.2.6); a shorter buffer gets its first bytes.
  std::array<std::uint8_t, virtio::kBlockIdLength> id{};
  const std::string serial = m_backend.serial();
  std::memcpy(id.data(), serial.data(), std::min(serial.size(), id.size()));
  const std::size_t length = std::min<std::uint64_t>(id.size(), chain.writable_length - 1);
  auto status = chain.write(memory, 0, std::span(id.data(), length));
  if (!status) return io_error("get-id request: " + status.error().message);
  return virtio::kBlockStatusOk;
}

std::string VirtioBlk::check_transfer(const std::vector<GuestBuffer>& segments,
                                      std::uint64_t sector) const {
  if ((m_accepted_features & virtio::kBlockFeatureSegmentMax) != 0 &&
      segments.size() > m_options.segment_maximum) {
    return std::to_string(segments.size()) + " data segments, more than seg_max " +
           std::to_string(m_options.segment_maximum);
  }
  std::uint64_t length = 0;
  for (const GuestBuffer& segment : segments) {
    if ((m_accepted_features & virtio::kBlockFeatureSizeMax) != 0 &&
        segment.length > m_options.segment_size_maximum) {
      return "a data segment of " + std::to_string(segment.length) +
             " bytes, larger than size_max " + std::to_string(m_options.segment_size_maximum);
    }
    length += segment.length;
  }
  if (length % kSectorSize != 0) {
    return std::to_string(length) + " data bytes, not a whole number of 512-byte sectors";
  }
  const std::uint64_t capacity = m_backend.sector_count();
  const std::uint64_t count = length / kSectorSize;
  if (sector > capacity || count > capacity - sector) {
    return "sectors " + std::to_string(sector) + " + " + std::to_string(count) +
           " run past the end of the " + std::to_string(capacity) + "-sector disk";
  }
  return {};
}

std::uint8_t VirtioBlk::io_error(std::string reason) {
  ++m_statistics.io_errors;
  m_last_io_error = std::move(reason);
  return virtio::kBlockStatusIoError;
}

}  // namespace vmlab::devices
