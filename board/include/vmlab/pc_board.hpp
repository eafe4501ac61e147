// The PC board: wires the emulated devices to their ISA ports and IRQ lines,
// owns the timer thread that drives the 8254, and chooses who models the
// interrupt controller (the VMM's 8259A pair, or KVM's in-kernel irqchip).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vmlab/board.hpp"
#include "vmlab/clock.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/kvm.hpp"

namespace vmlab::devices {
class Uart16550;
class Pic8259Pair;
class Pit8254;
class DebugConsole;
class ExitPort;
class BlockBackend;
class AtaDisk;
class VirtioBlk;
class VirtioMmioTransport;
class Iommu;
class PassthroughController;
}  // namespace vmlab::devices

namespace vmlab {

enum class IrqchipModel {
  Vmm,     // the VMM's 8259A/8254 models, interrupts injected with KVM_INTERRUPT
  Kernel,  // KVM_CREATE_IRQCHIP + KVM_CREATE_PIT2, lines raised with KVM_IRQ_LINE
};

enum class DiskModel {
  None,
  Ata,     // the emulated ATA PIO disk on the primary channel (ports 0x1F0/0x3F6, IRQ 14)
  Virtio,  // virtio-blk over virtio-mmio at pc::kVirtioMmioBase (IRQ 5)
  // The passthrough storage controller (devices/passthrough/): its register
  // window at pc::kPassthroughWindowBase is memory in its own KVM slot, its
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

// The standard PC assignments the guest's device table reports.
namespace pc {
constexpr std::uint16_t kUartPort = 0x3f8;
constexpr std::uint32_t kUartIrq = 4;
constexpr std::uint16_t kPicMasterPort = 0x20;
constexpr std::uint16_t kPicSlavePort = 0xa0;
constexpr std::uint16_t kPitPort = 0x40;
constexpr std::uint32_t kPitIrq = 0;
constexpr std::uint16_t kDebugConsolePort = 0xe9;
constexpr std::uint16_t kExitPort = 0xf4;
constexpr std::uint16_t kAtaCommandPort = 0x1f0;
constexpr std::uint16_t kAtaControlPort = 0x3f6;
constexpr std::uint32_t kAtaIrq = 14;
// Below 4 GiB, above the largest guest RAM (3 GiB) and clear of the full and
// para monitor region (0xd0000000, 8 MiB); where QEMU's microvm puts its
// virtio-mmio windows.
constexpr std::uint64_t kVirtioMmioBase = 0xfeb00000;
constexpr std::uint32_t kVirtioIrq = 5;  // free on the PC's ISA lines
// The passthrough controller's register window: one page just below the
// virtio window, in a KVM memory slot of its own (slots 0 to 2 are guest RAM
// and the full/para monitor's).
constexpr std::uint64_t kPassthroughWindowBase = 0xfea00000;
constexpr std::uint32_t kPassthroughWindowSlot = 3;
constexpr std::uint32_t kPassthroughIrq = 11;  // free on the PC's ISA lines
}  // namespace pc

class PcBoard final : public Board {
 public:
  static Result<std::unique_ptr<PcBoard>> create(Vm& vm, PcBoardConfig config);
  ~PcBoard() override;

  IoBus& port_bus() override { return m_ports; }
  IoBus& mmio_bus() override { return m_mmio; }
  std::mutex& device_lock() override { return m_device_lock; }
  InterruptController* interrupt_controller() override;
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
  // What the disk model refused (malformed virtio chains, DMA the IOMMU
  // blocked), oldest first.
  std::vector<std::string> device_problems() const;

 private:
  PcBoard(Vm& vm, PcBoardConfig config);
  Status wire();
  Status wire_disk();
  void timer_thread_main();
  void raise_irq(std::uint32_t line, bool level);
  void on_debug_byte(std::uint8_t byte);
  Status set_up_notify_eventfd();
  void notify_thread_main();
  Status wire_passthrough();
  Status map_guest_ram_for_devices(GuestMemoryAccess& memory);
  void raise_passthrough_interrupt();  // from the device thread

