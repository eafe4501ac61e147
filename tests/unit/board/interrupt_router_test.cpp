// The interrupt router without KVM: the VMM's 8259A pair, and a fake in
// place of KVM's in-kernel irqchip (irqfds are real eventfds).
#include "vmlab/interrupt_router.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <span>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "vmlab/devices/pic8259.hpp"

namespace vmlab {
namespace {

// What the router asked of KVM.
class FakeKernelIrqchip final : public KernelIrqchip {
 public:
  Status set_line(std::uint32_t line, bool level) override {
    levels.emplace_back(line, level);
    return {};
  }
  Status add_irqfd(int event, std::uint32_t line) override {
    if (refuse_irqfd) {
      return Error{std::make_error_code(std::errc::operation_not_supported),
                   "KVM_IRQFD: refused by the test"};
    }
    irqfds.emplace_back(event, line);
    return {};
  }

  std::vector<std::pair<std::uint32_t, bool>> levels;
  std::vector<std::pair<int, std::uint32_t>> irqfds;
  bool refuse_irqfd = false;
};

void out(IoDevice& device, std::uint64_t offset, std::uint8_t value) {
  device.write(offset, std::span<const std::uint8_t>(&value, 1));
}

// As the guest kernel sets the pair up: vectors 0x20 and 0x28, cascade on
// IR2, 8086 mode, every line unmasked.
void initialize(devices::Pic8259Pair& pic) {
  for (auto [chip, base, cascade] :
       {std::tuple{&pic.master_ports(), 0x20, 0x04}, std::tuple{&pic.slave_ports(), 0x28, 0x02}}) {
    out(*chip, 0, 0x11);
    out(*chip, 1, static_cast<std::uint8_t>(base));
    out(*chip, 1, static_cast<std::uint8_t>(cascade));
    out(*chip, 1, 0x01);
    out(*chip, 1, 0x00);
  }
}

// A non-specific EOI to both chips.
void end_of_interrupt(devices::Pic8259Pair& pic) {
  out(pic.slave_ports(), 0, 0x20);
  out(pic.master_ports(), 0, 0x20);
}

std::uint64_t drain(int event) {
  std::uint64_t count = 0;
  if (::read(event, &count, sizeof count) != sizeof count) return 0;
  return count;
}

class VmmRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    initialize(m_pic);
    m_router.connect(m_pic);
    m_router.set_wakeup([this] {
      ++m_wakeups;
      // The vCPU's wake-up runs without the device lock.
      EXPECT_TRUE(m_lock.try_lock());
      m_lock.unlock();
    });
  }

  std::mutex m_lock;
  devices::Pic8259Pair m_pic;
  InterruptRouter m_router{m_lock, nullptr};
  unsigned m_wakeups = 0;
};

TEST_F(VmmRouterTest, LinesReachThe8259AndItIsTheController) {
  ASSERT_NE(m_router.controller(), nullptr);
  EXPECT_FALSE(m_router.controller()->interrupt_pending());
  const IrqLine uart = m_router.line(4);
  uart(true);
  EXPECT_TRUE(m_router.controller()->interrupt_pending());
  EXPECT_EQ(m_router.controller()->acknowledge(), 0x24);
  const IrqLine ata = m_router.line(14);
  ata(true);
  EXPECT_EQ(m_router.controller()->acknowledge(), 0x2e) << "through the slave";
}

TEST_F(VmmRouterTest, WakesTheVcpuOnlyWhenTheOutputRises) {
  m_router.from_device_thread([this] { m_router.line(0)(true); });
  EXPECT_EQ(m_wakeups, 1u);
  m_router.from_device_thread([this] { m_router.line(4)(true); });
  EXPECT_EQ(m_wakeups, 1u) << "already pending: the vCPU was woken for it";
  m_router.from_device_thread([] {});
  EXPECT_EQ(m_wakeups, 1u);
  EXPECT_EQ(m_router.controller()->acknowledge(), 0x20);
  end_of_interrupt(m_pic);
  EXPECT_EQ(m_router.controller()->acknowledge(), 0x24);
  end_of_interrupt(m_pic);
  ASSERT_FALSE(m_router.controller()->interrupt_pending());
  std::unique_lock lock(m_lock);
  m_router.from_device_thread(lock, [this] { m_router.line(5)(true); });
  EXPECT_EQ(m_wakeups, 2u);
  EXPECT_TRUE(lock.owns_lock()) << "held again after the wake-up";
}

