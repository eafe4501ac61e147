#include "vmlab/pc_board.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "vmlab/devices/ata.hpp"
#include "vmlab/devices/block_backend.hpp"
#include "vmlab/devices/debug_console.hpp"
#include "vmlab/devices/exit_port.hpp"
#include "vmlab/devices/iommu.hpp"
#include "vmlab/devices/passthrough_controller.hpp"
#include "vmlab/devices/pic8259.hpp"
#include "vmlab/devices/pit8254.hpp"
#include "vmlab/devices/uart16550.hpp"
#include "vmlab/devices/virtio_blk.hpp"
#include "vmlab/devices/virtio_mmio.hpp"
#include "vmlab/format.hpp"

namespace vmlab {

// Forwards the 8254's ports and wakes the timer thread after every write, so
// a newly programmed period takes effect at once.
class PcBoard::PitPorts final : public IoDevice {
 public:
  PitPorts(devices::Pit8254& pit, std::condition_variable& wakeup) : m_pit(pit), m_wakeup(wakeup) {}
  std::string_view name() const override { return "i8254 PIT"; }
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override {
    m_pit.read(offset, data);
  }
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    m_pit.write(offset, data);
    m_wakeup.notify_all();
  }

 private:
  devices::Pit8254& m_pit;
  std::condition_variable& m_wakeup;
};

class PcBoard::PicController final : public InterruptController {
 public:
  explicit PicController(devices::Pic8259Pair& pic) : m_pic(pic) {}
  bool interrupt_pending() const override { return m_pic.interrupt_pending(); }
  std::uint8_t acknowledge() override { return m_pic.acknowledge(); }

 private:
  devices::Pic8259Pair& m_pic;
};

// Guest RAM as the virtio device sees it: the Machine's memory once the
// runner attaches it (the board is built before guest RAM exists).
class PcBoard::GuestMemoryLink final : public GuestMemoryAccess {
 public:
  void attach(GuestMemoryAccess& memory) { m_memory = &memory; }
  std::uint64_t size() const override { return m_memory ? m_memory->size() : 0; }
  Status read(GuestPhysAddr address, std::span<std::uint8_t> out) const override {
    if (!m_memory) return Error{"guest memory is not attached to the board"};
    return m_memory->read(address, out);
  }
  Status write(GuestPhysAddr address, std::span<const std::uint8_t> in) override {
    if (!m_memory) return Error{"guest memory is not attached to the board"};
    return m_memory->write(address, in);
  }

 private:
  GuestMemoryAccess* m_memory = nullptr;
};

void PcBoard::PageDeleter::operator()(std::uint8_t* page) const {
  munmap(page, VMLAB_PT_WINDOW_SIZE);
}

PcBoard::PcBoard(Vm& vm, PcBoardConfig config) : m_vm(vm), m_config(std::move(config)) {}

PcBoard::~PcBoard() {
  stop();
  // KVM lets go of the window before the page is unmapped.
  if (m_passthrough_slot) {
    (void)m_vm.set_user_memory_region(pc::kPassthroughWindowSlot, pc::kPassthroughWindowBase, 0,
                                      nullptr);
  }
}

InterruptController* PcBoard::interrupt_controller() {
  return m_controller.get();
}

Result<std::unique_ptr<PcBoard>> PcBoard::create(Vm& vm, PcBoardConfig config) {
  std::unique_ptr<PcBoard> board(new PcBoard(vm, std::move(config)));
  if (auto status = board->wire(); !status) return status.error();
  return board;
}

void PcBoard::raise_irq(std::uint32_t line, bool level) {
  // Called from device code with the device lock held.
  if (m_pic) {
    m_pic->set_irq(line, level);
  } else {
    // KVM_IRQ_LINE cannot fail for a valid ISA line once the irqchip exists;
    // there is nobody to tell from inside a device callback if it did.
    (void)m_vm.set_irq_line(line, level);
  }
}

void PcBoard::on_debug_byte(std::uint8_t byte) {
  if (byte != '\n') {
    // A guest cannot grow a line, or the list of lines, without bound.
    if (m_debug_partial_line.size() < kMaximumDebugLineLength) {
      m_debug_partial_line.push_back(static_cast<char>(byte));
    }
    return;
  }
  if (m_config.debug_line) m_config.debug_line(m_debug_partial_line);
  // Result lines (VMLAB-...) are what the host parses: keep those, up to a
  // limit; of the rest keep only a short tail for error messages.
  const bool machine_readable = m_debug_partial_line.rfind("VMLAB-", 0) == 0;
  if (machine_readable && m_debug_machine_lines < kMaximumDebugLines) {
    ++m_debug_machine_lines;
    m_debug_lines.push_back(std::move(m_debug_partial_line));
  } else if (!machine_readable && m_debug_other_lines.size() < kMaximumOtherDebugLines) {
    m_debug_other_lines.push_back(std::move(m_debug_partial_line));
  } else {
    ++m_debug_lines_dropped;
  }
  m_debug_partial_line.clear();
}

