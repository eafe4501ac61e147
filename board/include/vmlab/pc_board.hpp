// The PC board: the devices a vmlab VM has, where they sit (board_layout.hpp)
// and how their interrupts reach the guest (interrupt_router.hpp). Each
// device model is attached by one attachment (board/src/attachments/) that
// registers it, describes it in the guest's device table and counts for it;
// the board holds the list, the buses and the device lock, and answers the
// run loop (vmm/'s Board).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmlab/board.hpp"
#include "vmlab/board_layout.hpp"
#include "vmlab/clock.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/interrupt_router.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/result.hpp"

namespace vmlab::devices {
class BlockBackend;
}  // namespace vmlab::devices

namespace vmlab::board {
class DeviceAttachment;
class IntervalTimerAttachment;
class DebugConsoleAttachment;
class ExitPortAttachment;
class GuestMemoryLink;
}  // namespace vmlab::board

namespace vmlab {

// Why the board could not be built or could not reach what a device needs.
// Errors of the core (a port range taken twice, KVM refusing its PIT) keep
// their own kinds. New kinds go last.
enum class BoardError {
  kBadConfig = 1,           // a disk without a backing store, or without the guest RAM size
  kIrqchipUnavailable,      // KVM cannot model the interrupt controller: use --irqchip vmm
  kKvmRefused,              // KVM refused the memory slot of the passthrough register window
  kHostResource,            // the host could not give the board memory or an eventfd
  kGuestMemoryNotAttached,  // a device reached guest memory before the runner attached it
  kGuestNotLoaded,          // the IOMMU is programmed from the boot info: load the guest first
};
constexpr const char* error_domain(BoardError) {
  return "board";
}

enum class IrqchipModel {
  Vmm,     // the VMM's 8259A/8254 models, interrupts injected with KVM_INTERRUPT
  Kernel,  // KVM_CREATE_IRQCHIP + KVM_CREATE_PIT2, lines raised with KVM_IRQ_LINE
};

enum class DiskModel {
  None,
  Ata,     // the emulated ATA PIO disk on the primary channel (pc::kAtaCommandPorts, IRQ 14)
  Virtio,  // virtio-blk over virtio-mmio at pc::kVirtioMmioWindow (IRQ 5)
  // The passthrough storage controller (devices/passthrough/): its register
  // window at pc::kPassthroughWindow is memory in its own KVM slot, its
  // hardware a host thread, its DMA behind an IOMMU model (IRQ 11).
  Passthrough,
};

struct PcBoardDisk {
  DiskModel model = DiskModel::None;
  devices::BlockBackend* backend = nullptr;  // owned by the caller; must outlive the board
  bool virtio_event_index = false;           // offer VIRTIO_F_EVENT_IDX
  // Take QueueNotify writes through a KVM ioeventfd served by a board thread,
  // so a notification costs no exit to user space. Only where the guest's
  // write reaches KVM as an MMIO write (hvm); without KVM_IOEVENTFD the write
  // exits as before.
  bool virtio_ioeventfd = false;
  // Passthrough: the size of guest RAM the IOMMU guards, and whether the
  // IOMMU translates (off: the device may DMA anywhere in guest RAM,
  // `--iommu off`). Who may use the device is the caller's to settle
  // (PassthroughController::claim).
  std::uint64_t guest_memory_size = 0;
  bool iommu = true;
};

struct PcBoardConfig {
  IrqchipModel irqchip = IrqchipModel::Vmm;
  PcBoardDisk disk;
  std::function<void(std::uint8_t)> console_output;    // bytes the guest sends to the UART
  std::function<void(const std::string&)> debug_line;  // each line on port 0xE9 (optional)
};

class PcBoard final : public Board {
 public:
  static Result<std::unique_ptr<PcBoard>> create(Vm& vm, PcBoardConfig config);
  ~PcBoard() override;

  IoBus& port_bus() override { return m_ports; }
  IoBus& mmio_bus() override { return m_mmio; }
  std::mutex& device_lock() override { return m_device_lock; }
  InterruptController* interrupt_controller() override { return m_interrupts.controller(); }
  std::vector<vmlab_device> device_table() const override;
  void start(std::function<void()> interrupt_raised) override;
  void stop() override;
  std::optional<std::uint32_t> exit_request() const override;
  void write_console(std::string_view text) override;
  DmaRemapping* dma_remapping() override;
  bool device_events_pending() const override;
  std::vector<Event> take_device_events(std::uint64_t now_ns) override;

  // Lines the guest wrote to the debug console: the machine-readable
  // (VMLAB-...) ones in order, then the first few others; bounded, so a guest
  // cannot make the VMM keep unbounded output.
  std::vector<std::string> debug_lines() const;
  std::uint64_t debug_lines_dropped() const;
  IrqchipModel irqchip() const { return m_config.irqchip; }
  std::uint64_t timer_ticks() const;
  std::uint64_t missed_timer_ticks() const;

  // The guest memory the virtio and passthrough devices reach. The Machine
  // creates guest RAM after the board, so the runner attaches it after
  // loading the guest and before the first run; until then a device access
  // to guest memory fails. With a passthrough device this also programs the
  // IOMMU: an identity map of the RAM regions of the memory map the guest
  // was handed (the boot info), nothing else.
  Status attach_guest_memory(GuestMemoryAccess& memory);
  // Counters of the disk model, by name ("ata.register_accesses",
  // "virtio.notifications", ...); empty without a disk.
  std::map<std::string, std::uint64_t> disk_statistics() const;
  // Counters of every device model that keeps any ("rtc.register_accesses",
  // the disk's, ...).
  std::map<std::string, std::uint64_t> device_statistics() const;
  // What the disk model refused (malformed virtio chains, DMA the IOMMU
  // blocked), oldest first.
  std::vector<std::string> device_problems() const;

 private:
  PcBoard(Vm& vm, PcBoardConfig config);
  Status wire();
  template <typename Attachment>
  Attachment* add(std::unique_ptr<Attachment> attachment);
  // The attachments that attached, in order.
  std::span<const std::unique_ptr<board::DeviceAttachment>> attached() const;

  Vm& m_vm;
  PcBoardConfig m_config;
  MonotonicClock m_clock;
  mutable std::mutex m_device_lock;                 // serializes every device model (io_device.hpp)
  std::unique_ptr<KernelIrqchip> m_kernel_irqchip;  // with IrqchipModel::Kernel
  InterruptRouter m_interrupts;
  std::unique_ptr<board::GuestMemoryLink> m_guest_memory;
  // Declared before the buses, which hold references to the models the
  // attachments own: the buses go first.
  std::vector<std::unique_ptr<board::DeviceAttachment>> m_attachments;
  std::size_t m_attached = 0;
  board::IntervalTimerAttachment* m_timer = nullptr;
  board::DebugConsoleAttachment* m_debug_console = nullptr;
  board::ExitPortAttachment* m_exit_port = nullptr;
  board::DeviceAttachment* m_disk = nullptr;  // null without a disk
  IoBus m_ports{"port bus"};
  IoBus m_mmio{"MMIO bus"};
};

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::BoardError);
