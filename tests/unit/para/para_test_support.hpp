// Test doubles for the virtio models: guest RAM and a disk as plain vectors,
// and a minimal guest driver that programs the virtio-mmio registers and lays
// out a split virtqueue the way the Linux virtio_mmio and virtio_ring
// drivers do (virtio 1.2, 3.1.1, 4.2.3 and 2.7.13).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <vmlab/devices/block_backend.hpp>
#include <vmlab/devices/virtio_blk.hpp>
#include <vmlab/devices/virtio_mmio.hpp>
#include <vmlab/devices/virtqueue.hpp>
#include <vmlab/guest_memory.hpp>
#include <vmlab/little_endian.hpp>

namespace vmlab::devices::testing {

// Guest RAM starting at guest-physical 0, bounds-checked like GuestMemory;
// an access outside it fails with EFAULT's kind.
class FakeGuestMemory final : public GuestMemoryAccess {
 public:
  explicit FakeGuestMemory(std::uint64_t size) : m_bytes(size, 0) {}

  std::uint64_t size() const override { return m_bytes.size(); }
  Status read(GuestPhysAddr address, std::span<std::uint8_t> out) const override {
    if (!contains(address, out.size())) return outside();
    std::copy_n(m_bytes.begin() + static_cast<std::ptrdiff_t>(address.value()), out.size(),
                out.begin());
    return {};
  }
  Status write(GuestPhysAddr address, std::span<const std::uint8_t> in) override {
    if (!contains(address, in.size())) return outside();
    std::copy(in.begin(), in.end(), m_bytes.begin() + static_cast<std::ptrdiff_t>(address.value()));
    return {};
  }

  // Direct access for setting up and checking, as the guest would see it.
  const std::vector<std::uint8_t>& bytes() const { return m_bytes; }
  void put(std::uint64_t address, std::span<const std::uint8_t> bytes) {
    std::copy(bytes.begin(), bytes.end(), m_bytes.begin() + static_cast<std::ptrdiff_t>(address));
  }
  std::vector<std::uint8_t> get(std::uint64_t address, std::uint64_t length) const {
    auto first = m_bytes.begin() + static_cast<std::ptrdiff_t>(address);
    return {first, first + static_cast<std::ptrdiff_t>(length)};
  }
  void put_le(std::uint64_t address, std::uint64_t value, unsigned length) {
    store_little_endian(at(m_bytes, address, length), value);
  }
  std::uint64_t get_le(std::uint64_t address, unsigned length) const {
    return load_little_endian(at(m_bytes, address, length));
  }

 private:
  // Bounds-checked like vector::at: a test that reaches outside throws.
  template <typename Bytes>
  static auto at(Bytes& bytes, std::uint64_t address, std::uint64_t length)
      -> decltype(std::span(bytes)) {
    if (address > bytes.size() || length > bytes.size() - address) {
      throw std::out_of_range("outside the fake guest RAM");
    }
    return std::span(bytes).subspan(address, length);
  }
  static Error outside() {
    return Error{std::make_error_code(std::errc::bad_address), "outside the fake guest RAM"};
  }

  std::vector<std::uint8_t> m_bytes;
};

// A disk whose byte n initially holds a pattern that differs between
// neighbouring sectors, so a transfer at the wrong offset shows.
class FakeDisk final : public BlockBackend {
 public:
  explicit FakeDisk(std::uint64_t sectors, bool read_only = false,
                    std::string serial = "vmlab-test-disk")
      : m_bytes(sectors * kSectorSize), m_read_only(read_only), m_serial(std::move(serial)) {
    for (std::size_t index = 0; index < m_bytes.size(); ++index) {
      m_bytes[index] = static_cast<std::uint8_t>(index * 7 + index / kSectorSize);
    }
  }

  std::uint64_t size_bytes() const override { return m_bytes.size(); }
  bool read_only() const override { return m_read_only; }
  std::string serial() const override { return m_serial; }
  Status read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (m_failing) return Error{DiskError::kReadFailed, "injected read failure"};
    if (offset > m_bytes.size() || out.size() > m_bytes.size() - offset) {
      return Error{DiskError::kOutOfRange, "read past the end of the fake disk"};
    }
    std::copy_n(m_bytes.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
    return {};
  }
  Status write(std::uint64_t offset, std::span<const std::uint8_t> in) override {
    if (m_failing) return Error{DiskError::kWriteFailed, "injected write failure"};
    if (m_read_only) return Error{DiskError::kReadOnly, "write to the read-only fake disk"};
    if (offset > m_bytes.size() || in.size() > m_bytes.size() - offset) {
      return Error{DiskError::kOutOfRange, "write past the end of the fake disk"};
    }
    std::copy(in.begin(), in.end(), m_bytes.begin() + static_cast<std::ptrdiff_t>(offset));
    ++m_writes;
    return {};
  }
  Status flush() override {
    if (m_failing) return Error{DiskError::kFlushFailed, "injected flush failure"};
    ++m_flushes;
    return {};
  }

