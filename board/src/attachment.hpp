// One attachment per device model: it builds the model, registers it on the
// buses at the addresses board_layout.hpp gives it, connects its interrupt
// through the router, owns its threads, and reports its device-table
// entries, counters and problems. The board holds a list of them
// (PcBoard::wire) and knows no model. A new device is its attachment file in
// attachments/ (and in board/CMakeLists.txt), its factory's declaration at
// the end of this file, one line in that list, and its ports, addresses and
// IRQ line in board_layout.hpp.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/abi/boot_info.hpp"
#include "vmlab/board_layout.hpp"
#include "vmlab/bus.hpp"
#include "vmlab/clock.hpp"
#include "vmlab/devices/block_backend.hpp"
#include "vmlab/dma_remapping.hpp"
#include "vmlab/events.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/interrupt_router.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/pc_board.hpp"

namespace vmlab::board {

// Counters as `vmlab run` shows them: "<device>.<counter>".
class Statistics {
 public:
  class Group {
   public:
    void add(std::string_view counter, std::uint64_t value) {
      m_values[m_device + "." + std::string(counter)] = value;
    }

   private:
    friend class Statistics;
    Group(std::map<std::string, std::uint64_t>& values, std::string_view device)
        : m_values(values), m_device(device) {}
    std::map<std::string, std::uint64_t>& m_values;
    std::string m_device;
  };

  explicit Statistics(std::map<std::string, std::uint64_t>& values) : m_values(values) {}
  Group group(std::string_view device) { return Group(m_values, device); }

 private:
  std::map<std::string, std::uint64_t>& m_values;
};

// What an attachment attaches to. Everything here belongs to the board and
// outlives the attachment.
struct AttachmentContext {
  Vm& vm;
  const PcBoardConfig& config;
  IoBus& ports;
  IoBus& mmio;
  std::mutex& device_lock;  // serializes every device model (io_device.hpp)
  InterruptRouter& interrupts;
  const Clock& clock;  // monotonic: the models' timers
  // Guest RAM as the devices reach it: fails until the runner attaches the
  // Machine's memory (PcBoard::attach_guest_memory).
  GuestMemoryAccess& guest_memory;
};

class DeviceAttachment {
 public:
  virtual ~DeviceAttachment() = default;
  // Builds the model and registers it: once, in the board's order, before
  // the vCPU exists (KVM_CREATE_IRQCHIP must precede it).
  virtual Status attach(const AttachmentContext& context) = 0;
  // Its entries in the guest's device table (boot_info, DESIGN.md 3).
  virtual void describe(std::vector<vmlab_device>& table) const = 0;
  // Called with the device lock held.
  virtual void add_statistics(Statistics& /*statistics*/) const {}
  virtual void add_problems(std::vector<std::string>& /*problems*/) const {}
  // Guest RAM exists now and the guest is loaded (device lock held).
  virtual Status guest_memory_attached(GuestMemoryAccess& /*memory*/) { return {}; }
  // The model's threads run between start() and stop(); stop() also
  // flushes what the model buffers for the host (a disk's writes).
  virtual void start() {}
  virtual void stop() {}
  // A DMA-capable model's IOMMU, and the events its own threads produce
  // (Board::dma_remapping, Board::take_device_events).
  virtual DmaRemapping* dma_remapping() { return nullptr; }
  virtual bool events_pending() const { return false; }
  virtual void take_events(std::uint64_t /*now_ns*/, std::vector<Event>& /*events*/) {}
};

// The three whose state the host reads back beyond the common interface.
class IntervalTimerAttachment : public DeviceAttachment {
 public:
  virtual std::uint64_t ticks() const = 0;         // device lock held
  virtual std::uint64_t missed_ticks() const = 0;  // device lock held
};

class DebugConsoleAttachment : public DeviceAttachment {
 public:
  // The machine-readable (VMLAB-...) lines in order, then the first few
  // others; device lock held.
  virtual std::vector<std::string> lines() const = 0;
  virtual std::uint64_t lines_dropped() const = 0;
};

class ExitPortAttachment : public DeviceAttachment {
 public:
  // With or without the device lock: the run loop asks after every exit.
  virtual std::optional<std::uint32_t> exit_request() const = 0;
};

// Registers `device` on the port bus at `range`, where board_layout.hpp puts it.
inline Status add_ports(const AttachmentContext& context, pc::PortRange range, IoDevice& device) {
  return context.ports.add({range.base, range.count}, device);
}

// The device-table entry of a model on `range` of the port bus, or of the
// guest-physical address space; `irq` is its ISA line or VMLAB_NO_IRQ.
inline vmlab_device port_entry(std::uint32_t kind, std::uint32_t irq, pc::PortRange range) {
  return {kind, irq, range.base, range.count, 0, 0};
}
inline vmlab_device mmio_entry(std::uint32_t kind, std::uint32_t irq, pc::AddressRange range) {
  return {kind, irq, range.base, range.size, VMLAB_DEVICE_FLAG_MMIO, 0};
}

// An attachment whose model sits on one port range with one device-table
// entry (the UART, the RTC, the debug console, the exit port): it registers
// what build() makes at `ports` (from board_layout.hpp) and describes it as
// a `kind` device on ISA line `irq`. `Interface` is DeviceAttachment or one
// of the interfaces above.
template <typename Model, typename Interface = DeviceAttachment>
class PortRangeAttachment : public Interface {
 public:
  PortRangeAttachment(std::uint32_t kind, std::uint32_t irq, pc::PortRange ports)
      : m_kind(kind), m_irq(irq), m_ports(ports) {}

