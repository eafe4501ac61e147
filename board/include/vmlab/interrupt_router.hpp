// How a device's interrupt reaches the guest's CPU: through the VMM's 8259A
// pair (DESIGN.md 5, --irqchip vmm) or KVM's in-kernel irqchip (--irqchip
// kernel), by a level on a line, an edge, or an irqfd that KVM turns into an
// interrupt without an exit. Every device of the board raises its
// interrupts here; nothing else knows which controller is in use.
#pragma once

#include <array>
#include <atomic>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "vmlab/board.hpp"
#include "vmlab/io_device.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/result.hpp"

namespace vmlab::devices {
class Pic8259Pair;
}

namespace vmlab {

// What the router needs of KVM's in-kernel irqchip (KVM_IRQ_LINE,
// KVM_IRQFD): a seam, so tests drive the router without /dev/kvm.
class KernelIrqchip {
 public:
  virtual ~KernelIrqchip() = default;
  virtual Status set_line(std::uint32_t line, bool level) = 0;
  virtual Status add_irqfd(int event, std::uint32_t line) = 0;
};

// The in-kernel irqchip of a VM that has one (after KVM_CREATE_IRQCHIP).
class VmIrqchip final : public KernelIrqchip {
 public:
  explicit VmIrqchip(Vm& vm) : m_vm(vm) {}
  Status set_line(std::uint32_t line, bool level) override {
    return m_vm.set_irq_line(line, level);
  }
  Status add_irqfd(int event, std::uint32_t line) override { return m_vm.add_irqfd(event, line); }

 private:
  Vm& m_vm;
};

class InterruptRouter {
 public:
  // `device_lock` is the board's (io_device.hpp); `kernel` is KVM's irqchip,
  // or nullptr when the VMM models the controller, which connect() then
  // hands over.
  InterruptRouter(std::mutex& device_lock, KernelIrqchip* kernel);
  InterruptRouter(const InterruptRouter&) = delete;
  InterruptRouter& operator=(const InterruptRouter&) = delete;

  // The VMM's 8259A pair, from the attachment that built it.
  void connect(devices::Pic8259Pair& pic);
  // What the run loop injects from: the connected 8259A pair, or nullptr
  // (KVM delivers interrupts itself).
  InterruptController* controller();

  // How the vCPU is woken when a device thread raised an interrupt it may
  // be halted waiting for (Board::start's callback; set before any device
  // thread starts).
  void set_wakeup(std::function<void()> interrupt_raised);

  // An IRQ line as a device drives it, from code that holds the device lock
  // (every device call does): the 8259A's input, or KVM_IRQ_LINE.
  IrqLine line(std::uint32_t irq);

  // With KVM's irqchip, delivers this line's rising edges through an irqfd:
  // an eventfd write KVM turns into an interrupt with no exit and no ioctl.
  // For the 8259A's edge-triggered lines only (a level cannot be held
  // through one). False when there is no kernel irqchip or KVM refuses;
  // the line then works as before.
  bool use_irqfd(std::uint32_t irq);
  bool uses_irqfd(std::uint32_t irq) const;
  // An IRQ line whose rising edges take the irqfd when the line has one.
  IrqLine edge_line(std::uint32_t irq);
  // An edge from a device thread that does not hold the device lock: the
  // irqfd, or a pulse on the line under the lock, waking the vCPU.
  void pulse_from_device_thread(std::uint32_t irq);
  // Edges that went through this line's irqfd.
  std::uint64_t irqfd_signals(std::uint32_t irq) const;

  // Runs `work` (device code that may raise interrupts) under the device
  // lock on behalf of a device thread, then wakes the vCPU if the 8259A's
  // output went from idle to pending: the vCPU may be halted in the VMM
  // waiting for exactly that. (KVM's irqchip wakes the vCPU itself.)
  template <std::invocable Work>
  void from_device_thread(Work&& work) {
    bool raised = false;
    {
      std::lock_guard lock(m_device_lock);
      raised = run_and_check(work);
    }
    if (raised) wake();
  }
  // The same for a thread that already holds the lock in `lock`; the lock
  // is let go while the vCPU is woken.
  template <std::invocable Work>
  void from_device_thread(std::unique_lock<std::mutex>& lock, Work&& work) {
    if (run_and_check(work)) {
      lock.unlock();
      wake();
      lock.lock();
    }
  }

 private:
  struct Irqfd {
    FileDescriptor event;
    std::atomic<std::uint64_t> signals{0};
  };

  void set_line(std::uint32_t irq, bool level);
  void signal(Irqfd& irqfd);
  Irqfd* irqfd(std::uint32_t irq);
  bool pending() const;
  void wake();
  template <typename Work>
  bool run_and_check(Work& work) {
    const bool was_pending = pending();
    work();
    return !was_pending && pending();
  }

  std::mutex& m_device_lock;
  KernelIrqchip* m_kernel;
  devices::Pic8259Pair* m_pic = nullptr;
  class PicController;
  std::function<void()> m_wakeup;
  // Written before the device threads start, read-only after.
  std::array<Irqfd, 16> m_irqfds{};
  std::unique_ptr<InterruptController> m_controller;
};

}  // namespace vmlab
