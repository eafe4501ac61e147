// The PC board on a real VM (skipped without /dev/kvm): every device at the
// ports and addresses the layout table gives it, and described so.
#include "vmlab/pc_board.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <span>
#include <string>
#include <utility>

#include "../../support/kvm_available.hpp"
#include "vmlab/devices/memory_block_backend.hpp"

namespace vmlab {
namespace {

struct BoardCase {
  IrqchipModel irqchip;
  DiskModel disk;
};

std::string case_name(const ::testing::TestParamInfo<BoardCase>& info) {
  static constexpr const char* kDisks[] = {"no_disk", "ata", "virtio", "passthrough"};
  return std::string(info.param.irqchip == IrqchipModel::Kernel ? "kernel_irqchip_"
                                                                : "vmm_irqchip_") +
         kDisks[static_cast<int>(info.param.disk)];
}

// A VM to build boards on; the test is skipped without /dev/kvm.
class BoardOnAVm : public ::testing::Test {
 protected:
  void SetUp() override {
    VMLAB_REQUIRE_KVM();
    auto kvm = Kvm::open();
    ASSERT_TRUE(kvm.ok());
    m_kvm.emplace(std::move(*kvm));
    auto vm = m_kvm->create_vm();
    ASSERT_TRUE(vm.ok()) << vm.error().message;
    m_vm.emplace(std::move(*vm));
  }

  Vm& vm() { return *m_vm; }

