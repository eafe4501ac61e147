#include "vmlab/events.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace vmlab {
namespace {

Event exit_event(std::uint64_t time, EventReason reason) {
  Event event;
  event.time_ns = time;
  event.kind = EventKind::VmExit;
  event.reason = reason;
  event.address = 0xe9;
  return event;
}

TEST(EventRecorder, CountsWithoutRing) {
  EventRecorder recorder;
  EXPECT_FALSE(recorder.recording());
  recorder.record(exit_event(1, EventReason::IoOut));
  recorder.record(exit_event(2, EventReason::IoOut));
  recorder.record(exit_event(3, EventReason::Halt));
  EXPECT_EQ(recorder.count(EventKind::VmExit, EventReason::IoOut), 2u);
  EXPECT_EQ(recorder.count(EventKind::VmExit), 3u);
  EXPECT_TRUE(recorder.events().empty());
}

TEST(EventRecorder, RingKeepsNewestInOrder) {
  EventRecorder recorder(3);
  for (std::uint64_t time = 1; time <= 5; ++time)
    recorder.record(exit_event(time, EventReason::IoIn));
  EXPECT_EQ(recorder.recorded(), 5u);
  EXPECT_EQ(recorder.dropped(), 2u);
  auto events = recorder.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].time_ns, 3u);
  EXPECT_EQ(events[2].time_ns, 5u);
}

TEST(EventRecorder, DetailsAreInternedAndCleaned) {
  EventRecorder recorder(4);
  const auto out = recorder.intern("out dx, al");
  EXPECT_NE(out, 0u);
  EXPECT_EQ(recorder.intern("out dx, al"), out) << "stored once";
  EXPECT_EQ(recorder.intern(""), 0u);
  const auto odd = recorder.intern("a\tb\nc");
  EXPECT_EQ(recorder.detail(odd), "a b c") << "tabs and newlines would break the trace";
  EXPECT_EQ(recorder.detail(12345), "");
}

TEST(EventRecorder, TraceFileFormat) {
  EventRecorder recorder(8);
  recorder.record(exit_event(42, EventReason::IoOut));
  std::ostringstream out;
  write_trace(out, recorder, "platform: test", "cpu=hvm workload=hello");
  const std::string text = out.str();
  EXPECT_EQ(text.rfind("# vmlab-trace 2\n# platform: test\n", 0), 0u);
  EXPECT_NE(text.find("42\t0\t0\tvm-exit\tio-out\tunknown\tunknown\t0\t0xe9\t0\t0\t\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace vmlab
