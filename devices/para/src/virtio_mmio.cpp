#include <vmlab/devices/virtio_mmio.hpp>

#include <utility>

#include <vmlab/format.hpp>
#include <vmlab/little_endian.hpp>

namespace vmlab::devices {
namespace {

// Register offsets, spelled as in the table of virtio 1.2, 4.2.2 so that the
// two can be read side by side.
enum class Register : std::uint64_t {
  MagicValue = 0x000,
  Version = 0x004,
  DeviceID = 0x008,
  VendorID = 0x00c,
  DeviceFeatures = 0x010,
  DeviceFeaturesSel = 0x014,
  DriverFeatures = 0x020,
  DriverFeaturesSel = 0x024,
  QueueSel = 0x030,
  QueueNumMax = 0x034,
  QueueNum = 0x038,
  QueueReady = 0x044,
  QueueNotify = 0x050,
  InterruptStatus = 0x060,
  InterruptACK = 0x064,
  Status = 0x070,
  QueueDescLow = 0x080,
  QueueDescHigh = 0x084,
  QueueDriverLow = 0x090,
  QueueDriverHigh = 0x094,
  QueueDeviceLow = 0x0a0,
  QueueDeviceHigh = 0x0a4,
  SHMSel = 0x0ac,
  SHMLenLow = 0x0b0,
  SHMLenHigh = 0x0b4,
  SHMBaseLow = 0x0b8,
  SHMBaseHigh = 0x0bc,
  QueueReset = 0x0c0,
  ConfigGeneration = 0x0fc,
};

constexpr std::size_t kRegisterWidth = 4;

std::uint32_t low_half(std::uint64_t value) {
  return static_cast<std::uint32_t>(value);
}
std::uint32_t high_half(std::uint64_t value) {
  return static_cast<std::uint32_t>(value >> 32);
}
std::uint64_t with_low_half(std::uint64_t value, std::uint32_t half) {
  return (value & 0xffffffff00000000ULL) | half;
}
std::uint64_t with_high_half(std::uint64_t value, std::uint32_t half) {
  return (value & 0xffffffffULL) | (std::uint64_t{half} << 32);
}

// QueueDesc, QueueDriver and QueueDevice: each a 64-bit address written as a
// Low and a High register. `Queue` is the transport's QueueState.
template <typename Queue>
void write_queue_address(Queue& queue, Register half, std::uint32_t value) {
  std::uint64_t& address = half < Register::QueueDriverLow   ? queue.descriptor_table
                           : half < Register::QueueDeviceLow ? queue.driver_area
                                                             : queue.device_area;
  const bool high = half == Register::QueueDescHigh || half == Register::QueueDriverHigh ||
                    half == Register::QueueDeviceHigh;
  address = high ? with_high_half(address, value) : with_low_half(address, value);
}

}  // namespace

VirtioMmioTransport::VirtioMmioTransport(GuestMemoryAccess& memory, VirtioDevice& device,
                                         IrqLine irq)
    : m_memory(memory), m_device(device), m_irq(std::move(irq)) {
  m_queues.resize(m_device.queue_count());
  reset();
}

std::uint64_t VirtioMmioTransport::offered_features() const {
  return m_device.features() | virtio::kFeatureVersion1;
}

void VirtioMmioTransport::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  ++m_statistics.register_reads;
  if (offset >= kConfigOffset) {
    m_device.read_config(offset - kConfigOffset, data);
    return;
  }
  if (data.size() != kRegisterWidth || offset % kRegisterWidth != 0) return;
  // The register window is little-endian (virtio 1.2, 4.2.2).
  store_little_endian(data, read_register(offset));
}

void VirtioMmioTransport::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  ++m_statistics.register_writes;
  if (offset >= kConfigOffset) {
    m_device.write_config(offset - kConfigOffset, data);
    return;
  }
  if (data.size() != kRegisterWidth || offset % kRegisterWidth != 0) return;
  write_register(offset, static_cast<std::uint32_t>(load_little_endian(data)));
}

VirtioMmioTransport::QueueState* VirtioMmioTransport::selected_queue() {
  return m_queue_select < m_queues.size() ? &m_queues[m_queue_select] : nullptr;
}