  class PitPorts;
  class PicController;
  class GuestMemoryLink;

  Vm& m_vm;
  PcBoardConfig m_config;
  MonotonicClock m_clock;
  IoBus m_ports{"port bus"};
  IoBus m_mmio{"MMIO bus"};
  mutable std::mutex m_device_lock;  // serializes every device model (io_device.hpp)

  std::unique_ptr<devices::Uart16550> m_uart;
  std::unique_ptr<devices::Pic8259Pair> m_pic;  // null with the in-kernel irqchip
  std::unique_ptr<devices::Pit8254> m_pit;      // null with the in-kernel irqchip
  std::unique_ptr<PitPorts> m_pit_ports;
  std::unique_ptr<PicController> m_controller;
  std::unique_ptr<devices::DebugConsole> m_debug_console;
  std::unique_ptr<devices::ExitPort> m_exit_port;
  std::unique_ptr<GuestMemoryLink> m_guest_memory;
  std::unique_ptr<devices::AtaDisk> m_ata;
  std::unique_ptr<devices::VirtioBlk> m_virtio_blk;
  std::unique_ptr<devices::VirtioMmioTransport> m_virtio_transport;

  // The passthrough device: the page the guest sees as its registers (mmap'ed, page-aligned), the
  // IOMMU and the controller, whose thread runs between start() and stop().
  struct PageDeleter {
    void operator()(std::uint8_t* page) const;
  };
  std::unique_ptr<std::uint8_t, PageDeleter> m_passthrough_window;
  bool m_passthrough_slot = false;  // the window's memory slot is registered
  std::unique_ptr<devices::Iommu> m_iommu;
  std::unique_ptr<devices::PassthroughController> m_passthrough;
  FileDescriptor m_passthrough_irqfd;  // valid: interrupts go through KVM_IRQFD
  std::atomic<std::uint64_t> m_passthrough_irqfd_interrupts{0};
  std::uint64_t m_iommu_faults_taken = 0;      // vCPU thread (take_device_events)
  std::vector<std::string> m_iommu_fault_log;  // guarded by m_device_lock, bounded

  // Guarded by m_device_lock.
  static constexpr std::size_t kMaximumDebugLineLength = 4096;
  static constexpr std::size_t kMaximumDebugLines = 16384;     // VMLAB-* lines
  static constexpr std::size_t kMaximumOtherDebugLines = 256;  // anything else
  static constexpr std::chrono::microseconds kMinimumTimerPeriod{200};
  static constexpr std::size_t kMaximumFaultLog = 64;
  std::string m_debug_partial_line;
  std::vector<std::string> m_debug_lines;  // the machine-readable ones
  std::vector<std::string> m_debug_other_lines;
  std::size_t m_debug_machine_lines = 0;
  std::uint64_t m_debug_lines_dropped = 0;
  // Read without the lock by the run loop after every exit: -1 until the guest
  // writes the exit port.
  std::atomic<std::int64_t> m_exit_value{-1};

  std::function<void()> m_interrupt_raised;
  // The virtio QueueNotify ioeventfd, and the eventfd that stops its thread.
  FileDescriptor m_notify_event;
  FileDescriptor m_notify_thread_stop;
  std::uint64_t m_ioeventfd_notifications = 0;  // guarded by m_device_lock
  FileDescriptor m_virtio_irqfd;                // valid: interrupts go through KVM_IRQFD
  std::uint64_t m_irqfd_interrupts = 0;         // guarded by m_device_lock
  std::thread m_notify_thread;

  std::condition_variable m_timer_wakeup;  // PIT reprogrammed, or stop
  bool m_timer_stop = false;               // guarded by m_device_lock
  std::thread m_timer_thread;
};

}  // namespace vmlab
