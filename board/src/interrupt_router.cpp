#include "vmlab/interrupt_router.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include "vmlab/devices/pic8259.hpp"

namespace vmlab {

// The 8259A pair as the CPU sees it: the INTR pin and the INTA cycle.
class InterruptRouter::PicController final : public InterruptController {
 public:
  explicit PicController(devices::Pic8259Pair& pic) : m_pic(pic) {}
  bool interrupt_pending() const override { return m_pic.interrupt_pending(); }
  std::uint8_t acknowledge() override { return m_pic.acknowledge(); }

 private:
  devices::Pic8259Pair& m_pic;
};

InterruptRouter::InterruptRouter(std::mutex& device_lock, KernelIrqchip* kernel)
    : m_device_lock(device_lock), m_kernel(kernel) {}

void InterruptRouter::connect(devices::Pic8259Pair& pic) {
  m_pic = &pic;
  m_controller = std::make_unique<PicController>(pic);
}

InterruptController* InterruptRouter::controller() {
  return m_controller.get();
}

void InterruptRouter::set_wakeup(std::function<void()> interrupt_raised) {
  m_wakeup = std::move(interrupt_raised);
}

IrqLine InterruptRouter::line(std::uint32_t irq) {
  return [this, irq](bool level) { set_line(irq, level); };
}

void InterruptRouter::set_line(std::uint32_t irq, bool level) {
  if (m_pic != nullptr) {
    m_pic->set_irq(irq, level);
  } else if (m_kernel != nullptr) {
    // KVM_IRQ_LINE cannot fail for a valid ISA line once the irqchip exists;
    // there is nobody to tell from inside a device callback if it did.
    (void)m_kernel->set_line(irq, level);
  }
}

bool InterruptRouter::use_irqfd(std::uint32_t irq) {
  if (m_kernel == nullptr || irq >= m_irqfds.size()) return false;
  Irqfd& irqfd = m_irqfds[irq];
  if (irqfd.event.valid()) return true;
  FileDescriptor event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event.valid() || !m_kernel->add_irqfd(event.get(), irq)) return false;
  irqfd.event = std::move(event);
  return true;
}

bool InterruptRouter::uses_irqfd(std::uint32_t irq) const {
  return irq < m_irqfds.size() && m_irqfds[irq].event.valid();
}

InterruptRouter::Irqfd* InterruptRouter::irqfd(std::uint32_t irq) {
  return uses_irqfd(irq) ? &m_irqfds[irq] : nullptr;
}

void InterruptRouter::signal(Irqfd& irqfd) {
  const std::uint64_t one = 1;
  // A full eventfd counter still means "pending": nothing is lost.
  (void)!::write(irqfd.event.get(), &one, sizeof one);
  irqfd.signals.fetch_add(1, std::memory_order_relaxed);
}

IrqLine InterruptRouter::edge_line(std::uint32_t irq) {
  return [this, irq](bool level) {
    if (Irqfd* edge = irqfd(irq)) {
      if (level) signal(*edge);
    } else {
      set_line(irq, level);
    }
  };
}

void InterruptRouter::pulse_from_device_thread(std::uint32_t irq) {
  if (Irqfd* edge = irqfd(irq)) {
    signal(*edge);
    return;
  }
  // An edge: the 8259A latches it, and the line is free for the next one.
  from_device_thread([this, irq] {
    set_line(irq, true);
    set_line(irq, false);
  });
}

std::uint64_t InterruptRouter::irqfd_signals(std::uint32_t irq) const {
  return irq < m_irqfds.size() ? m_irqfds[irq].signals.load(std::memory_order_relaxed) : 0;
}

bool InterruptRouter::pending() const {
  return m_pic != nullptr && m_pic->interrupt_pending();
}

void InterruptRouter::wake() {
  if (m_wakeup) m_wakeup();
}

}  // namespace vmlab