  const std::vector<std::uint8_t>& bytes() const { return m_bytes; }
  std::vector<std::uint8_t> sector_bytes(std::uint64_t sector, std::uint64_t count) const {
    auto first = m_bytes.begin() + static_cast<std::ptrdiff_t>(sector * kSectorSize);
    return {first, first + static_cast<std::ptrdiff_t>(count * kSectorSize)};
  }
  void set_failing(bool failing) { m_failing = failing; }
  int flushes() const { return m_flushes; }
  int writes() const { return m_writes; }

 private:
  std::vector<std::uint8_t> m_bytes;
  bool m_read_only;
  std::string m_serial;
  bool m_failing = false;
  int m_flushes = 0;
  int m_writes = 0;
};

// virtio-mmio register offsets (virtio 1.2, 4.2.2), as the driver uses them.
namespace mmio {
constexpr std::uint64_t kMagicValue = 0x000;
constexpr std::uint64_t kVersion = 0x004;
constexpr std::uint64_t kDeviceId = 0x008;
constexpr std::uint64_t kVendorId = 0x00c;
constexpr std::uint64_t kDeviceFeatures = 0x010;
constexpr std::uint64_t kDeviceFeaturesSelect = 0x014;
constexpr std::uint64_t kDriverFeatures = 0x020;
constexpr std::uint64_t kDriverFeaturesSelect = 0x024;
constexpr std::uint64_t kQueueSelect = 0x030;
constexpr std::uint64_t kQueueSizeMaximum = 0x034;
constexpr std::uint64_t kQueueSize = 0x038;
constexpr std::uint64_t kQueueReady = 0x044;
constexpr std::uint64_t kQueueNotify = 0x050;
constexpr std::uint64_t kInterruptStatus = 0x060;
constexpr std::uint64_t kInterruptAcknowledge = 0x064;
constexpr std::uint64_t kStatus = 0x070;
constexpr std::uint64_t kQueueDescriptorLow = 0x080;
constexpr std::uint64_t kQueueDescriptorHigh = 0x084;
constexpr std::uint64_t kQueueDriverLow = 0x090;
constexpr std::uint64_t kQueueDriverHigh = 0x094;
constexpr std::uint64_t kQueueDeviceLow = 0x0a0;
constexpr std::uint64_t kQueueDeviceHigh = 0x0a4;
constexpr std::uint64_t kSharedMemoryLengthLow = 0x0b0;
constexpr std::uint64_t kConfigGeneration = 0x0fc;
constexpr std::uint64_t kConfig = 0x100;
}  // namespace mmio

// One buffer the driver offers.
struct Segment {
  std::uint64_t address = 0;
  std::uint32_t length = 0;
  bool writable = false;
};

struct UsedElement {
  std::uint32_t id = 0;
  std::uint32_t length = 0;
};

// Where a posted block request lives in guest memory.
struct PostedRequest {
  std::uint16_t head = 0;
  std::uint64_t header_address = 0;
  std::uint64_t data_address = 0;  // of the first data buffer, if any
  std::uint64_t status_address = 0;
};

constexpr std::uint8_t kStatusUnwritten = 0xee;

// A guest driver for one virtqueue. Rings sit at fixed addresses; buffers come
// from a bump allocator above them.
class TestDriver {
 public:
  static constexpr std::uint64_t kDescriptorTable = 0x1000;
  static constexpr std::uint64_t kDriverArea = 0x2000;
  static constexpr std::uint64_t kDeviceArea = 0x3000;
  static constexpr std::uint64_t kPoolStart = 0x10000;

  TestDriver(VirtioMmioTransport& transport, FakeGuestMemory& memory, std::uint16_t queue_size = 32)
      : m_transport(transport), m_memory(memory), m_queue_size(queue_size) {}

