// Loading: the trace reader's errors, a malformed line named, progress and
// cancelling, events put in time order with every field kept.
#include "vmlab/viz/trace_model.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdio>
#include <fstream>

#include "sample_trace.hpp"
#include "viz_test_support.hpp"

namespace vmlab::viz {
namespace {

Result<TraceModel> load_string(const std::string& text, const LoadProgressCallback& progress = {}) {
  std::istringstream in(text);
  return TraceModel::load(in, text.size(), progress);
}

TEST(Load, AMalformedLineIsNamedByItsNumber) {
  std::string text = testing::kSampleTrace;
  // Line 10 is the fourth event, a VM exit: give it a kind no trace has.
  const std::size_t line_ten = [&] {
    std::size_t start = 0;
    for (int line = 1; line < 10; ++line)
      start = text.find('\n', start) + 1;
    return start;
  }();
  ASSERT_EQ(text.find("vm-exit", line_ten), text.find('\t', text.find('\t', line_ten) + 1) + 3);
  text.replace(text.find("vm-exit", line_ten), 7, "vm-exot");
  auto model = load_string(text);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.error().kind, TraceError::kMalformedLine);
  EXPECT_NE(model.error().message.find("line 10"), std::string::npos) << model.error().message;

  auto fields = load_string(testing::trace_header(1) + "1\t2\t0\tvm-exit\n");
  ASSERT_FALSE(fields.ok());
  EXPECT_EQ(fields.error().kind, TraceError::kMalformedLine);
  EXPECT_NE(fields.error().message.find("line 7"), std::string::npos) << fields.error().message;
}

TEST(Load, TheReadersOtherErrors) {
  EXPECT_EQ(load_string("").error().kind, TraceError::kNotATrace);
  EXPECT_EQ(load_string("# vmlab-trace 7\n").error().kind, TraceError::kUnsupportedVersion);
  EXPECT_EQ(load_string("# vmlab-tra").error().kind, TraceError::kTruncated);
  const std::string two =
      testing::kSampleTrace + testing::kSampleTrace.substr(testing::kSampleTrace.find("1200\t300"));
  EXPECT_EQ(load_string(two).error().kind, TraceError::kTooManyEvents);
  auto missing = TraceModel::load_file("/nonexistent/vmlab.trace");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, TraceError::kUnreadable);
  EXPECT_EQ(missing.error().system_errno, ENOENT);
}

TEST(Load, AFileNamesItselfInItsErrors) {
  const std::string path = ::testing::TempDir() + "vmlab-viz-load-" + std::to_string(::getpid());
  {
    std::ofstream file(path);
    file << testing::trace_header(1) << "1\t2\t0\tvm-exit\tio-in\tvmm\tvmm\t0\t0\t1\tzero\t\n";
  }
  auto model = TraceModel::load_file(path);
  std::remove(path.c_str());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.error().kind, TraceError::kMalformedLine);
  EXPECT_EQ(model.error().message.rfind(path + ": trace line 7", 0), 0u) << model.error().message;
}

TEST(Load, EventsInTimeOrderWithEveryField) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  const EventStore& events = model.events();
  ASSERT_EQ(events.size(), 10u);
  for (EventIndex index = 1; index < events.size(); ++index)
    EXPECT_LE(events.time_ns(index - 1), events.time_ns(index));
  // The syscall trap, second in time, first in the file.
  const Event trap = events.event(1);
  EXPECT_EQ(trap.time_ns, 1200u);
  EXPECT_EQ(trap.duration_ns, 300u);
  EXPECT_EQ(trap.kind, EventKind::MonitorTrap);
  EXPECT_EQ(trap.reason, EventReason::SystemCall);
  EXPECT_EQ(trap.from, PrivilegeLevel::GuestUser);
  EXPECT_EQ(trap.to, PrivilegeLevel::GuestKernel);
  EXPECT_EQ(trap.guest_rip, 0x4002a8u);
  EXPECT_EQ(trap.value, 0x4002a8u);
  EXPECT_EQ(trap.size, 1u);
  EXPECT_EQ(model.detail(1), "syscall");
  const Event port = events.event(6);
  EXPECT_EQ(port.address, 0x3f8u);
  EXPECT_EQ(port.value, 0x41u);
  EXPECT_EQ(model.detail(6), "");
  EXPECT_EQ(model.info().platform_line, "platform: test backend on test CPU");
  EXPECT_EQ(model.info().halted_ns, 1500u);
  EXPECT_FALSE(model.truncated());
  EXPECT_GE(model.memory_bytes(), 10 * 54u) << "54 bytes of columns an event, at least";
}

TEST(Load, ATraceFarOutOfOrderIsSortedStably) {
  // Later events first: more than the insertion sort's reach apart.
  std::string text = testing::trace_header(300);
  for (int index = 299; index >= 0; --index) {
    text += testing::event_line({.time_ns = static_cast<std::uint64_t>(index / 2) * 10,
                                 .value = static_cast<std::uint64_t>(index),
                                 .kind = EventKind::VmExit,
                                 .reason = EventReason::IoOut,
                                 .from = PrivilegeLevel::GuestKernel,
                                 .to = PrivilegeLevel::Vmm});
  }
  const TraceModel model = testing::load_text(text);
  ASSERT_EQ(model.events().size(), 300u);
  for (EventIndex index = 0; index < 300; index += 2) {
    EXPECT_EQ(model.events().time_ns(index), index / 2 * 10);
    // Equal times keep the file's order: the larger value came first.
    EXPECT_EQ(model.events().value(index), index + 1u);
    EXPECT_EQ(model.events().value(index + 1), index + 0u);
  }
}

TEST(Load, ReportsProgressAndCancels) {
  const std::string text = testing::trace_text(testing::random_events(7, 30000));
  std::vector<LoadProgress> reports;
  auto model = load_string(text, [&](const LoadProgress& progress) {
    reports.push_back(progress);
    return true;
  });
  ASSERT_TRUE(model.ok()) << model.error().message;
  ASSERT_GT(reports.size(), 3u);
  double previous = 0;
  bool read_bytes = false;
  for (const auto& report : reports) {
    EXPECT_GE(report.fraction(), previous);
    EXPECT_LE(report.fraction(), 1.0);
    previous = report.fraction();
    read_bytes = read_bytes || (report.phase == LoadProgress::Phase::Reading &&
                                report.total == text.size() && report.done > 0);
  }
  EXPECT_TRUE(read_bytes);
  EXPECT_EQ(reports.back().phase, LoadProgress::Phase::Building);
  EXPECT_DOUBLE_EQ(reports.back().fraction(), 1.0);

  for (const auto phase : {LoadProgress::Phase::Reading, LoadProgress::Phase::Ordering,
                           LoadProgress::Phase::Building}) {
    auto cancelled =
        load_string(text, [&](const LoadProgress& progress) { return progress.phase != phase; });
    ASSERT_FALSE(cancelled.ok());
    EXPECT_EQ(cancelled.error().kind, TraceError::kCancelled);
  }
}

TEST(Load, FromATraceAlreadyRead) {
  std::istringstream in(testing::kSampleTrace);
  auto trace = read_trace(in);
  ASSERT_TRUE(trace.ok());
  const TraceModel model = TraceModel::from_trace(*trace);
  EXPECT_EQ(model.events().size(), 10u);
  EXPECT_EQ(model.levels().transitions().size(), 11u);
  EXPECT_EQ(model.detail(5), "iretq");
}

}  // namespace
}  // namespace vmlab::viz
