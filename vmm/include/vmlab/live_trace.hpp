// A trace written while the run goes on (`vmlab run --live FILE`): what
// vmlab-viz's live view reads from a pipe as the guest runs. The stream is
// an ordinary trace file (format 2) in another order: the preamble first,
// each event's line as it happens, and the counts and level times at the end,
// where the reader takes them as well as at the top. A stream cut short (the
// run killed) reads as a trace without its totals.
//
// The vCPU thread only formats the line into a buffer; a thread of the
// writer's own empties it into the file every few milliseconds, so a slow
// reader never holds up the guest. What it cannot keep (more than
// kMaximumBuffered bytes waiting) is dropped and counted, and the totals say
// so. A reader that goes away ends the stream, not the run.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "vmlab/events.hpp"
#include "vmlab/file_descriptor.hpp"

namespace vmlab {

class LiveTraceWriter final : public EventObserver {
 public:
  // Writes the preamble to `file` (a pipe or a file open for writing) and
  // starts the writer thread.
  LiveTraceWriter(FileDescriptor file, std::string_view platform_line,
                  std::string_view run_description);
  ~LiveTraceWriter() override;
  LiveTraceWriter(const LiveTraceWriter&) = delete;
  LiveTraceWriter& operator=(const LiveTraceWriter&) = delete;

  void observe(const Event& event, std::string_view detail) override;

  // After the run: writes what is buffered, then the totals (counts as the
  // recorder has them, with the events this stream dropped) and a last line
  // saying how the run ended; stops the thread and closes the file.
  void finish(const EventRecorder& recorder, std::string_view how_it_ended);

  std::uint64_t streamed() const;  // event lines handed to the file
  std::uint64_t dropped() const;   // events not streamed: the reader fell behind
  // Empty while writing works; else why it stopped ("the reader went away").
  std::string write_error() const;

  static constexpr std::size_t kMaximumBuffered = 32u << 20;

 private:
  void writer_main();
  // Writes all of `bytes`; false (and m_write_error set) if the file refuses.
  bool write_all(std::string_view bytes);

  FileDescriptor m_file;
  mutable std::mutex m_lock;
  std::condition_variable m_wakeup;
  std::string m_pending;  // lines the writer thread has not taken yet
  bool m_closing = false;
  std::uint64_t m_observed = 0;
  std::uint64_t m_dropped = 0;
  std::uint64_t m_pending_events = 0;
  std::uint64_t m_streamed = 0;
  std::string m_write_error;
  std::thread m_writer;
};

}  // namespace vmlab
