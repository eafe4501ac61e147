// virtio-blk over virtio-mmio (--disk-model virtio). With --irqchip kernel
// its used-buffer interrupts go through irqfd; in hvm its QueueNotify
// register can be a KVM ioeventfd that a board thread serves, so that a
// notification costs no exit to user space.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "../attachment.hpp"
#include "vmlab/devices/virtio_blk.hpp"
#include "vmlab/devices/virtio_mmio.hpp"

namespace vmlab::board {
namespace {

// Queue 0 is the only queue of virtio-blk here; a notification of another
// value still exits and reaches the transport through the MMIO bus.
constexpr std::uint64_t kQueueNotifyOffset = 0x050;  // virtio 1.2, 4.2.2

class VirtioBlkAttachment final : public DiskAttachment {
 public:
  ~VirtioBlkAttachment() override { stop_notify_thread(); }

  Status attach_disk(const AttachmentContext& context) override {
    const PcBoardDisk& disk = context.config.disk;
    m_block = std::make_unique<devices::VirtioBlk>(
        backend(), devices::VirtioBlkOptions{.event_index = disk.virtio_event_index});
    // The 8259's line is edge-triggered: with KVM's irqchip, the device's
    // rising edge is an eventfd write that KVM turns into an interrupt.
    (void)context.interrupts.use_irqfd(pc::kVirtioIrq);
    m_transport = std::make_unique<devices::VirtioMmioTransport>(
        context.guest_memory, *m_block, context.interrupts.edge_line(pc::kVirtioIrq));
    static_assert(pc::kVirtioMmioWindow.size == devices::VirtioMmioTransport::kWindowSize);
    if (auto status = context.mmio.add({pc::kVirtioMmioWindow.base, pc::kVirtioMmioWindow.size},
                                       *m_transport);
        !status) {
      return status;
    }
    return disk.virtio_ioeventfd ? set_up_notify_eventfd(context.vm) : Status{};
  }

  void describe(std::vector<vmlab_device>& table) const override {
    table.push_back(mmio_entry(VMLAB_DEVICE_VIRTIO_MMIO, pc::kVirtioIrq, pc::kVirtioMmioWindow));
  }

  void add_statistics(Statistics& statistics) const override {
    const auto& transport = m_transport->statistics();
    const auto& block = m_block->statistics();
    auto virtio = statistics.group("virtio");
    virtio.add("register_reads", transport.register_reads);
    virtio.add("register_writes", transport.register_writes);
    virtio.add("notifications", transport.notifications);
    virtio.add("requests", transport.requests_completed);
    virtio.add("interrupts", transport.interrupts_raised);
    virtio.add("device_errors", transport.device_errors);
    virtio.add("problems", m_transport->problem_count());
    virtio.add("ioeventfd_notifications", m_ioeventfd_notifications);
    virtio.add("irqfd_interrupts", interrupts().irqfd_signals(pc::kVirtioIrq));
    virtio.add("read_requests", block.read_requests);
    virtio.add("write_requests", block.write_requests);
    virtio.add("flush_requests", block.flush_requests);
    virtio.add("io_errors", block.io_errors);
    virtio.add("bytes_read", block.bytes_read);
    virtio.add("bytes_written", block.bytes_written);
  }

  void add_problems(std::vector<std::string>& problems) const override {
    const auto& refused = m_transport->problems();
    problems.insert(problems.end(), refused.begin(), refused.end());
  }

  void start() override {
    if (m_notify_event.valid() && !m_notify_thread.joinable()) {
      m_notify_thread = std::thread([this] { serve_notifications(); });
    }
  }

  void stop_model() override { stop_notify_thread(); }

 private:
  Status set_up_notify_eventfd(Vm& vm) {
    FileDescriptor event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!event.valid()) {
      return Error::from_errno(BoardError::kHostResource, "eventfd for the virtio notify register",
                               errno);
    }
    FileDescriptor stop(eventfd(0, EFD_CLOEXEC));
    if (!stop.valid()) return Error::from_errno(BoardError::kHostResource, "eventfd", errno);
    if (!vm.add_mmio_ioeventfd(pc::kVirtioMmioWindow.base + kQueueNotifyOffset, 4, 0,
                               event.get())) {
      return {};  // no KVM_IOEVENTFD: notifications stay exits
    }
    m_notify_event = std::move(event);
    m_notify_thread_stop = std::move(stop);
    return {};
  }

  void serve_notifications() {
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
      interrupts().from_device_thread([this] {
        ++m_ioeventfd_notifications;
        m_transport->notify(0);
      });
    }
  }

  void stop_notify_thread() {
    if (!m_notify_thread.joinable()) return;
    const std::uint64_t one = 1;
    (void)!::write(m_notify_thread_stop.get(), &one, sizeof one);
    m_notify_thread.join();
    std::uint64_t count = 0;  // ready for the next start()
    (void)!::read(m_notify_thread_stop.get(), &count, sizeof count);
  }

  std::unique_ptr<devices::VirtioBlk> m_block;
  std::unique_ptr<devices::VirtioMmioTransport> m_transport;
  // The QueueNotify ioeventfd, and the eventfd that stops its thread.
  FileDescriptor m_notify_event;
  FileDescriptor m_notify_thread_stop;
  std::uint64_t m_ioeventfd_notifications = 0;  // guarded by the device lock
  std::thread m_notify_thread;
};

}  // namespace

std::unique_ptr<DeviceAttachment> make_virtio_blk_attachment() {
  return std::make_unique<VirtioBlkAttachment>();
}

}  // namespace vmlab::board