std::uint32_t VirtioMmioTransport::read_register(std::uint64_t offset) {
  QueueState* queue = selected_queue();
  switch (static_cast<Register>(offset)) {
    case Register::MagicValue:
      return kMagicValue;
    case Register::Version:
      return kVersion;
    case Register::DeviceID:
      return m_device.device_id();
    case Register::VendorID:
      return kVendorId;
    case Register::DeviceFeatures:
      if (m_device_features_select == 0) return low_half(offered_features());
      if (m_device_features_select == 1) return high_half(offered_features());
      return 0;
    case Register::QueueNumMax:
      // 0 says the selected queue does not exist (virtio 1.2, 4.2.2).
      return queue != nullptr
                 ? m_device.queue_size_maximum(static_cast<std::uint16_t>(m_queue_select))
                 : 0;
    case Register::QueueReady:
      return queue != nullptr && queue->queue.has_value() ? 1 : 0;
    case Register::InterruptStatus:
      return m_interrupt_status;
    case Register::Status:
      return m_status;
    case Register::SHMLenLow:
    case Register::SHMLenHigh:
      // No shared memory regions: every region reads as length -1 (virtio
      // 1.2, 4.2.2).
      return 0xffffffff;
    case Register::ConfigGeneration:  // vmlab's configuration spaces never change
    // The rest are write-only.
    case Register::DeviceFeaturesSel:
    case Register::DriverFeatures:
    case Register::DriverFeaturesSel:
    case Register::QueueSel:
    case Register::QueueNum:
    case Register::QueueNotify:
    case Register::InterruptACK:
    case Register::QueueDescLow:
    case Register::QueueDescHigh:
    case Register::QueueDriverLow:
    case Register::QueueDriverHigh:
    case Register::QueueDeviceLow:
    case Register::QueueDeviceHigh:
    case Register::SHMSel:
    case Register::SHMBaseLow:
    case Register::SHMBaseHigh:
    case Register::QueueReset:  // exists only with VIRTIO_F_RING_RESET, never offered
      return 0;
  }
  return 0;
}

void VirtioMmioTransport::write_register(std::uint64_t offset, std::uint32_t value) {
  QueueState* queue = selected_queue();
  // The driver sets a queue up before making it ready and leaves it alone
  // while it is (virtio 1.2, 4.2.3.2).
  const bool queue_writable = queue != nullptr && !queue->queue.has_value();
  switch (static_cast<Register>(offset)) {
    case Register::DeviceFeaturesSel:
      m_device_features_select = value;
      return;
    case Register::DriverFeatures:
      // Features are fixed once the device accepted them (virtio 1.2, 3.1.1).
      if ((m_status & virtio::kStatusFeaturesOk) != 0) return;
      if (m_driver_features_select == 0) {
        m_driver_features = with_low_half(m_driver_features, value);
      } else if (m_driver_features_select == 1) {
        m_driver_features = with_high_half(m_driver_features, value);
      } else if (value != 0) {
        m_driver_features_beyond_64 = true;
      }
      return;
    case Register::DriverFeaturesSel:
      m_driver_features_select = value;
      return;
    case Register::QueueSel:
      m_queue_select = value;
      return;
    case Register::QueueNum:
      if (queue_writable) queue->size = value;
      return;
    case Register::QueueReady:
      write_queue_ready(value);
      return;
    case Register::QueueNotify:
      notify(value);
      return;
    case Register::InterruptACK:
      m_interrupt_status &= ~value;
      update_irq();
      return;
    case Register::Status:
      write_status(value);
      return;
    case Register::QueueDescLow:
    case Register::QueueDescHigh:
    case Register::QueueDriverLow:
    case Register::QueueDriverHigh:
    case Register::QueueDeviceLow:
    case Register::QueueDeviceHigh:
      if (queue_writable) write_queue_address(*queue, static_cast<Register>(offset), value);
      return;
    case Register::MagicValue:
    case Register::Version:
    case Register::DeviceID:
    case Register::VendorID:
    case Register::DeviceFeatures:
    case Register::QueueNumMax:
    case Register::InterruptStatus:
    case Register::SHMSel:
    case Register::SHMLenLow:
    case Register::SHMLenHigh:
    case Register::SHMBaseLow:
    case Register::SHMBaseHigh:
    case Register::QueueReset:
    case Register::ConfigGeneration:
      return;
  }
}

bool VirtioMmioTransport::features_acceptable() const {
  return !m_driver_features_beyond_64 && (m_driver_features & ~offered_features()) == 0 &&
         (m_driver_features & virtio::kFeatureVersion1) != 0;
}

void VirtioMmioTransport::write_status(std::uint32_t value) {
  if (value == 0) {
    reset();
    return;
  }
  // The driver only ever adds bits until it resets the device (virtio 1.2,
  // 2.1.1), and DEVICE_NEEDS_RESET is the device's alone to set.
  std::uint32_t requested = value & ~virtio::kStatusDeviceNeedsReset;
  const std::uint32_t added = requested & ~m_status;
  if ((added & virtio::kStatusFeaturesOk) != 0 && !features_acceptable()) {
    // Refusing FEATURES_OK is how a device rejects a feature set (virtio
    // 1.2, 2.2.2); the driver reads Status back and sees it clear.
    requested &= ~virtio::kStatusFeaturesOk;
    if ((m_driver_features & virtio::kFeatureVersion1) == 0) {
      record_problem(
          "FEATURES_OK refused: the driver did not accept VIRTIO_F_VERSION_1 "
          "(a legacy driver; vmlab offers modern devices only, virtio 1.2, 6)");
    } else {
      record_problem("FEATURES_OK refused: the driver accepted features " +
                     hex(m_driver_features & ~offered_features()) +
                     " the device does not offer (virtio 1.2, 2.2.2)" +
                     (m_driver_features_beyond_64 ? " and bits above 63" : ""));
    }
  }
  if ((added & virtio::kStatusDriverOk) != 0 &&
      ((m_status | requested) & virtio::kStatusFeaturesOk) == 0) {
    requested &= ~virtio::kStatusDriverOk;
    record_problem("DRIVER_OK ignored: FEATURES_OK is not set (virtio 1.2, 3.1.1)");
  }
  if ((requested & added & virtio::kStatusFeaturesOk) != 0) {
    m_device.accept_features(m_driver_features);
  }
  m_status |= requested;
}

