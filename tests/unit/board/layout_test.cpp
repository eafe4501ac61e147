// The board's layout table: no two users of one port, address, IRQ line or
// memory slot, and the numbers other parts assign themselves as they say.
#include "vmlab/board_layout.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "vmlab/machine.hpp"
#include "vmlab/monitor/monitor_region.hpp"

namespace vmlab::pc {
namespace {

std::string describe(const Collision& collision) {
  return std::string(collision.first->user) + " and " + std::string(collision.second->user);
}

TEST(BoardLayout, NoTwoAssignmentsCollide) {
  const Collision collision = find_collision(kAssignments);
  EXPECT_FALSE(collision) << describe(collision);
}

TEST(BoardLayout, FindsEveryKindOfCollision) {
  const std::vector<std::vector<Assignment>> colliding = {
      {ports("one", {0x70, 2}), ports("two", {0x71, 1})},
      {ports("one", {0x3f8, 8}), ports("two", {0x3f0, 9})},
      {addresses("one", {0xfeb00000, 0x200}), addresses("two", {0xfeb001ff, 0x1000})},
      {irq_line("one", 8), irq_line("two", 8)},
      {memory_slot("one", MemorySlot::ShadowPool, Owner::CpuModes),
       memory_slot("two", MemorySlot::ShadowPool, Owner::Board)},
  };
  for (const auto& table : colliding) {
    const Collision collision = find_collision(table);
    ASSERT_TRUE(collision) << table[0].user;
    EXPECT_EQ(collision.first->user, "one");
    EXPECT_EQ(collision.second->user, "two");
  }
  // Adjacent ranges and the same number of different kinds do not collide.
  const std::vector<Assignment> apart = {ports("debugcon", {0xe9, 1}),
                                         ports("monitor", {0xe8, 1}),
                                         ports("port 0", {0, 1}),
                                         irq_line("line 0", 0),
                                         memory_slot("slot 0", MemorySlot::GuestRam, Owner::Core),
                                         addresses("address 0", {0, 0x1000})};
  EXPECT_FALSE(find_collision(apart));
}

TEST(BoardLayout, RefusesWhatTheMachineCannotHave) {
  for (const Assignment& bad :
       {ports("past 0xffff", {0xfffe, 4}), ports("empty", {0x80, 0}), irq_line("line 16", 16),
        addresses("past 4 GiB", {0xfffff000, 0x2000})}) {
    const Assignment table[] = {bad};
    const Collision collision = find_collision(table);
    ASSERT_TRUE(collision) << bad.user;
    EXPECT_EQ(collision.first, collision.second) << "reported against itself";
  }
}

TEST(BoardLayout, AgreesWithTheMonitorsOwnConstants) {
  EXPECT_EQ(kMonitorRegion.base, monitor::kMonitorPhysicalBase);
  EXPECT_EQ(kMonitorRegion.size, monitor::kMonitorSize);
  EXPECT_EQ(kMonitorPorts.base, monitor::kMonitorPort);
  EXPECT_EQ(kMonitorPorts.count, 1u);
  EXPECT_EQ(kGuestRam.size, kMaximumGuestMemory);
}

TEST(BoardLayout, WindowsAreWholePagesWhereKvmMapsThem) {
  // KVM_SET_USER_MEMORY_REGION takes page-aligned regions; the monitor's and
  // the guest's page tables map device windows by the page.
  for (const AddressRange range : {kPassthroughWindow, kMonitorRegion}) {
    EXPECT_EQ(range.base % kPageSize, 0u);
    EXPECT_EQ(range.size % kPageSize, 0u);
  }
  EXPECT_EQ(kVirtioMmioWindow.base % kPageSize, 0u);
}

TEST(BoardLayout, ListsEveryPortAndLineOnceAndEverySlotInUse) {
  std::set<std::uint64_t> slots;
  for (const Assignment& assignment : kAssignments) {
    if (assignment.kind == ResourceKind::MemorySlot) slots.insert(assignment.base);
  }
  EXPECT_EQ(slots, (std::set<std::uint64_t>{0, 1, 2, 3, 4}));
  // The ISA lines a PC's devices use, where the board has them.
  EXPECT_EQ(kPitIrq, 0u);
  EXPECT_EQ(kUartIrq, 4u);
  EXPECT_EQ(kRtcIrq, 8u);
  EXPECT_EQ(kAtaIrq, 14u);
  EXPECT_EQ(kRtcPorts.base, 0x70);
  EXPECT_EQ(kRtcPorts.count, 2);
}

}  // namespace
}  // namespace vmlab::pc
