// `vmlab run --live`'s stream over a real pipe: each event's line goes out
// while the run goes on, the totals come at the end, what a slow reader
// cannot take is dropped and counted, and a reader that goes away ends the
// stream, not the process. What comes out reads back as a trace.
#include "vmlab/live_trace.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "vmlab/trace.hpp"

namespace vmlab {
namespace {

struct Pipe {
  Pipe() {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) == 0) {
      read_end = FileDescriptor(ends[0]);
      write_end = FileDescriptor(ends[1]);
    }
  }
  FileDescriptor read_end;
  FileDescriptor write_end;
};

// Reads what arrives within `timeout`, up to the writer's end of file.
std::string read_for(int fd, std::chrono::milliseconds timeout, bool until_end = false) {
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, 10) <= 0) {
      if (!until_end && !text.empty()) break;
      continue;
    }
    char buffer[65536];
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got <= 0) break;
    text.append(buffer, static_cast<std::size_t>(got));
  }
  return text;
}

Result<Trace> read_back(const std::string& text) {
  std::istringstream in(text);
  return read_trace(in);
}

Event trap(std::uint64_t time) {
  return Event{.time_ns = time,
               .duration_ns = 5,
               .guest_rip = 0x401000 + time,
               .address = 13,
               .kind = EventKind::MonitorTrap,
               .reason = EventReason::PrivilegedInstruction,
               .from = PrivilegeLevel::GuestKernel,
               .to = PrivilegeLevel::Monitor};
}

TEST(LiveTraceWriter, SendsEachEventWhileTheRunGoesOnAndTheTotalsAtTheEnd) {
  Pipe pipe;
  ASSERT_TRUE(pipe.read_end.valid());
  LiveTraceWriter writer(std::move(pipe.write_end), "platform: test", "cpu=full workload=hello");
  EventRecorder recorder(0, &writer);
  Event first = trap(100);
  first.detail = recorder.intern("mov cr3, rax");
  recorder.record(first);

  // Before the run ends: the preamble and the first event have arrived.
  const std::string early = read_for(pipe.read_end.get(), std::chrono::seconds(5));
  EXPECT_EQ(early.rfind("# vmlab-trace 2\n# platform: test\n# run: cpu=full workload=hello\n", 0),
            0u)
      << early;
  EXPECT_NE(early.find("\tmonitor-trap\tprivileged-instruction\t"), std::string::npos) << early;
  EXPECT_NE(early.find("\tmov cr3, rax\n"), std::string::npos) << early;
  EXPECT_EQ(early.find("# events:"), std::string::npos) << "the totals come at the end";

  recorder.record(trap(200));
  recorder.add_time(PrivilegeLevel::GuestKernel, 777);
  writer.finish(recorder, "the guest exited with status 0");
  const std::string rest = read_for(pipe.read_end.get(), std::chrono::seconds(5), true);
  EXPECT_NE(rest.find("# events: 2 recorded, 0 dropped"), std::string::npos) << rest;
  EXPECT_NE(rest.find("# end: the guest exited with status 0\n"), std::string::npos) << rest;
  EXPECT_EQ(writer.streamed(), 2u);
  EXPECT_EQ(writer.write_error(), "");

  auto trace = read_back(early + rest);
  ASSERT_TRUE(trace) << trace.error().message;
  ASSERT_EQ(trace->events.size(), 2u);
  EXPECT_FALSE(trace->truncated());
  EXPECT_EQ(trace->events[0].guest_rip, 0x401064u);
  EXPECT_EQ(trace->detail(trace->events[0]), "mov cr3, rax");
  EXPECT_EQ(trace->events[1].time_ns, 200u);
  EXPECT_EQ(trace->level_time_ns[static_cast<std::size_t>(PrivilegeLevel::GuestKernel)], 777u);
}

TEST(LiveTraceWriter, DropsWhatASlowReaderCannotTakeAndSaysHowMany) {
  Pipe pipe;
  ASSERT_TRUE(pipe.read_end.valid());
  LiveTraceWriter writer(std::move(pipe.write_end), "platform: test", "cpu=hvm workload=hello");
  EventRecorder recorder(0, &writer);
  // Nobody reads: the pipe fills, then the writer's buffer, then events drop.
  std::uint64_t time = 0;
  while (writer.dropped() == 0 && time < 10'000'000)
    recorder.record(trap(++time));
  ASSERT_GT(writer.dropped(), 0u) << "the buffer is bounded";
  for (int more = 0; more < 10; ++more)
    recorder.record(trap(++time));

  std::string text;
  std::thread reader([&] { text = read_for(pipe.read_end.get(), std::chrono::seconds(60), true); });
  writer.finish(recorder, "stopped on request after 1.000 s");
  reader.join();
  EXPECT_EQ(writer.streamed() + writer.dropped(), time);

  auto trace = read_back(text);
  ASSERT_TRUE(trace) << trace.error().message;
  EXPECT_EQ(trace->recorded, time);
  EXPECT_EQ(trace->dropped, writer.dropped());
  EXPECT_EQ(trace->events.size(), writer.streamed());
  EXPECT_FALSE(trace->truncated()) << "the stream holds every event it says it does";
}

TEST(LiveTraceWriter, AReaderThatGoesAwayEndsTheStreamNotTheProcess) {
  Pipe pipe;
  ASSERT_TRUE(pipe.read_end.valid());
  LiveTraceWriter writer(std::move(pipe.write_end), "platform: test", "cpu=hvm workload=hello");
  EventRecorder recorder(0, &writer);
  pipe.read_end.reset();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::uint64_t time = 0;
  while (writer.write_error().empty() && std::chrono::steady_clock::now() < deadline) {
    recorder.record(trap(++time));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(writer.write_error(), "the reader went away");
  recorder.record(trap(++time));
  writer.finish(recorder, "the guest exited with status 0");  // and the process is still here
  EXPECT_EQ(writer.streamed() + writer.dropped(), time);
}

}  // namespace
}  // namespace vmlab
