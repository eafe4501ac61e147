#include "vmlab/pc_board.hpp"

#include "attachment.hpp"

namespace vmlab {

namespace board {

// Guest RAM as the DMA-capable devices see it: the Machine's memory once the
// runner attaches it (the board is built before guest RAM exists).
class GuestMemoryLink final : public GuestMemoryAccess {
 public:
  void attach(GuestMemoryAccess& memory) { m_memory = &memory; }
  std::uint64_t size() const override { return m_memory ? m_memory->size() : 0; }
  Status read(GuestPhysAddr address, std::span<std::uint8_t> out) const override {
    if (!m_memory) return not_attached();
    return m_memory->read(address, out);
  }
  Status write(GuestPhysAddr address, std::span<const std::uint8_t> in) override {
    if (!m_memory) return not_attached();
    return m_memory->write(address, in);
  }

 private:
  static Error not_attached() {
    return Error{BoardError::kGuestMemoryNotAttached, "guest memory is not attached to the board"};
  }

  GuestMemoryAccess* m_memory = nullptr;
};

namespace {

std::unique_ptr<DeviceAttachment> make_disk_attachment(DiskModel model) {
  switch (model) {
    case DiskModel::None:
      return nullptr;
    case DiskModel::Ata:
      return make_ata_attachment();
    case DiskModel::Virtio:
      return make_virtio_blk_attachment();
    case DiskModel::Passthrough:
      return make_passthrough_attachment();
  }
  return nullptr;
}

}  // namespace
}  // namespace board

PcBoard::PcBoard(Vm& vm, PcBoardConfig config)
    : m_vm(vm),
      m_config(std::move(config)),
      m_kernel_irqchip(m_config.irqchip == IrqchipModel::Kernel ? std::make_unique<VmIrqchip>(vm)
                                                                : nullptr),
      m_interrupts(m_device_lock, m_kernel_irqchip.get()),
      m_guest_memory(std::make_unique<board::GuestMemoryLink>()) {}

PcBoard::~PcBoard() {
  stop();
}

Result<std::unique_ptr<PcBoard>> PcBoard::create(Vm& vm, PcBoardConfig config) {
  std::unique_ptr<PcBoard> board(new PcBoard(vm, std::move(config)));
  if (auto status = board->wire(); !status) return status.error();
  return board;
}

template <typename Attachment>
Attachment* PcBoard::add(std::unique_ptr<Attachment> attachment) {
  Attachment* added = attachment.get();
  if (attachment) m_attachments.push_back(std::move(attachment));
  return added;
}

Status PcBoard::wire() {
  if (m_config.disk.model != DiskModel::None && m_config.disk.backend == nullptr) {
    return Error{BoardError::kBadConfig, "the board's disk has no backing store"};
  }
  // The PC's devices, in the order of the guest's device table. The
  // interrupt controller comes before the interval timer: KVM creates its
  // PIT only on top of its irqchip.
  add(board::make_uart_attachment());
  add(board::make_pic_attachment());
  m_timer = add(board::make_pit_attachment());
  m_debug_console = add(board::make_debug_console_attachment());
  m_exit_port = add(board::make_exit_port_attachment());
  add(board::make_rtc_attachment());
  m_disk = add(board::make_disk_attachment(m_config.disk.model));

  const board::AttachmentContext context{m_vm,          m_config,     m_ports, m_mmio,
                                         m_device_lock, m_interrupts, m_clock, *m_guest_memory};
  for (const auto& attachment : m_attachments) {
    if (auto status = attachment->attach(context); !status) return status;
    ++m_attached;
  }
  return {};
}

std::span<const std::unique_ptr<board::DeviceAttachment>> PcBoard::attached() const {
  return {m_attachments.data(), m_attached};
}

std::vector<vmlab_device> PcBoard::device_table() const {
  std::vector<vmlab_device> table;
  for (const auto& attachment : attached())
    attachment->describe(table);
  return table;
}

void PcBoard::start(std::function<void()> interrupt_raised) {
  m_interrupts.set_wakeup(std::move(interrupt_raised));
  for (const auto& attachment : attached())
    attachment->start();
}

void PcBoard::stop() {
  // Last attached first: the disk's device thread raises interrupts through
  // the PIC and DMAs into guest memory.
  const auto attachments = attached();
  for (auto attachment = attachments.rbegin(); attachment != attachments.rend(); ++attachment) {
    (*attachment)->stop();
  }
}

std::optional<std::uint32_t> PcBoard::exit_request() const {
  return m_exit_port != nullptr ? m_exit_port->exit_request() : std::nullopt;
}

void PcBoard::write_console(std::string_view text) {
  if (!m_config.console_output) return;
  std::lock_guard lock(m_device_lock);  // the UART's bytes go out under it too
  for (const char character : text)
    m_config.console_output(static_cast<std::uint8_t>(character));
}

DmaRemapping* PcBoard::dma_remapping() {
  for (const auto& attachment : attached()) {
    if (DmaRemapping* remapping = attachment->dma_remapping()) return remapping;
  }
  return nullptr;
}

bool PcBoard::device_events_pending() const {
  for (const auto& attachment : attached()) {
    if (attachment->events_pending()) return true;
  }
  return false;
}

std::vector<Event> PcBoard::take_device_events(std::uint64_t now_ns) {
  std::vector<Event> events;
  for (const auto& attachment : attached())
    attachment->take_events(now_ns, events);
  return events;
}

Status PcBoard::attach_guest_memory(GuestMemoryAccess& memory) {
  std::lock_guard lock(m_device_lock);
  m_guest_memory->attach(memory);
  for (const auto& attachment : attached()) {
    if (auto status = attachment->guest_memory_attached(memory); !status) return status;
  }
  return {};
}

std::map<std::string, std::uint64_t> PcBoard::disk_statistics() const {
  std::map<std::string, std::uint64_t> values;
  if (m_disk == nullptr) return values;
  std::lock_guard lock(m_device_lock);
  board::Statistics statistics(values);
  m_disk->add_statistics(statistics);
  return values;
}

std::map<std::string, std::uint64_t> PcBoard::device_statistics() const {
  std::map<std::string, std::uint64_t> values;
  std::lock_guard lock(m_device_lock);
  board::Statistics statistics(values);
  for (const auto& attachment : attached())
    attachment->add_statistics(statistics);
  return values;
}

std::vector<std::string> PcBoard::device_problems() const {
  std::vector<std::string> problems;
  std::lock_guard lock(m_device_lock);
  for (const auto& attachment : attached())
    attachment->add_problems(problems);
  return problems;
}

std::vector<std::string> PcBoard::debug_lines() const {
  std::lock_guard lock(m_device_lock);
  return m_debug_console != nullptr ? m_debug_console->lines() : std::vector<std::string>{};
}

std::uint64_t PcBoard::debug_lines_dropped() const {
  std::lock_guard lock(m_device_lock);
  return m_debug_console != nullptr ? m_debug_console->lines_dropped() : 0;
}

std::uint64_t PcBoard::timer_ticks() const {
  std::lock_guard lock(m_device_lock);
  return m_timer != nullptr ? m_timer->ticks() : 0;
}

std::uint64_t PcBoard::missed_timer_ticks() const {
  std::lock_guard lock(m_device_lock);
  return m_timer != nullptr ? m_timer->missed_ticks() : 0;
}

}  // namespace vmlab