  std::uint32_t read32(std::uint64_t offset) {
    std::uint8_t bytes[4] = {};
    m_transport.read(offset, bytes);
    std::uint32_t value = 0;
    std::memcpy(&value, bytes, 4);
    return value;
  }
  void write32(std::uint64_t offset, std::uint32_t value) {
    std::uint8_t bytes[4];
    std::memcpy(bytes, &value, 4);
    m_transport.write(offset, bytes);
  }

  std::uint64_t device_features() {
    write32(mmio::kDeviceFeaturesSelect, 1);
    std::uint64_t features = std::uint64_t{read32(mmio::kDeviceFeatures)} << 32;
    write32(mmio::kDeviceFeaturesSelect, 0);
    return features | read32(mmio::kDeviceFeatures);
  }

  // Steps 1-6 of virtio 1.2, 3.1.1; true when the device kept FEATURES_OK.
  bool negotiate(std::uint64_t features) {
    write32(mmio::kStatus, 0);
    write32(mmio::kStatus, virtio::kStatusAcknowledge);
    write32(mmio::kStatus, virtio::kStatusAcknowledge | virtio::kStatusDriver);
    static_cast<void>(device_features());
    write32(mmio::kDriverFeaturesSelect, 1);
    write32(mmio::kDriverFeatures, static_cast<std::uint32_t>(features >> 32));
    write32(mmio::kDriverFeaturesSelect, 0);
    write32(mmio::kDriverFeatures, static_cast<std::uint32_t>(features));
    write32(mmio::kStatus,
            virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
    return (read32(mmio::kStatus) & virtio::kStatusFeaturesOk) != 0;
  }

  // Queue setup, virtio 1.2, 4.2.3.2, with the rings cleared first.
  void setup_queue(std::uint16_t size) {
    m_queue_size = size;
    clear_rings();
    write32(mmio::kQueueSelect, 0);
    write32(mmio::kQueueSize, size);
    write32(mmio::kQueueDescriptorLow, static_cast<std::uint32_t>(kDescriptorTable));
    write32(mmio::kQueueDescriptorHigh, 0);
    write32(mmio::kQueueDriverLow, static_cast<std::uint32_t>(kDriverArea));
    write32(mmio::kQueueDriverHigh, 0);
    write32(mmio::kQueueDeviceLow, static_cast<std::uint32_t>(kDeviceArea));
    write32(mmio::kQueueDeviceHigh, 0);
    write32(mmio::kQueueReady, 1);
  }
  void setup_queue() { setup_queue(m_queue_size); }

  void driver_ok() { write32(mmio::kStatus, read32(mmio::kStatus) | virtio::kStatusDriverOk); }

  void initialize(std::uint64_t features) {
    ASSERT_TRUE(negotiate(features));
    setup_queue();
    driver_ok();
    ASSERT_EQ(read32(mmio::kStatus), virtio::kStatusAcknowledge | virtio::kStatusDriver |
                                         virtio::kStatusFeaturesOk | virtio::kStatusDriverOk);
  }

  void clear_rings() {
    std::vector<std::uint8_t> zeros(0x1000, 0);
    m_memory.put(kDescriptorTable, zeros);
    m_memory.put(kDriverArea, zeros);
    m_memory.put(kDeviceArea, zeros);
    m_next_descriptor = 0;
    m_available_index = 0;
  }

  std::uint64_t allocate(std::uint64_t length, std::uint64_t alignment = 16) {
    m_pool = (m_pool + alignment - 1) / alignment * alignment;
    const std::uint64_t address = m_pool;
    m_pool += length;
    return address;
  }
  std::uint64_t allocate_filled(std::uint64_t length, std::uint8_t seed) {
    const std::uint64_t address = allocate(length);
    for (std::uint64_t index = 0; index < length; ++index) {
      m_memory.put_le(address + index, (index * 13 + seed) & 0xff, 1);
    }
    return address;
  }

  void write_descriptor(std::uint16_t index, std::uint64_t address, std::uint32_t length,
                        std::uint16_t flags, std::uint16_t next) {
    write_descriptor_at(kDescriptorTable + 16ULL * index, address, length, flags, next);
  }
  void write_descriptor_at(std::uint64_t where, std::uint64_t address, std::uint32_t length,
                           std::uint16_t flags, std::uint16_t next) {
    m_memory.put_le(where, address, 8);
    m_memory.put_le(where + 8, length, 4);
    m_memory.put_le(where + 12, flags, 2);
    m_memory.put_le(where + 14, next, 2);
  }

  // Puts `head` in the next available ring slot and publishes it.
  void publish(std::uint16_t head) {
    m_memory.put_le(kDriverArea + 4 + 2ULL * (m_available_index % m_queue_size), head, 2);
    ++m_available_index;
    m_memory.put_le(kDriverArea + 2, m_available_index, 2);
  }

  std::uint16_t take_descriptor() {
    const std::uint16_t index = m_next_descriptor;
    m_next_descriptor = static_cast<std::uint16_t>((m_next_descriptor + 1) % m_queue_size);
    return index;
  }

  // A chain of direct descriptors, optionally ending in an indirect
  // descriptor for `indirect` (virtio 1.2, 2.7.5.3.2 allows both).
  std::uint16_t post(const std::vector<Segment>& direct,
                     const std::vector<Segment>& indirect = {}) {
    std::vector<std::uint16_t> indices;
    const std::size_t count = direct.size() + (indirect.empty() ? 0 : 1);
    for (std::size_t index = 0; index < count; ++index)
      indices.push_back(take_descriptor());
    for (std::size_t index = 0; index < direct.size(); ++index) {
      const bool last = index + 1 == count;
      const auto flags =
          static_cast<std::uint16_t>((direct[index].writable ? virtio::kDescriptorWrite : 0) |
                                     (last ? 0 : virtio::kDescriptorNext));
      write_descriptor(indices[index], direct[index].address, direct[index].length, flags,
                       last ? 0 : indices[index + 1]);
    }
    if (!indirect.empty()) {
      const std::uint64_t table = write_indirect_table(indirect);
      write_descriptor(indices.back(), table, static_cast<std::uint32_t>(16 * indirect.size()),
                       virtio::kDescriptorIndirect, 0);
    }
    publish(indices.front());
    return indices.front();
  }

  std::uint64_t write_indirect_table(const std::vector<Segment>& segments) {
    const std::uint64_t table = allocate(16 * segments.size());
    for (std::size_t index = 0; index < segments.size(); ++index) {
      const bool last = index + 1 == segments.size();
      const auto flags =
          static_cast<std::uint16_t>((segments[index].writable ? virtio::kDescriptorWrite : 0) |
                                     (last ? 0 : virtio::kDescriptorNext));
      write_descriptor_at(table + 16 * index, segments[index].address, segments[index].length,
                          flags, static_cast<std::uint16_t>(last ? 0 : index + 1));
    }
    return table;
  }

  // A virtio-blk request: header, `data`, then a one-byte status buffer.
  PostedRequest post_block(std::uint32_t type, std::uint64_t sector,
                           const std::vector<Segment>& data, bool indirect = false) {
    PostedRequest request;
    request.header_address = write_block_header(type, sector);
    if (!data.empty()) request.data_address = data.front().address;
    request.status_address = allocate(1, 1);
    m_memory.put_le(request.status_address, kStatusUnwritten, 1);
    std::vector<Segment> chain{{request.header_address, 16, false}};
    chain.insert(chain.end(), data.begin(), data.end());
    chain.push_back({request.status_address, 1, true});
    request.head = indirect ? post({}, chain) : post(chain);
    return request;
  }
  // A one-sector read into a new buffer (request.data_address).
  PostedRequest post_read(std::uint64_t sector = 0) {
    return post_block(virtio::kBlockRequestIn, sector, {{allocate(kSectorSize), 512, true}});
  }
  std::uint64_t write_block_header(std::uint32_t type, std::uint64_t sector) {
    const std::uint64_t header = allocate(16);
    m_memory.put_le(header, type, 4);
    m_memory.put_le(header + 4, 0, 4);
    m_memory.put_le(header + 8, sector, 8);
    return header;
  }

  void kick() { write32(mmio::kQueueNotify, 0); }

  std::uint16_t used_index() const {
    return static_cast<std::uint16_t>(m_memory.get_le(kDeviceArea + 2, 2));
  }
  UsedElement used(std::uint16_t position) const {
    const std::uint64_t element = kDeviceArea + 4 + 8ULL * (position % m_queue_size);
    return {static_cast<std::uint32_t>(m_memory.get_le(element, 4)),
            static_cast<std::uint32_t>(m_memory.get_le(element + 4, 4))};
  }
  std::uint16_t available_event() const {
    return static_cast<std::uint16_t>(m_memory.get_le(kDeviceArea + 4 + 8ULL * m_queue_size, 2));
  }
  void set_used_event(std::uint16_t value) {
    m_memory.put_le(kDriverArea + 4 + 2ULL * m_queue_size, value, 2);
  }
  void set_available_flags(std::uint16_t flags) { m_memory.put_le(kDriverArea, flags, 2); }
  void set_available_index(std::uint16_t index) {
    m_available_index = index;
    m_memory.put_le(kDriverArea + 2, index, 2);
  }

  std::uint16_t queue_size() const { return m_queue_size; }
  std::uint64_t used_ring_length() const { return 6 + 8ULL * m_queue_size; }

 private:
  VirtioMmioTransport& m_transport;
  FakeGuestMemory& m_memory;
  std::uint16_t m_queue_size;
  std::uint16_t m_next_descriptor = 0;
  std::uint16_t m_available_index = 0;
  std::uint64_t m_pool = kPoolStart;
};

// Why `outcome` (a Status or a Result) failed, or no kind if it did not.
template <typename Outcome>
std::error_code error_kind(const Outcome& outcome) {
  return outcome.ok() ? std::error_code{} : outcome.error().kind;
}

// A half-open range of guest memory a device may legitimately have written.
struct WritableRange {
  std::uint64_t address = 0;
  std::uint64_t length = 0;
};

// Asserts that every byte outside `allowed` is as in `before`.
inline ::testing::AssertionResult unchanged_except(const std::vector<std::uint8_t>& before,
                                                   const std::vector<std::uint8_t>& after,
                                                   const std::vector<WritableRange>& allowed) {
  if (before.size() != after.size()) return ::testing::AssertionFailure() << "size changed";
  for (std::size_t index = 0; index < before.size(); ++index) {
    if (before[index] == after[index]) continue;
    const bool permitted = std::any_of(allowed.begin(), allowed.end(), [&](const auto& range) {
      return index >= range.address && index - range.address < range.length;
    });
    if (!permitted) {
      return ::testing::AssertionFailure()
             << "guest byte " << std::hex << "0x" << index << " changed from 0x"
             << int{before[index]} << " to 0x" << int{after[index]};
    }
  }
  return ::testing::AssertionSuccess();
}

// What the Linux virtio_blk driver accepts from vmlab's offer.
constexpr std::uint64_t kBlockDriverFeatures =
    virtio::kFeatureVersion1 | virtio::kBlockFeatureSizeMax | virtio::kBlockFeatureSegmentMax |
    virtio::kBlockFeatureBlockSize | virtio::kBlockFeatureFlush |
    virtio::kFeatureIndirectDescriptors;

constexpr std::uint64_t kGuestMemorySize = 2 * MiB;
constexpr std::uint64_t kDiskSectors = 64;

// A virtio-blk device on a virtio-mmio transport with a driver, rebuilt by
// start() for tests that need other options.
class VirtioBlkFixture : public ::testing::Test {
 protected:
  VirtioBlkFixture() { start(); }

