// The virtio-mmio transport, register layout version 2 (virtio 1.2, 4.2): a
// 0x200-byte register window through which the guest's virtio_mmio driver
// negotiates features, sets up virtqueues and kicks them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <vmlab/devices/virtio_device.hpp>
#include <vmlab/devices/virtqueue.hpp>
#include <vmlab/guest_memory.hpp>
#include <vmlab/io_device.hpp>
#include <vmlab/result.hpp>

namespace vmlab::devices {

namespace virtio {

// InterruptStatus bits (virtio 1.2, 4.2.2).
constexpr std::uint32_t kInterruptUsedBuffer = 0x1;
constexpr std::uint32_t kInterruptConfigChange = 0x2;

}  // namespace virtio

// Counters the VMM and the benchmark print.
struct VirtioMmioStatistics {
  std::uint64_t register_reads = 0;  // configuration space included
  std::uint64_t register_writes = 0;
  std::uint64_t notifications = 0;       // QueueNotify writes and notify() calls
  std::uint64_t requests_completed = 0;  // used elements pushed
  // Used-buffer and configuration-change notifications sent to the driver
  // (virtio 1.2, 2.3). One sent while InterruptStatus is still non-zero
  // keeps the line asserted rather than making a new edge.
  std::uint64_t interrupts_raised = 0;
  std::uint64_t device_errors = 0;  // times DEVICE_NEEDS_RESET was set
};

// Features are negotiated as in virtio 1.2, 2.2 and 3.1.1: the device offers
// its device type's bits plus VIRTIO_F_VERSION_1 and refuses FEATURES_OK when
// the driver accepted a bit it did not offer or did not accept VERSION_1 (a
// legacy driver). Queues are served only after DRIVER_OK. A malformed chain
// sets DEVICE_NEEDS_RESET, raises a configuration-change interrupt, stops that
// queue until the driver resets the device, and is recorded in problems().
//
// Registers below 0x100 are 32 bits wide (virtio 1.2, 4.2.2.2); any other
// access to them reads 0 and is ignored on write. The configuration space at
// 0x100 accepts any width and belongs to the device type.
//
// Thread safety: as every IoDevice, called under the board's device lock;
// notify() from an ioeventfd thread must hold the same lock.
class VirtioMmioTransport final : public IoDevice {
 public:
  static constexpr std::uint64_t kWindowSize = 0x200;
  static constexpr std::uint64_t kConfigOffset = 0x100;
  static constexpr std::uint32_t kMagicValue = 0x74726976;  // "virt"
  static constexpr std::uint32_t kVersion = 2;
  static constexpr std::uint32_t kVendorId = 0x626c6d76;  // "vmlb"
  static constexpr std::size_t kProblemLimit = 16;

  // `memory` and `device` must outlive the transport. `irq` is driven high
  // while InterruptStatus is non-zero and low once InterruptACK clears it.
  VirtioMmioTransport(GuestMemoryAccess& memory, VirtioDevice& device, IrqLine irq);

  std::string_view name() const override { return m_device.name(); }
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // The driver notified queue `queue_index`: the same as writing it to
  // QueueNotify, for a VMM that receives notifications through an ioeventfd.
  void notify(std::uint32_t queue_index);

  std::uint32_t device_status() const { return m_status; }
  std::uint32_t interrupt_status() const { return m_interrupt_status; }
  bool irq_level() const { return m_irq_level; }
  std::uint64_t offered_features() const;
  // What the driver accepted; meaningful once FEATURES_OK is set.
  std::uint64_t driver_features() const { return m_driver_features; }
  const VirtioMmioStatistics& statistics() const { return m_statistics; }
  // The most recent problems, oldest first, at most kProblemLimit of them;
  // problem_count() counts every one since construction.
  const std::vector<std::string>& problems() const { return m_problems; }
  std::uint64_t problem_count() const { return m_problem_count; }
  // The kind of the error that last set DEVICE_NEEDS_RESET (a VirtqueueError,
  // a VirtioBlkError...); empty until one has.
  std::error_code last_device_error() const { return m_last_device_error; }

 private:
  // The register set of one virtqueue, selected through QueueSel.
  struct QueueState {
    std::uint32_t size = 0;  // QueueNum as written; checked when the queue is made ready
    std::uint64_t descriptor_table = 0;
    std::uint64_t driver_area = 0;
    std::uint64_t device_area = 0;
    bool broken = false;             // a malformed chain was found: not served until reset
    std::optional<Virtqueue> queue;  // present while QueueReady is 1
  };

  std::uint32_t read_register(std::uint64_t offset);
  void write_register(std::uint64_t offset, std::uint32_t value);
  void write_status(std::uint32_t value);
  void write_queue_ready(std::uint32_t value);
  QueueState* selected_queue();

  bool features_acceptable() const;
  void reset();
  void device_error(std::uint32_t queue_index, const Error& error);
  void record_problem(std::string problem);
  void raise_interrupt(std::uint32_t reason);
  void update_irq();

  GuestMemoryAccess& m_memory;
  VirtioDevice& m_device;
  IrqLine m_irq;

  std::uint32_t m_status = 0;
  std::uint32_t m_device_features_select = 0;
  std::uint32_t m_driver_features_select = 0;
  std::uint64_t m_driver_features = 0;
  bool m_driver_features_beyond_64 = false;  // a bit in DriverFeatures word 2 or higher
  std::uint32_t m_queue_select = 0;
  std::vector<QueueState> m_queues;
  std::uint32_t m_interrupt_status = 0;
  bool m_irq_level = false;

  VirtioMmioStatistics m_statistics;
  std::vector<std::string> m_problems;
  std::uint64_t m_problem_count = 0;
  std::error_code m_last_device_error;
};

}  // namespace vmlab::devices