Status PcBoard::wire() {
  if (m_config.irqchip == IrqchipModel::Kernel) {
    if (auto status = m_vm.create_irqchip(); !status) {
      return Error{status.error().message +
                   " (this KVM cannot model the interrupt controller; "
                   "use --irqchip vmm)"};
    }
    if (auto status = m_vm.create_pit2(); !status) return status;
  } else {
    m_pic = std::make_unique<devices::Pic8259Pair>();
    m_pit = std::make_unique<devices::Pit8254>(
        m_clock, [this](bool level) { m_pic->set_irq(pc::kPitIrq, level); });
    m_pit_ports = std::make_unique<PitPorts>(*m_pit, m_timer_wakeup);
    m_controller = std::make_unique<PicController>(*m_pic);
    if (auto status = m_ports.add({pc::kPicMasterPort, 2}, m_pic->master_ports()); !status) {
      return status;
    }
    if (auto status = m_ports.add({pc::kPicSlavePort, 2}, m_pic->slave_ports()); !status) {
      return status;
    }
    if (auto status = m_ports.add({pc::kPitPort, 4}, *m_pit_ports); !status) return status;
  }
  auto console_output = m_config.console_output ? m_config.console_output : [](std::uint8_t) {};
  m_uart = std::make_unique<devices::Uart16550>(
      [this](bool level) { raise_irq(pc::kUartIrq, level); }, console_output);
  m_debug_console =
      std::make_unique<devices::DebugConsole>([this](std::uint8_t byte) { on_debug_byte(byte); });
  m_exit_port = std::make_unique<devices::ExitPort>([this](std::uint32_t value) {
    std::int64_t none = -1;
    m_exit_value.compare_exchange_strong(none, std::int64_t{value});
  });
  if (auto status = m_ports.add({pc::kUartPort, 8}, *m_uart); !status) return status;
  if (auto status = m_ports.add({pc::kDebugConsolePort, 1}, *m_debug_console); !status) {
    return status;
  }
  if (auto status = m_ports.add({pc::kExitPort, 4}, *m_exit_port); !status) return status;
  return wire_disk();
}

Status PcBoard::wire_disk() {
  const PcBoardDisk& disk = m_config.disk;
  if (disk.model == DiskModel::None) return {};
  if (disk.backend == nullptr) return Error{"the board's disk has no backing store"};
  switch (disk.model) {
    case DiskModel::None:
      return {};
    case DiskModel::Ata: {
      m_ata = std::make_unique<devices::AtaDisk>(
          *disk.backend, [this](bool level) { raise_irq(pc::kAtaIrq, level); });
      if (auto status =
              m_ports.add({pc::kAtaCommandPort, devices::AtaDisk::command_block_port_count},
                          m_ata->command_block());
          !status) {
        return status;
      }
      return m_ports.add({pc::kAtaControlPort, devices::AtaDisk::control_block_port_count},
                         m_ata->control_block());
    }
    case DiskModel::Virtio: {
      m_guest_memory = std::make_unique<GuestMemoryLink>();
      m_virtio_blk = std::make_unique<devices::VirtioBlk>(
          *disk.backend, devices::VirtioBlkOptions{.event_index = disk.virtio_event_index});
      // With KVM's irqchip, used-buffer interrupts go through irqfd: the
      // device's rising edge is an eventfd write that KVM turns into an
      // interrupt without an exit (the 8259 line is edge-triggered).
      if (m_config.irqchip == IrqchipModel::Kernel) {
        FileDescriptor event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (event.valid() && m_vm.add_irqfd(event.get(), pc::kVirtioIrq)) {
          m_virtio_irqfd = std::move(event);
        }
      }
      m_virtio_transport = std::make_unique<devices::VirtioMmioTransport>(
          *m_guest_memory, *m_virtio_blk, [this](bool level) {
            if (!m_virtio_irqfd.valid()) {
              raise_irq(pc::kVirtioIrq, level);
            } else if (level) {
              const std::uint64_t one = 1;
              // A full eventfd counter still means "pending": nothing is lost.
              (void)!write(m_virtio_irqfd.get(), &one, sizeof one);
              ++m_irqfd_interrupts;
            }
          });
      if (auto status = m_mmio.add({pc::kVirtioMmioBase, devices::VirtioMmioTransport::kWindowSize},
                                   *m_virtio_transport);
          !status) {
        return status;
      }
      return disk.virtio_ioeventfd ? set_up_notify_eventfd() : Status{};
    }
    case DiskModel::Passthrough:
      return wire_passthrough();
  }
  return {};
}

