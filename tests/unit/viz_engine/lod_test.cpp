// Level-of-detail queries: the hand-written trace exactly, then random traces
// at every zoom from the whole run to a few nanoseconds, panned across it,
// against the pixel-by-pixel reference.
#include "vmlab/viz/lod.hpp"

#include <gtest/gtest.h>

#include "sample_trace.hpp"
#include "viz_test_support.hpp"

namespace vmlab::viz {
namespace {

using testing::describe;

TEST(Lod, SampleTraceVmmLaneAtTenPixels) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  std::vector<LodItem> items;
  query_lod(model.lane(TimelineLane::Vmm), {0, 10000}, 10, items);
  const SpanLabel io_out = SpanLabel::of(EventKind::VmExit, EventReason::IoOut);
  const std::vector<LodItem> expected = {
      {.start_ns = 1000,
       .end_ns = 2000,
       .busy_ns = 800,
       .spans = 1,
       .dominant = io_out,
       .event = 0},
      {.start_ns = 3000,
       .end_ns = 4000,
       .busy_ns = 500,
       .spans = 1,
       .dominant = io_out,
       .event = 2},
      {.start_ns = 4000,
       .end_ns = 5000,
       .busy_ns = 600,
       .spans = 1,
       .dominant = io_out,
       .event = 4},
      {.start_ns = 6000,
       .end_ns = 7000,
       .busy_ns = 400,
       .spans = 1,
       .dominant = io_out,
       .event = 6},
      // The hlt exit covers two whole pixels: one item.
      {.start_ns = 7000,
       .end_ns = 9000,
       .busy_ns = 2000,
       .spans = 1,
       .dominant = SpanLabel::of(EventKind::VmExit, EventReason::Halt),
       .event = 7},
  };
  ASSERT_EQ(items.size(), expected.size());
  for (std::size_t index = 0; index < expected.size(); ++index)
    EXPECT_EQ(items[index], expected[index]) << index << ": " << describe(items[index]);
}

TEST(Lod, OnePixelSumsTheLaneAndNamesItsDominantLabel) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  std::vector<LodItem> items;
  query_lod(model.lane(TimelineLane::Monitor), {0, 10000}, 1, items);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].busy_ns, 800u);
  EXPECT_EQ(items[0].spans, 3u);
  EXPECT_EQ(items[0].dominant,
            SpanLabel::of(EventKind::MonitorTrap, EventReason::PrivilegedInstruction))
      << "two traps, 500 ns, against the syscall's 300";
  EXPECT_EQ(items[0].event, kNoEvent);
  // Zoomed into the middle of a guest-running span: one item, the span's.
  query_lod(model.lane(TimelineLane::GuestUser), {5000, 5100}, 1920, items);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].start_ns, 5000u);
  EXPECT_EQ(items[0].end_ns, 5100u);
  EXPECT_TRUE(items[0].wholly_busy());
  EXPECT_EQ(items[0].dominant, SpanLabel::guest_running());
  EXPECT_EQ(items[0].event, 6u);
  EXPECT_EQ(items[0].spans, 0u) << "the span started before the view";
  // Nothing in view, and views of no width.
  query_lod(model.lane(TimelineLane::Halted), {0, 7000}, 100, items);
  EXPECT_TRUE(items.empty());
  query_lod(model.lane(TimelineLane::Halted), {0, 10000}, 0, items);
  EXPECT_TRUE(items.empty());
  query_lod(model.lane(TimelineLane::Halted), {9000, 9000}, 10, items);
  EXPECT_TRUE(items.empty());
}

void expect_reference(const TraceModel& model, const testing::Reference& reference, TimeRange view,
                      std::uint32_t width, const std::string& context) {
  std::vector<LodItem> items;
  for (std::size_t lane = 0; lane < kLaneCount; ++lane) {
    const auto which = static_cast<TimelineLane>(lane);
    query_lod(model.lane(which), view, width, items);
    const auto expected = testing::reference_lod(reference, which, view, width);
    EXPECT_LE(items.size(), width);
    ASSERT_EQ(items.size(), expected.size())
        << context << " lane " << lane_name(which) << " view [" << view.start_ns << ", "
        << view.end_ns << ") width " << width;
    for (std::size_t index = 0; index < items.size(); ++index) {
      ASSERT_EQ(items[index], expected[index])
          << context << " lane " << lane_name(which) << " view [" << view.start_ns << ", "
          << view.end_ns << ") width " << width << " item " << index << ": got "
          << describe(items[index]) << ", expected " << describe(expected[index]);
    }
  }
}

TEST(Lod, RandomTracesAtEveryZoomMatchTheReference) {
  for (std::uint64_t seed : {11u, 12u, 13u}) {
    const auto generated = testing::random_events(seed, 1500);
    const TraceModel model = testing::load_text(testing::trace_text(generated));
    const testing::Reference reference = testing::reference_of(testing::time_ordered(generated));
    const TimeRange whole{0, reference.horizon + 1};
    const std::string context = "seed " + std::to_string(seed);
    // 7 pixels hold hundreds of pieces each: the block sums answer them.
    for (std::uint32_t width : {1u, 7u, 1920u})
      expect_reference(model, reference, whole, width, context);
    std::mt19937_64 random(seed);
    for (std::uint64_t length = whole.length() / 2; length >= 4; length /= 3) {
      for (int pan = 0; pan < 3; ++pan) {
        const std::uint64_t start =
            std::uniform_int_distribution<std::uint64_t>(0, whole.length() - length)(random);
        expect_reference(model, reference, {start, start + length}, pan == 0 ? 1920 : 333, context);
      }
    }
    // Past the end, and straddling it.
    expect_reference(model, reference, {whole.end_ns, whole.end_ns + 1000}, 50, context);
    expect_reference(model, reference, {whole.end_ns - 500, whole.end_ns + 500}, 50, context);
  }
}

}  // namespace
}  // namespace vmlab::viz
