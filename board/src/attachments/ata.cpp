// The emulated ATA PIO disk on the primary channel (--disk-model ata).
#include "vmlab/devices/ata.hpp"
#include "../attachment.hpp"

namespace vmlab::board {
namespace {

class AtaAttachment final : public DiskAttachment {
 public:
  Status attach_disk(const AttachmentContext& context) override {
    m_ata = std::make_unique<devices::AtaDisk>(backend(), interrupts().line(pc::kAtaIrq));
    static_assert(pc::kAtaCommandPorts.count == devices::AtaDisk::kCommandBlockPortCount);
    static_assert(pc::kAtaControlPorts.count == devices::AtaDisk::kControlBlockPortCount);
    auto added = add_ports(context, pc::kAtaCommandPorts, m_ata->command_block());
    return added ? add_ports(context, pc::kAtaControlPorts, m_ata->control_block()) : added;
  }

  void describe(std::vector<vmlab_device>& table) const override {
    table.push_back(port_entry(VMLAB_DEVICE_ATA, pc::kAtaIrq, pc::kAtaCommandPorts));
  }

  void add_statistics(Statistics& statistics) const override {
    auto ata = statistics.group("ata");
    ata.add("register_accesses", m_ata->register_accesses());
    ata.add("sectors_read", m_ata->sectors_read());
    ata.add("sectors_written", m_ata->sectors_written());
    ata.add("commands_failed", m_ata->commands_failed());
    ata.add("interrupts", m_ata->interrupts_raised());
    ata.add("stray_data_accesses", m_ata->stray_data_accesses());
  }

 private:
  std::unique_ptr<devices::AtaDisk> m_ata;
};

}  // namespace

std::unique_ptr<DeviceAttachment> make_ata_attachment() {
  return std::make_unique<AtaAttachment>();
}

}  // namespace vmlab::board
