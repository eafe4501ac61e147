// What the run loop needs from a board: the buses, the lock that serializes
// device models, the VMM-modelled interrupt controller (if any), and the
// board's own stop request (the guest wrote to the exit port). The concrete
// PC board in board/ wires the device models; the core knows none of them.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "vmlab/abi/boot_info.hpp"
#include "vmlab/bus.hpp"
#include "vmlab/dma_remapping.hpp"
#include "vmlab/events.hpp"

namespace vmlab {

// The interrupt controller as the CPU sees it (the INTR pin and the INTA
// cycle). Callers hold the board's device lock.
class InterruptController {
 public:
  virtual ~InterruptController() = default;
  virtual bool interrupt_pending() const = 0;
  virtual std::uint8_t acknowledge() = 0;
};

class Board {
 public:
  virtual ~Board() = default;
  virtual IoBus& port_bus() = 0;
  virtual IoBus& mmio_bus() = 0;
  virtual std::mutex& device_lock() = 0;
  // nullptr when KVM's in-kernel irqchip delivers interrupts.
  virtual InterruptController* interrupt_controller() = 0;
  virtual std::vector<vmlab_device> device_table() const = 0;
  // Starts device threads (timers). `interrupt_raised` is called, without the
  // device lock, from a device thread when the interrupt controller's output
  // may have risen, so the run loop can wake the vCPU.
  virtual void start(std::function<void()> interrupt_raised) = 0;
  virtual void stop() = 0;
  // The value the guest wrote to the exit port, once it has. Callable with or
  // without the device lock held.
  virtual std::optional<std::uint32_t> exit_request() const = 0;
  // Text for the human console that did not come through a device (a
  // paravirtual kernel's console hypercall).
  virtual void write_console(std::string_view text) = 0;
  // The IOMMU in front of a passthrough device; nullptr without one.
  virtual DmaRemapping* dma_remapping() { return nullptr; }
  // Events the devices' own threads produced since the last call (IOMMU
  // faults), for the vCPU thread to record. `pending` is a cheap check the
  // run loop makes after every exit.
  virtual bool device_events_pending() const { return false; }
  virtual std::vector<Event> take_device_events(std::uint64_t now_ns) {
    (void)now_ns;
    return {};
  }
};

}  // namespace vmlab