Status PcBoard::wire_passthrough() {
  const PcBoardDisk& disk = m_config.disk;
  void* page = mmap(nullptr, VMLAB_PT_WINDOW_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED)
    return Error::from_errno("mmap of the passthrough register window", errno);
  m_passthrough_window.reset(static_cast<std::uint8_t*>(page));
  // The guest reaches the registers as memory: no exit, as for a real
  // device's BAR mapped into a VM with VT-d.
  if (auto status =
          m_vm.set_user_memory_region(pc::kPassthroughWindowSlot, pc::kPassthroughWindowBase,
                                      VMLAB_PT_WINDOW_SIZE, m_passthrough_window.get());
      !status) {
    return Error{"mapping the passthrough register window into the VM: " + status.error().message};
  }
  m_passthrough_slot = true;

  if (disk.guest_memory_size == 0) return Error{"the passthrough device needs the guest RAM size"};
  m_iommu = std::make_unique<devices::Iommu>(disk.guest_memory_size);
  m_iommu->set_enabled(disk.iommu);
  m_guest_memory = std::make_unique<GuestMemoryLink>();
  if (m_config.irqchip == IrqchipModel::Kernel) {
    FileDescriptor event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (event.valid() && m_vm.add_irqfd(event.get(), pc::kPassthroughIrq)) {
      m_passthrough_irqfd = std::move(event);
    }
  }
  m_passthrough = std::make_unique<devices::PassthroughController>(
      m_passthrough_window.get(), *m_guest_memory, *m_iommu, *disk.backend,
      [this] { raise_passthrough_interrupt(); });
  return {};
}

void PcBoard::raise_passthrough_interrupt() {
  if (m_passthrough_irqfd.valid()) {
    // KVM pulses the line itself, without an exit (a full counter still
    // means "pending": nothing is lost).
    const std::uint64_t one = 1;
    (void)!::write(m_passthrough_irqfd.get(), &one, sizeof one);
    m_passthrough_irqfd_interrupts.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  bool raised = false;
  {
    std::lock_guard lock(m_device_lock);
    const bool was_pending = m_pic && m_pic->interrupt_pending();
    // An edge: the 8259A latches it, and the line is free for the next one.
    raise_irq(pc::kPassthroughIrq, true);
    raise_irq(pc::kPassthroughIrq, false);
    raised = m_pic && !was_pending && m_pic->interrupt_pending();
  }
  // The vCPU may be halted in the VMM waiting for it (as for the timer).
  if (raised && m_interrupt_raised) m_interrupt_raised();
}

Status PcBoard::map_guest_ram_for_devices(GuestMemoryAccess& memory) {
  // The memory map the VMM wrote, read back before the guest has run: the
  // RAM regions are what the guest may give a device, the rest (boot
  // structures, the monitor, holes) stays out of the I/O page table.
  auto read = memory.read_object<vmlab_boot_info>(GuestPhysAddr(VMLAB_BOOT_INFO_ADDR));
  if (!read) return read.error();
  const vmlab_boot_info& info = *read;
  if (info.magic != VMLAB_BOOT_MAGIC || info.mem_region_count > VMLAB_MAX_MEM_REGIONS) {
    return Error{"the IOMMU is programmed from the boot memory map; load the guest first"};
  }
  for (std::uint32_t index = 0; index < info.mem_region_count; ++index) {
    const vmlab_mem_region& region = info.mem_regions[index];
    if (region.type != VMLAB_MEM_RAM) continue;
    const std::uint64_t first = (region.base + kPageSize - 1) & ~(kPageSize - 1);
    const std::uint64_t end = (region.base + region.length) & ~(kPageSize - 1);
    if (end <= first) continue;
    if (auto status =
            m_iommu->map(first, GuestPhysAddr(first), end - first, devices::IommuAccess{});
        !status) {
      return status;
    }
  }
  return {};
}

Status PcBoard::set_up_notify_eventfd() {
  FileDescriptor event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event.valid()) return Error::from_errno("eventfd for the virtio notify register", errno);
  FileDescriptor stop(eventfd(0, EFD_CLOEXEC));
  if (!stop.valid()) return Error::from_errno("eventfd", errno);
  // Queue 0 is the only queue of virtio-blk here; other values still exit
  // and reach the transport through the MMIO bus.
  constexpr std::uint64_t kQueueNotifyOffset = 0x050;  // virtio 1.2, 4.2.2
  if (!m_vm.add_mmio_ioeventfd(pc::kVirtioMmioBase + kQueueNotifyOffset, 4, 0, event.get())) {
    return {};  // no KVM_IOEVENTFD: notifications stay exits
  }
  m_notify_event = std::move(event);
  m_notify_thread_stop = std::move(stop);
  return {};
}

