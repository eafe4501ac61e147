// The search box's language, and the text a hover shows for an event.
#include "vmlab/viz/models/search_query.hpp"

#include <gtest/gtest.h>

#include "../viz_engine/sample_trace.hpp"
#include "../viz_engine/viz_test_support.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {
namespace {

std::vector<EventIndex> search(const TraceModel& trace, const QString& text) {
  auto query = parse_search_query(text);
  EXPECT_TRUE(query.ok()) << text.toStdString();
  if (!query) return {};
  auto found = run_search(trace, *query);
  EXPECT_TRUE(found.ok());
  return found ? *found : std::vector<EventIndex>{};
}

TEST(SearchQuery, ReasonsRipsRangesAndInstructions) {
  const TraceModel trace = testing::load_text(testing::kSampleTrace);
  EXPECT_EQ(search(trace, "io-out"), (std::vector<EventIndex>{0, 2, 4, 6}));
  EXPECT_EQ(search(trace, "  system-call "), (std::vector<EventIndex>{1}));
  EXPECT_EQ(search(trace, "0x4002a8"), (std::vector<EventIndex>{1}));
  EXPECT_EQ(search(trace, "0X4002A8"), (std::vector<EventIndex>{1}));
  EXPECT_EQ(search(trace, "0x101000 - 0x101fff"), (std::vector<EventIndex>{3, 7}));
  EXPECT_EQ(search(trace, "iretq"), (std::vector<EventIndex>{5}));
  EXPECT_EQ(search(trace, "out dx"), (std::vector<EventIndex>{3}));
  EXPECT_TRUE(search(trace, "wrmsr").empty());

  EXPECT_EQ(parse_search_query("io-out")->description(), "reason io-out");
  EXPECT_EQ(parse_search_query("0x10-0x20")->description(), "guest RIP 0x10 to 0x20");
  EXPECT_EQ(parse_search_query("iretq")->description(), "instruction holding 'iretq'");

  EXPECT_EQ(parse_search_query("   ").error().kind, SearchQueryError::kEmpty);
  EXPECT_EQ(parse_search_query("0xgg").error().kind, SearchQueryError::kBadAddress);
  EXPECT_EQ(parse_search_query("0x10-").error().kind, SearchQueryError::kBadAddress);
  auto backwards = parse_search_query("0x20-0x10");
  ASSERT_TRUE(backwards.ok());
  EXPECT_EQ(run_search(trace, *backwards).error().kind, SearchError::kEmptyRipRange);
}

TEST(EventDescription, WhatAHoverSays) {
  const TraceModel trace = testing::load_text(testing::kSampleTrace);
  const QString exit = event_description(trace, 0);
  EXPECT_TRUE(exit.startsWith("vm-exit io-out 0xe8\n")) << exit.toStdString();
  EXPECT_TRUE(exit.contains("at 1.000 µs, lasting 800 ns"));
  EXPECT_TRUE(exit.contains("from guest-user"));
  EXPECT_TRUE(exit.contains("port 0xe8, 1 byte(s), value 0x3"));
  EXPECT_TRUE(exit.contains("guest RIP 0xffffff8000003072"));
  const QString trap = event_description(trace, 5);
  EXPECT_TRUE(trap.contains("vector 0xb, guest-kernel -> guest-user")) << trap.toStdString();
  EXPECT_TRUE(trap.contains("instruction: iretq"));
  EXPECT_TRUE(event_description(trace, 9).contains("vector 0x20 into guest-kernel"));
  EXPECT_TRUE(event_description(trace, 8).contains("asleep in hlt"));

  EXPECT_EQ(lane_of_event(trace.events(), 0), TimelineLane::Vmm);
  EXPECT_EQ(lane_of_event(trace.events(), 1), TimelineLane::Monitor);
  EXPECT_EQ(lane_of_event(trace.events(), 8), TimelineLane::Halted);
  EXPECT_EQ(lane_of_event(trace.events(), 9), TimelineLane::GuestKernel);
  EXPECT_EQ(duration_text(850), "850 ns");
  EXPECT_EQ(duration_text(12'345), "12.3 µs");
  EXPECT_EQ(duration_text(4'560'000), "4.56 ms");
  EXPECT_EQ(duration_text(1'230'000'000), "1.23 s");
}

}  // namespace
}  // namespace vmlab::viz
