// Searches over the hand-written trace: by reason, RIP and detail, in time order.
#include "vmlab/viz/search.hpp"

#include <gtest/gtest.h>

#include "sample_trace.hpp"
#include "viz_test_support.hpp"

namespace vmlab::viz {
namespace {

using Indexes = std::vector<EventIndex>;

TEST(Search, ByReason) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  EXPECT_EQ(find_by_reason(model, EventReason::IoOut), (Indexes{0, 2, 4, 6}));
  auto by_name = find_by_reason(model, "hlt");
  ASSERT_TRUE(by_name.ok()) << by_name.error().message;
  EXPECT_EQ(*by_name, (Indexes{7, 8})) << "the hlt exit and its wait";
  EXPECT_EQ(find_by_reason(model, EventReason::IoOut, {2000, 5000}), (Indexes{2, 4}));
  EXPECT_TRUE(find_by_reason(model, EventReason::MmioRead).empty());
  auto unknown = find_by_reason(model, "io-outt");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind, SearchError::kUnknownReason);
}

TEST(Search, ByRip) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  auto exact = find_by_rip(model, 0xffffff800000306a, 0xffffff800000306a);
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(*exact, (Indexes{2, 4}));
  auto user = find_by_rip(model, 0x400000, 0x4fffff);
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(*user, (Indexes{1, 6})) << "the syscall trap and the user port write";
  auto kernel = find_by_rip(model, 0x100000, 0x1fffff, {0, 5000});
  ASSERT_TRUE(kernel.ok());
  EXPECT_EQ(*kernel, (Indexes{3, 5}));
  auto none = find_by_rip(model, 0, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, (Indexes{8, 9})) << "events without a RIP";
  auto backwards = find_by_rip(model, 0x2000, 0x1000);
  ASSERT_FALSE(backwards.ok());
  EXPECT_EQ(backwards.error().kind, SearchError::kEmptyRipRange);
}

TEST(Search, ByDetail) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  EXPECT_EQ(find_by_detail(model, "iretq", TextMatch::Exact), (Indexes{5}));
  EXPECT_EQ(find_by_detail(model, "dx", TextMatch::Contains), (Indexes{3}));
  EXPECT_TRUE(find_by_detail(model, "dx", TextMatch::Exact).empty());
  EXPECT_EQ(find_by_detail(model, "", TextMatch::Contains), (Indexes{1, 3, 5}));
  EXPECT_TRUE(find_by_detail(model, "IRETQ", TextMatch::Exact).empty());
  EXPECT_EQ(find_by_detail(model, "s", TextMatch::Contains, {1000, 1300}), (Indexes{1}));
}

}  // namespace
}  // namespace vmlab::viz
