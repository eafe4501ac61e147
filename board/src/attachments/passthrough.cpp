// The passthrough storage controller (--disk-model passthrough): its
// register window is a page of host memory in a KVM slot of its own, so the
// guest reaches the registers with no exit, as a real device's BAR mapped
// into a VM with VT-d; its hardware is a host thread; its DMA goes through
// an IOMMU model the board programs from the guest's memory map.
#include <sys/mman.h>

#include <atomic>
#include <cerrno>

#include "../attachment.hpp"
#include "vmlab/devices/iommu.hpp"
#include "vmlab/devices/passthrough_controller.hpp"
#include "vmlab/format.hpp"

namespace vmlab::board {
namespace {

constexpr std::size_t kMaximumFaultLog = 64;

struct PageDeleter {
  void operator()(std::uint8_t* page) const { munmap(page, pc::kPassthroughWindow.size); }
};

class PassthroughAttachment final : public DiskAttachment {
 public:
  ~PassthroughAttachment() override {
    if (m_controller) m_controller->stop();
    // KVM lets go of the window before the page is unmapped.
    if (m_slot_registered) {
      (void)m_vm->set_user_memory_region(pc::slot_number(pc::MemorySlot::PassthroughWindow),
                                         pc::kPassthroughWindow.base, 0, nullptr);
    }
  }

  Status attach_disk(const AttachmentContext& context) override {
    const PcBoardDisk& disk = context.config.disk;
    m_vm = &context.vm;
    void* page = mmap(nullptr, pc::kPassthroughWindow.size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
      return Error::from_errno(BoardError::kHostResource, "mmap of the passthrough register window",
                               errno);
    }
    m_window.reset(static_cast<std::uint8_t*>(page));
    if (auto status = context.vm.set_user_memory_region(
            pc::slot_number(pc::MemorySlot::PassthroughWindow), pc::kPassthroughWindow.base,
            pc::kPassthroughWindow.size, m_window.get());
        !status) {
      return Error{BoardError::kKvmRefused,
                   "mapping the passthrough register window into the VM: " + status.error().message,
                   status.error().system_errno};
    }
    m_slot_registered = true;

    if (disk.guest_memory_size == 0) {
      return Error{BoardError::kBadConfig, "the passthrough device needs the guest RAM size"};
    }
    m_iommu = std::make_unique<devices::Iommu>(disk.guest_memory_size);
    m_iommu->set_enabled(disk.iommu);
    // KVM pulses the line itself, without an exit, where it can.
    (void)context.interrupts.use_irqfd(pc::kPassthroughIrq);
    m_controller = std::make_unique<devices::PassthroughController>(
        m_window.get(), context.guest_memory, *m_iommu, backend(),
        [this] { interrupts().pulse_from_device_thread(pc::kPassthroughIrq); });
    return {};
  }

  void describe(std::vector<vmlab_device>& table) const override {
    table.push_back(
        mmio_entry(VMLAB_DEVICE_PASSTHROUGH, pc::kPassthroughIrq, pc::kPassthroughWindow));
  }

  void add_statistics(Statistics& statistics) const override {
    const devices::PassthroughCounters counters = m_controller->counters();
    auto passthrough = statistics.group("passthrough");
    passthrough.add("reads", counters.reads);
    passthrough.add("writes", counters.writes);
    passthrough.add("flushes", counters.flushes);
    passthrough.add("commands", counters.commands_completed);
    passthrough.add("invalid_commands", counters.invalid_commands);
    passthrough.add("io_errors", counters.io_errors);
    passthrough.add("bytes_read", counters.bytes_to_memory);
    passthrough.add("bytes_written", counters.bytes_to_disk);
    passthrough.add("dma_faults", counters.dma_faults);
    passthrough.add("interrupts", counters.interrupts);
    passthrough.add("irqfd_interrupts", interrupts().irqfd_signals(pc::kPassthroughIrq));
    passthrough.add("doorbell_polls", counters.polls);
    passthrough.add("sleeps", counters.sleeps);
    auto iommu = statistics.group("iommu");
    iommu.add("mapped_pages", m_iommu->mapped_pages());
    iommu.add("protected_frames", m_iommu->protected_frames());
    iommu.add("faults", m_iommu->fault_count());
  }

  void add_problems(std::vector<std::string>& problems) const override {
    problems.insert(problems.end(), m_fault_log.begin(), m_fault_log.end());
  }

  // The IOMMU gets an identity map of the RAM regions of the memory map the
  // guest was handed (the boot info), nothing else.
  Status guest_memory_attached(GuestMemoryAccess& memory) override {
    if (m_iommu->mapped_pages() != 0) return {};
    return map_guest_ram(memory);
  }

  // A thread that cannot start leaves the device dead to the guest (its
  // driver times out and says so); there is nobody to return an error to.
  void start() override { (void)m_controller->start(); }

  // The device thread first: it raises interrupts and DMAs into guest memory.
  void stop_model() override { m_controller->stop(); }

  DmaRemapping* dma_remapping() override { return m_iommu.get(); }

  bool events_pending() const override { return m_iommu->fault_count() != m_faults_taken; }

  void take_events(std::uint64_t now_ns, std::vector<Event>& events) override {
    // The count first: a fault recorded after it is taken now or by the next
    // call; none is lost.
    m_faults_taken = m_iommu->fault_count();
    std::lock_guard lock(device_lock());
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
      if (m_fault_log.size() < kMaximumFaultLog) m_fault_log.push_back(describe_fault(fault));
    }
  }

 private:
  std::string describe_fault(const devices::IommuFault& fault) const {
    const char* access = fault.direction == devices::DmaDirection::Write ? "writing" : "reading";
    if (m_iommu->enabled()) {
      return std::string("the IOMMU blocked a passthrough DMA ") + access +
             " guest memory at I/O virtual address " + hex(fault.iova) + " (" +
             devices::describe(fault.kind) + ")";
    }
    return std::string("a passthrough DMA ") + access + " address " + hex(fault.iova) +
           " was stopped: it lies outside guest RAM, which even --iommu off keeps the device "
           "inside";
  }

  Status map_guest_ram(GuestMemoryAccess& memory) {
    // The memory map the VMM wrote, read back before the guest has run: the
    // RAM regions are what the guest may give a device, the rest (boot
    // structures, the monitor, holes) stays out of the I/O page table.
    auto read = memory.read_object<vmlab_boot_info>(GuestPhysAddr(VMLAB_BOOT_INFO_ADDR));
    if (!read) return read.error();
    const vmlab_boot_info& info = *read;
    if (info.magic != VMLAB_BOOT_MAGIC || info.mem_region_count > VMLAB_MAX_MEM_REGIONS) {
      return Error{BoardError::kGuestNotLoaded,
                   "the IOMMU is programmed from the boot memory map; load the guest first"};
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

  Vm* m_vm = nullptr;
  // The page the guest sees as its registers (mmap'ed, page-aligned).
  std::unique_ptr<std::uint8_t, PageDeleter> m_window;
  bool m_slot_registered = false;
  std::unique_ptr<devices::Iommu> m_iommu;
  std::unique_ptr<devices::PassthroughController> m_controller;  // its thread: start() to stop()
  std::uint64_t m_faults_taken = 0;                              // vCPU thread (take_events)
  std::vector<std::string> m_fault_log;  // guarded by the device lock, bounded
};

}  // namespace

std::unique_ptr<DeviceAttachment> make_passthrough_attachment() {
  return std::make_unique<PassthroughAttachment>();
}

}  // namespace vmlab::board