  void start(VirtioBlkOptions options = {}, bool read_only = false,
             std::string serial = "vmlab-test-disk") {
    m_driver.reset();
    m_transport.reset();
    m_blk.reset();
    m_disk = std::make_unique<FakeDisk>(kDiskSectors, read_only, std::move(serial));
    m_blk = std::make_unique<VirtioBlk>(*m_disk, options);
    m_irq_level = false;
    m_irq_rising_edges = 0;
    m_transport = std::make_unique<VirtioMmioTransport>(m_memory, *m_blk, [this](bool level) {
      if (level && !m_irq_level) ++m_irq_rising_edges;
      m_irq_level = level;
    });
    m_driver = std::make_unique<TestDriver>(*m_transport, m_memory);
  }

  TestDriver& driver() { return *m_driver; }
  VirtioMmioTransport& transport() { return *m_transport; }

  std::uint8_t status_byte(const PostedRequest& request) const {
    return static_cast<std::uint8_t>(m_memory.get_le(request.status_address, 1));
  }
  WritableRange used_ring() const {
    return {TestDriver::kDeviceArea, m_driver->used_ring_length()};
  }

  FakeGuestMemory m_memory{kGuestMemorySize};
  std::unique_ptr<FakeDisk> m_disk;
  std::unique_ptr<VirtioBlk> m_blk;
  std::unique_ptr<VirtioMmioTransport> m_transport;
  std::unique_ptr<TestDriver> m_driver;
  bool m_irq_level = false;
  int m_irq_rising_edges = 0;
};

}  // namespace vmlab::devices::testing