  Status attach(const AttachmentContext& context) final {
    m_model = build(context);
    return add_ports(context, m_ports, *m_model);
  }
  void describe(std::vector<vmlab_device>& table) const final {
    table.push_back(port_entry(m_kind, m_irq, m_ports));
  }

 protected:
  virtual std::unique_ptr<Model> build(const AttachmentContext& context) = 0;
  const Model& model() const { return *m_model; }
  std::uint32_t irq() const { return m_irq; }

 private:
  std::uint32_t m_kind;
  std::uint32_t m_irq;
  pc::PortRange m_ports;
  std::unique_ptr<Model> m_model;
};

// A disk model's attachment (ATA, virtio-blk, passthrough): it keeps what
// the model needs of the board, and its stop() ends with the shutdown flush
// (DESIGN.md 6, "Disk backing"): what the guest wrote reaches the file even
// if it never sent a flush command, after the model's own threads stopped.
class DiskAttachment : public DeviceAttachment {
 public:
  Status attach(const AttachmentContext& context) final {
    m_device_lock = &context.device_lock;
    m_interrupts = &context.interrupts;
    m_backend = context.config.disk.backend;
    return attach_disk(context);
  }
  void stop() final {
    stop_model();
    if (m_backend == nullptr || m_backend->read_only()) return;
    std::lock_guard lock(*m_device_lock);
    (void)m_backend->flush();
  }

 protected:
  virtual Status attach_disk(const AttachmentContext& context) = 0;
  // Stops the model's own threads, before the flush.
  virtual void stop_model() {}
  devices::BlockBackend& backend() const { return *m_backend; }
  std::mutex& device_lock() const { return *m_device_lock; }
  InterruptRouter& interrupts() const { return *m_interrupts; }

 private:
  std::mutex* m_device_lock = nullptr;
  InterruptRouter* m_interrupts = nullptr;
  devices::BlockBackend* m_backend = nullptr;  // PcBoard::wire checked it is there
};

// One per model, each in attachments/<model>.cpp.
std::unique_ptr<DeviceAttachment> make_uart_attachment();
std::unique_ptr<DeviceAttachment> make_pic_attachment();
std::unique_ptr<IntervalTimerAttachment> make_pit_attachment();
std::unique_ptr<DebugConsoleAttachment> make_debug_console_attachment();
std::unique_ptr<ExitPortAttachment> make_exit_port_attachment();
std::unique_ptr<DeviceAttachment> make_rtc_attachment();
std::unique_ptr<DeviceAttachment> make_ata_attachment();
std::unique_ptr<DeviceAttachment> make_virtio_blk_attachment();
std::unique_ptr<DeviceAttachment> make_passthrough_attachment();

}  // namespace vmlab::board
