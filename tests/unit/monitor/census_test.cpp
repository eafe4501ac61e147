// The monitor's instruction counter: one instruction per step, by virtual
// mode; a repeated string instruction's iterations (each a step, RIP still
// at the instruction) are one instruction.
#include "vmlab/monitor/census.hpp"

#include <gtest/gtest.h>

namespace vmlab::monitor {
namespace {

TEST(InstructionCounter, CountsEachStepByMode) {
  InstructionCounter counter;
  counter.count(0, 0x1000);
  counter.count(0, 0x1003);
  counter.count(3, 0x400000);
  EXPECT_EQ(counter.counts().kernel_steps, 2u);
  EXPECT_EQ(counter.counts().user_steps, 1u);
  EXPECT_EQ(counter.counts().translated_steps, 0u);
  EXPECT_TRUE(counter.counts().user_mode_counted);
}

TEST(InstructionCounter, ARepeatedStringInstructionIsOneInstruction) {
  InstructionCounter counter;
  counter.count(0, 0x2000);  // stepped onto `rep stosq` at 0x2000
  for (int iteration = 0; iteration < 511; ++iteration)
    counter.count(0, 0x2000);  // an iteration: RIP stays
  counter.count(0, 0x2003);    // the last iteration: it retired
  EXPECT_EQ(counter.counts().kernel_steps, 2u);
}

TEST(InstructionCounter, ALoopBackToTheSameAddressCountsEachTime) {
  InstructionCounter counter;
  // A two-instruction loop passes through both addresses every round.
  for (int round = 0; round < 10; ++round) {
    counter.count(3, 0x3002);
    counter.count(3, 0x3000);
  }
  EXPECT_EQ(counter.counts().user_steps, 20u);
}

}  // namespace
}  // namespace vmlab::monitor