 private:
  std::optional<Kvm> m_kvm;
  std::optional<Vm> m_vm;
};

class PcBoardLayout : public BoardOnAVm, public ::testing::WithParamInterface<BoardCase> {};

// The assignment of the board's that a device-table entry names, or nullptr.
const pc::Assignment* assignment_for(const vmlab_device& device) {
  const bool mmio = (device.flags & VMLAB_DEVICE_FLAG_MMIO) != 0;
  for (const pc::Assignment& assignment : pc::kAssignments) {
    if (assignment.owner != pc::Owner::Board) continue;
    if (assignment.kind != (mmio ? pc::ResourceKind::Addresses : pc::ResourceKind::Ports)) continue;
    if (assignment.base == device.base && assignment.size == device.size) return &assignment;
  }
  return nullptr;
}

TEST_P(PcBoardLayout, DevicesSitWhereTheLayoutPutsThem) {
  devices::MemoryBlockBackend disk(64);
  PcBoardConfig config;
  config.irqchip = GetParam().irqchip;
  config.disk = {GetParam().disk, &disk, false, false, 64 * MiB, true};
  auto board = PcBoard::create(vm(), config);
  ASSERT_TRUE(board.ok()) << board.error().message;

  const std::vector<vmlab_device> table = (*board)->device_table();
  std::size_t expected = 7 + (GetParam().disk == DiskModel::None ? 0 : 1);
  ASSERT_EQ(table.size(), expected);
  for (const vmlab_device& device : table) {
    const pc::Assignment* assignment = assignment_for(device);
    ASSERT_NE(assignment, nullptr)
        << "device kind " << device.kind << " at " << device.base << " is not in the layout table";
    if (device.irq != VMLAB_NO_IRQ) {
      bool listed = false;
      for (const pc::Assignment& line : pc::kAssignments) {
        listed |= line.kind == pc::ResourceKind::IrqLine && line.base == device.irq;
      }
      EXPECT_TRUE(listed) << assignment->user << ": IRQ " << device.irq;
    }
    const bool on_bus =
        (device.flags & VMLAB_DEVICE_FLAG_MMIO) == 0 || device.kind == VMLAB_DEVICE_VIRTIO_MMIO;
    const bool modelled_by_kvm =
        config.irqchip == IrqchipModel::Kernel &&
        (device.kind == VMLAB_DEVICE_PIC8259 || device.kind == VMLAB_DEVICE_PIT8254);
    if (!on_bus || modelled_by_kvm) continue;  // memory in a slot, or KVM's own
    IoBus& bus =
        device.kind == VMLAB_DEVICE_VIRTIO_MMIO ? (*board)->mmio_bus() : (*board)->port_bus();
    const IoDevice* model = bus.device_at(device.base);
    ASSERT_NE(model, nullptr) << assignment->user;
    EXPECT_EQ(bus.device_at(device.base + device.size - 1), model) << assignment->user;
    EXPECT_NE(bus.device_at(device.base + device.size), model) << assignment->user;
    EXPECT_NE(bus.device_at(device.base - 1), model) << assignment->user;
  }

  // The clock answers as a PC's: status D, valid RAM and time.
  std::lock_guard lock((*board)->device_lock());
  const std::uint8_t index = 0x0d;
  (*board)->port_bus().write(pc::kRtcPorts.base, std::span(&index, 1));
  std::uint8_t status_d = 0;
  (*board)->port_bus().read(pc::kRtcPorts.base + 1, std::span(&status_d, 1));
  EXPECT_EQ(status_d, 0x80);
}

INSTANTIATE_TEST_SUITE_P(Boards, PcBoardLayout,
                         ::testing::Values(BoardCase{IrqchipModel::Vmm, DiskModel::None},
                                           BoardCase{IrqchipModel::Vmm, DiskModel::Ata},
                                           BoardCase{IrqchipModel::Vmm, DiskModel::Virtio},
                                           BoardCase{IrqchipModel::Vmm, DiskModel::Passthrough},
                                           BoardCase{IrqchipModel::Kernel, DiskModel::None},
                                           BoardCase{IrqchipModel::Kernel, DiskModel::Virtio}),
                         case_name);

using PcBoardTest = BoardOnAVm;

TEST_F(PcBoardTest, DeviceTableIsThePcsInItsOrder) {
  auto board = PcBoard::create(vm(), PcBoardConfig{});
  ASSERT_TRUE(board.ok()) << board.error().message;
  const std::vector<vmlab_device> table = (*board)->device_table();
  const std::vector<std::tuple<std::uint32_t, std::uint32_t, std::uint64_t, std::uint64_t>>
      expected = {{VMLAB_DEVICE_UART16550, 4, 0x3f8, 8},
                  {VMLAB_DEVICE_PIC8259, VMLAB_NO_IRQ, 0x20, 2},
                  {VMLAB_DEVICE_PIC8259, VMLAB_NO_IRQ, 0xa0, 2},
                  {VMLAB_DEVICE_PIT8254, 0, 0x40, 4},
                  {VMLAB_DEVICE_DEBUGCON, VMLAB_NO_IRQ, 0xe9, 1},
                  {VMLAB_DEVICE_EXIT_PORT, VMLAB_NO_IRQ, 0xf4, 4},
                  {VMLAB_DEVICE_RTC_MC146818, VMLAB_NO_IRQ, 0x70, 2}};
  ASSERT_EQ(table.size(), expected.size());
  for (std::size_t index = 0; index < table.size(); ++index) {
    EXPECT_EQ(std::tuple(table[index].kind, table[index].irq, table[index].base, table[index].size),
              expected[index])
        << "entry " << index;
  }
  EXPECT_TRUE((*board)->disk_statistics().empty()) << "no disk, no disk counters";
  EXPECT_EQ((*board)->device_statistics().count("rtc.register_accesses"), 1u);
}

TEST_F(PcBoardTest, ADiskWithoutBackingIsRefused) {
  PcBoardConfig config;
  config.disk.model = DiskModel::Ata;
  auto board = PcBoard::create(vm(), config);
  ASSERT_FALSE(board.ok());
  EXPECT_EQ(board.error().kind, BoardError::kBadConfig);
}

TEST_F(PcBoardTest, APassthroughDiskNeedsTheGuestRamSize) {
  devices::MemoryBlockBackend disk(64);
  PcBoardConfig config;
  config.disk = {DiskModel::Passthrough, &disk, false, false, 0, true};
  auto board = PcBoard::create(vm(), config);
  ASSERT_FALSE(board.ok());
  EXPECT_EQ(board.error().kind, BoardError::kBadConfig);
}

}  // namespace
}  // namespace vmlab