TEST_F(VmmRouterTest, PulsesFromADeviceThreadAreEdgesThe8259Latches) {
  EXPECT_FALSE(m_router.use_irqfd(11)) << "no irqfd without KVM's irqchip";
  m_router.pulse_from_device_thread(11);
  EXPECT_EQ(m_wakeups, 1u);
  EXPECT_EQ(m_router.controller()->acknowledge(), 0x2b);
  end_of_interrupt(m_pic);
  m_router.pulse_from_device_thread(11);
  EXPECT_EQ(m_router.controller()->acknowledge(), 0x2b) << "the line was let go: a new edge";
  EXPECT_EQ(m_router.irqfd_signals(11), 0u);
}

TEST_F(VmmRouterTest, EdgeLinesWithoutAnIrqfdAreLines) {
  const IrqLine virtio = m_router.edge_line(5);
  virtio(true);
  EXPECT_EQ(m_router.controller()->acknowledge(), 0x25);
  virtio(false);
  EXPECT_FALSE(m_router.controller()->interrupt_pending());
}

TEST(KernelRouterTest, LinesBecomeKvmIrqLine) {
  std::mutex lock;
  FakeKernelIrqchip kernel;
  InterruptRouter router(lock, &kernel);
  EXPECT_EQ(router.controller(), nullptr) << "KVM delivers the interrupts";
  router.line(4)(true);
  router.line(4)(false);
  EXPECT_EQ(kernel.levels, (std::vector<std::pair<std::uint32_t, bool>>{{4, true}, {4, false}}));
  unsigned wakeups = 0;
  router.set_wakeup([&wakeups] { ++wakeups; });
  router.from_device_thread([&router] { router.line(0)(true); });
  EXPECT_EQ(wakeups, 0u) << "KVM wakes its own vCPU";
}

TEST(KernelRouterTest, EdgesGoThroughTheIrqfd) {
  std::mutex lock;
  FakeKernelIrqchip kernel;
  InterruptRouter router(lock, &kernel);
  ASSERT_TRUE(router.use_irqfd(5));
  EXPECT_TRUE(router.use_irqfd(5)) << "once is enough";
  ASSERT_EQ(kernel.irqfds.size(), 1u);
  const auto [event, line] = kernel.irqfds[0];
  EXPECT_EQ(line, 5u);
  EXPECT_TRUE(router.uses_irqfd(5));
  const IrqLine virtio = router.edge_line(5);
  virtio(true);
  virtio(false);  // the falling edge needs nothing
  virtio(true);
  EXPECT_EQ(drain(event), 2u);
  EXPECT_TRUE(kernel.levels.empty()) << "no KVM_IRQ_LINE for an irqfd line";
  ASSERT_TRUE(router.use_irqfd(11));
  router.pulse_from_device_thread(11);
  EXPECT_EQ(drain(kernel.irqfds[1].first), 1u);
  EXPECT_EQ(router.irqfd_signals(5), 2u);
  EXPECT_EQ(router.irqfd_signals(11), 1u);
  EXPECT_EQ(router.irqfd_signals(4), 0u);
}

TEST(KernelRouterTest, ARefusedIrqfdLeavesTheLine) {
  std::mutex lock;
  FakeKernelIrqchip kernel;
  kernel.refuse_irqfd = true;
  InterruptRouter router(lock, &kernel);
  EXPECT_FALSE(router.use_irqfd(5));
  EXPECT_FALSE(router.uses_irqfd(5));
  router.edge_line(5)(true);
  router.pulse_from_device_thread(11);
  EXPECT_EQ(kernel.levels,
            (std::vector<std::pair<std::uint32_t, bool>>{{5, true}, {11, true}, {11, false}}));
  EXPECT_FALSE(router.use_irqfd(16)) << "ISA lines only";
}

}  // namespace
}  // namespace vmlab