void PcBoard::notify_thread_main() {
  pollfd descriptors[] = {{m_notify_event.get(), POLLIN, 0},
                          {m_notify_thread_stop.get(), POLLIN, 0}};
  while (true) {
    if (poll(descriptors, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if ((descriptors[1].revents & POLLIN) != 0) return;
    if ((descriptors[0].revents & POLLIN) == 0) continue;
    // One read takes every write since the last: the device serves all the
    // available requests of the queue per notification anyway.
    std::uint64_t count = 0;
    if (::read(m_notify_event.get(), &count, sizeof count) != sizeof count) continue;
    bool raised = false;
    {
      std::lock_guard lock(m_device_lock);
      const bool was_pending = m_pic && m_pic->interrupt_pending();
      ++m_ioeventfd_notifications;
      m_virtio_transport->notify(0);
      raised = m_pic && !was_pending && m_pic->interrupt_pending();
    }
    // As for the timer: the vCPU may be halted in the VMM waiting for it.
    // (With the in-kernel irqchip, KVM_IRQ_LINE wakes the vCPU itself.)
    if (raised && m_interrupt_raised) m_interrupt_raised();
  }
}

Status PcBoard::attach_guest_memory(GuestMemoryAccess& memory) {
  std::lock_guard lock(m_device_lock);
  if (m_guest_memory) m_guest_memory->attach(memory);
  if (m_iommu && m_iommu->mapped_pages() == 0) return map_guest_ram_for_devices(memory);
  return {};
}

DmaRemapping* PcBoard::dma_remapping() {
  return m_iommu.get();
}

bool PcBoard::device_events_pending() const {
  return m_iommu && m_iommu->fault_count() != m_iommu_faults_taken;
}

std::vector<Event> PcBoard::take_device_events(std::uint64_t now_ns) {
  if (!m_iommu) return {};
  // The count first: a fault recorded after it is taken now or by the next
  // call; none is lost.
  m_iommu_faults_taken = m_iommu->fault_count();
  std::vector<Event> events;
  std::lock_guard lock(m_device_lock);
  for (const devices::IommuFault& fault : m_iommu->take_recent_faults()) {
    Event event;
    event.time_ns = now_ns;  // when the VMM noticed: the device thread keeps no clock
    event.kind = EventKind::IommuFault;
    switch (fault.kind) {
      case devices::IommuFaultKind::NotMapped:
        event.reason = EventReason::IommuNotMapped;
        break;
      case devices::IommuFaultKind::ReadOnly:
        event.reason = EventReason::IommuReadOnly;
        break;
      case devices::IommuFaultKind::WriteOnly:
        event.reason = EventReason::IommuWriteOnly;
        break;
    }
    event.address = fault.iova;
    event.value = fault.direction == devices::DmaDirection::Write ? 1 : 0;
    event.from = PrivilegeLevel::Vmm;
    event.to = PrivilegeLevel::Vmm;
    events.push_back(event);
    if (m_iommu_fault_log.size() < kMaximumFaultLog) {
      const char* access = fault.direction == devices::DmaDirection::Write ? "writing" : "reading";
      m_iommu_fault_log.push_back(
          m_iommu->enabled()
              ? std::string("the IOMMU blocked a passthrough DMA ") + access +
                    " guest memory at I/O virtual address " + hex(fault.iova) + " (" +
                    devices::describe(fault.kind) + ")"
              : std::string("a passthrough DMA ") + access + " address " + hex(fault.iova) +
                    " was stopped: it lies outside guest RAM, which even --iommu off keeps "
                    "the device inside");
    }
  }
  return events;
}

std::map<std::string, std::uint64_t> PcBoard::disk_statistics() const {
  std::lock_guard lock(m_device_lock);
  std::map<std::string, std::uint64_t> statistics;
  if (m_ata) {
    statistics["ata.register_accesses"] = m_ata->register_accesses();
    statistics["ata.sectors_read"] = m_ata->sectors_read();
    statistics["ata.sectors_written"] = m_ata->sectors_written();
    statistics["ata.commands_failed"] = m_ata->commands_failed();
    statistics["ata.interrupts"] = m_ata->interrupts_raised();
    statistics["ata.stray_data_accesses"] = m_ata->stray_data_accesses();
  }
  if (m_virtio_transport) {
    const auto& transport = m_virtio_transport->statistics();
    const auto& block = m_virtio_blk->statistics();
    statistics["virtio.register_reads"] = transport.register_reads;
    statistics["virtio.register_writes"] = transport.register_writes;
    statistics["virtio.notifications"] = transport.notifications;
    statistics["virtio.requests"] = transport.requests_completed;
    statistics["virtio.interrupts"] = transport.interrupts_raised;
    statistics["virtio.device_errors"] = transport.device_errors;
    statistics["virtio.problems"] = m_virtio_transport->problem_count();
    statistics["virtio.ioeventfd_notifications"] = m_ioeventfd_notifications;
    statistics["virtio.irqfd_interrupts"] = m_irqfd_interrupts;
    statistics["virtio.read_requests"] = block.read_requests;
    statistics["virtio.write_requests"] = block.write_requests;
    statistics["virtio.flush_requests"] = block.flush_requests;
    statistics["virtio.io_errors"] = block.io_errors;
    statistics["virtio.bytes_read"] = block.bytes_read;
    statistics["virtio.bytes_written"] = block.bytes_written;
  }
  if (m_passthrough) {
    const devices::PassthroughCounters counters = m_passthrough->counters();
    statistics["passthrough.reads"] = counters.reads;
    statistics["passthrough.writes"] = counters.writes;
    statistics["passthrough.flushes"] = counters.flushes;
    statistics["passthrough.commands"] = counters.commands_completed;
    statistics["passthrough.invalid_commands"] = counters.invalid_commands;
    statistics["passthrough.io_errors"] = counters.io_errors;
    statistics["passthrough.bytes_read"] = counters.bytes_to_memory;
    statistics["passthrough.bytes_written"] = counters.bytes_to_disk;
    statistics["passthrough.dma_faults"] = counters.dma_faults;
    statistics["passthrough.interrupts"] = counters.interrupts;
    statistics["passthrough.irqfd_interrupts"] = m_passthrough_irqfd_interrupts.load();
    statistics["passthrough.doorbell_polls"] = counters.polls;
    statistics["passthrough.sleeps"] = counters.sleeps;
    statistics["iommu.mapped_pages"] = m_iommu->mapped_pages();
    statistics["iommu.protected_frames"] = m_iommu->protected_frames();
    statistics["iommu.faults"] = m_iommu->fault_count();
  }
  return statistics;
}

std::vector<std::string> PcBoard::device_problems() const {
  std::lock_guard lock(m_device_lock);
  if (m_virtio_transport) return m_virtio_transport->problems();
  return m_iommu_fault_log;
}

std::vector<vmlab_device> PcBoard::device_table() const {
  std::vector<vmlab_device> table{
      {VMLAB_DEVICE_UART16550, pc::kUartIrq, pc::kUartPort, 8, 0, 0},
      {VMLAB_DEVICE_PIC8259, VMLAB_NO_IRQ, pc::kPicMasterPort, 2, 0, 0},
      {VMLAB_DEVICE_PIC8259, VMLAB_NO_IRQ, pc::kPicSlavePort, 2, 0, 0},
      {VMLAB_DEVICE_PIT8254, pc::kPitIrq, pc::kPitPort, 4, 0, 0},
      {VMLAB_DEVICE_DEBUGCON, VMLAB_NO_IRQ, pc::kDebugConsolePort, 1, 0, 0},
      {VMLAB_DEVICE_EXIT_PORT, VMLAB_NO_IRQ, pc::kExitPort, 4, 0, 0},
  };
  if (m_ata) {
    table.push_back({VMLAB_DEVICE_ATA, pc::kAtaIrq, pc::kAtaCommandPort,
                     devices::AtaDisk::command_block_port_count, 0, 0});
  }
  if (m_passthrough) {
    table.push_back({VMLAB_DEVICE_PASSTHROUGH, pc::kPassthroughIrq, pc::kPassthroughWindowBase,
                     VMLAB_PT_WINDOW_SIZE, VMLAB_DEVICE_FLAG_MMIO, 0});
  }
  if (m_virtio_transport) {
    table.push_back({VMLAB_DEVICE_VIRTIO_MMIO, pc::kVirtioIrq, pc::kVirtioMmioBase,
                     devices::VirtioMmioTransport::kWindowSize, VMLAB_DEVICE_FLAG_MMIO, 0});
  }
  return table;
}

void PcBoard::start(std::function<void()> interrupt_raised) {
  m_interrupt_raised = std::move(interrupt_raised);
  if (m_notify_event.valid() && !m_notify_thread.joinable()) {
    m_notify_thread = std::thread([this] { notify_thread_main(); });
  }
  // A thread that cannot start leaves the device dead to the guest (its
  // driver times out and says so); there is nobody to return an error to.
  if (m_passthrough) (void)m_passthrough->start();
  if (!m_pit || m_timer_thread.joinable()) return;
  {
    std::lock_guard lock(m_device_lock);
    m_timer_stop = false;
  }
  m_timer_thread = std::thread([this] { timer_thread_main(); });
}

void PcBoard::stop() {
  // The device thread first: it raises interrupts through the PIC and the
  // run loop, and DMAs into guest memory.
  if (m_passthrough) m_passthrough->stop();
  {
    std::lock_guard lock(m_device_lock);
    m_timer_stop = true;
  }
  m_timer_wakeup.notify_all();
  if (m_timer_thread.joinable()) m_timer_thread.join();
  if (m_notify_thread.joinable()) {
    const std::uint64_t one = 1;
    (void)!::write(m_notify_thread_stop.get(), &one, sizeof one);
    m_notify_thread.join();
    std::uint64_t count = 0;  // ready for the next start()
    (void)!::read(m_notify_thread_stop.get(), &count, sizeof count);
  }
  // The shutdown flush (DESIGN.md 6, "Disk backing"): what the guest wrote
  // reaches the file even if it never sent a flush command.
  if (m_config.disk.backend != nullptr && !m_config.disk.backend->read_only()) {
    std::lock_guard lock(m_device_lock);
    (void)m_config.disk.backend->flush();
  }
}

void PcBoard::timer_thread_main() {
  std::unique_lock lock(m_device_lock);
  while (!m_timer_stop) {
    if (auto next = m_pit->next_event_ns()) {
      // Like KVM's in-kernel PIT (min_timer_period_us), no faster than one
      // tick per kMinimumTimerPeriod: a guest programming a count of 2 would
      // otherwise keep this thread, and the device lock, busy. The PIT model
      // coalesces the ticks in between.
      const auto earliest = std::chrono::steady_clock::now() + kMinimumTimerPeriod;
      const auto deadline = std::max(
          earliest, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(*next)));
      m_timer_wakeup.wait_until(lock, deadline);
    } else {
      m_timer_wakeup.wait(lock);
    }
    if (m_timer_stop) break;
    const bool was_pending = m_pic->interrupt_pending();
    m_pit->update(m_clock.now_ns());
    if (!was_pending && m_pic->interrupt_pending() && m_interrupt_raised) {
      lock.unlock();
      m_interrupt_raised();
      lock.lock();
    }
  }
}

void PcBoard::write_console(std::string_view text) {
  if (!m_config.console_output) return;
  std::lock_guard lock(m_device_lock);  // the UART's bytes go out under it too
  for (const char character : text)
    m_config.console_output(static_cast<std::uint8_t>(character));
}

std::optional<std::uint32_t> PcBoard::exit_request() const {
  const auto value = m_exit_value.load();
  if (value < 0) return std::nullopt;
  return static_cast<std::uint32_t>(value);
}

std::vector<std::string> PcBoard::debug_lines() const {
  std::lock_guard lock(m_device_lock);
  std::vector<std::string> lines = m_debug_lines;
  lines.insert(lines.end(), m_debug_other_lines.begin(), m_debug_other_lines.end());
  return lines;
}

std::uint64_t PcBoard::debug_lines_dropped() const {
  std::lock_guard lock(m_device_lock);
  return m_debug_lines_dropped;
}

std::uint64_t PcBoard::timer_ticks() const {
  std::lock_guard lock(m_device_lock);
  return m_pit ? m_pit->ticks() : 0;
}

std::uint64_t PcBoard::missed_timer_ticks() const {
  std::lock_guard lock(m_device_lock);
  return m_pit ? m_pit->missed_ticks() : 0;
}

}  // namespace vmlab