void VirtioMmioTransport::write_queue_ready(std::uint32_t value) {
  QueueState* queue = selected_queue();
  if (queue == nullptr) return;
  if (value == 0) {
    queue->queue.reset();
    return;
  }
  if (queue->queue.has_value() || queue->broken) return;
  if (queue->size > virtio::kMaximumQueueSize) {
    device_error(m_queue_select,
                 Error{VirtqueueError::kBadLayout, "QueueNum " + std::to_string(queue->size) +
                                                       " is larger than the largest queue size, " +
                                                       std::to_string(virtio::kMaximumQueueSize)});
    return;
  }
  const auto queue_index = static_cast<std::uint16_t>(m_queue_select);
  const VirtqueueLayout layout{
      static_cast<std::uint16_t>(queue->size), GuestPhysAddr(queue->descriptor_table),
      GuestPhysAddr(queue->driver_area), GuestPhysAddr(queue->device_area)};
  const VirtqueueFeatures features{
      (m_driver_features & virtio::kFeatureIndirectDescriptors) != 0,
      (m_driver_features & virtio::kFeatureEventIndex) != 0,
  };
  auto created =
      Virtqueue::create(m_memory, layout, m_device.queue_size_maximum(queue_index), features);
  if (!created) {
    device_error(m_queue_select, created.error());
    return;
  }
  queue->queue.emplace(*created);
}

void VirtioMmioTransport::notify(std::uint32_t queue_index) {
  ++m_statistics.notifications;
  if (queue_index >= m_queues.size()) return;
  // No buffers are used before DRIVER_OK (virtio 1.2, 3.1.1), nor after the
  // driver gave up on the device.
  if ((m_status & virtio::kStatusDriverOk) == 0 || (m_status & virtio::kStatusFailed) != 0) {
    return;
  }
  QueueState& state = m_queues[queue_index];
  if (!state.queue.has_value() || state.broken) return;
  Virtqueue& queue = *state.queue;

  const std::uint64_t pushed_before = queue.used_pushed();
  auto processed = m_device.process_queue(static_cast<std::uint16_t>(queue_index), queue);
  m_statistics.requests_completed += queue.used_pushed() - pushed_before;
  // One interrupt decision for the whole batch, even one cut short by a
  // malformed chain: the requests completed before it still need signalling.
  auto interrupt = queue.needs_interrupt();
  if (interrupt && *interrupt) raise_interrupt(virtio::kInterruptUsedBuffer);
  if (!processed) {
    device_error(queue_index, processed.error());
  } else if (!interrupt) {
    device_error(queue_index, interrupt.error());
  }
}

void VirtioMmioTransport::reset() {
  m_device.reset();
  m_status = 0;
  m_device_features_select = 0;
  m_driver_features_select = 0;
  m_driver_features = 0;
  m_driver_features_beyond_64 = false;
  m_queue_select = 0;
  for (std::size_t index = 0; index < m_queues.size(); ++index) {
    m_queues[index] = QueueState{};
    m_queues[index].size = m_device.queue_size_maximum(static_cast<std::uint16_t>(index));
  }
  m_interrupt_status = 0;
  update_irq();
}

void VirtioMmioTransport::device_error(std::uint32_t queue_index, const Error& error) {
  record_problem("queue " + std::to_string(queue_index) + ": " + error.message +
                 "; DEVICE_NEEDS_RESET set");
  m_last_device_error = error.kind;
  if (queue_index < m_queues.size()) m_queues[queue_index].broken = true;
  ++m_statistics.device_errors;
  m_status |= virtio::kStatusDeviceNeedsReset;
  // virtio 1.2, 2.1.2: after setting DEVICE_NEEDS_RESET on a live device,
  // send a configuration change notification.
  if ((m_status & virtio::kStatusDriverOk) != 0) raise_interrupt(virtio::kInterruptConfigChange);
}

void VirtioMmioTransport::record_problem(std::string problem) {
  if (m_problems.size() == kProblemLimit) m_problems.erase(m_problems.begin());
  m_problems.push_back(std::string(m_device.name()) + ": " + std::move(problem));
  ++m_problem_count;
}

void VirtioMmioTransport::raise_interrupt(std::uint32_t reason) {
  m_interrupt_status |= reason;
  ++m_statistics.interrupts_raised;
  update_irq();
}

void VirtioMmioTransport::update_irq() {
  const bool level = m_interrupt_status != 0;
  if (level == m_irq_level) return;
  m_irq_level = level;
  if (m_irq) m_irq(level);
}

}  // namespace vmlab::devices
