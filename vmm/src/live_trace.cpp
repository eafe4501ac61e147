#include "vmlab/live_trace.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>

namespace vmlab {

namespace {

// Often enough that a viewer's timeline moves smoothly, seldom enough that
// a fast guest's events go out in large writes.
constexpr auto kFlushInterval = std::chrono::milliseconds(20);
constexpr std::size_t kEagerFlush = 256u << 10;

}  // namespace

LiveTraceWriter::LiveTraceWriter(FileDescriptor file, std::string_view platform_line,
                                 std::string_view run_description)
    : m_file(std::move(file)) {
  std::ostringstream preamble;
  write_trace_preamble(preamble, platform_line, run_description);
  write_trace_columns(preamble);
  m_pending = preamble.str();
  m_writer = std::thread([this] { writer_main(); });
}

LiveTraceWriter::~LiveTraceWriter() {
  {
    std::lock_guard lock(m_lock);
    m_closing = true;
  }
  m_wakeup.notify_all();
  if (m_writer.joinable()) m_writer.join();
}

void LiveTraceWriter::observe(const Event& event, std::string_view detail) {
  std::unique_lock lock(m_lock);
  ++m_observed;
  if (m_pending.size() >= kMaximumBuffered || !m_write_error.empty()) {
    ++m_dropped;
    return;
  }
  append_trace_line(m_pending, event, detail);
  ++m_pending_events;
  const bool eager = m_pending.size() >= kEagerFlush;
  lock.unlock();
  if (eager) m_wakeup.notify_one();
}

void LiveTraceWriter::writer_main() {
  // A pipe whose reader has gone raises SIGPIPE in the thread that writes:
  // here it is blocked, so the write fails with EPIPE and only the stream ends.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);

  std::string taking;
  std::unique_lock lock(m_lock);
  while (true) {
    m_wakeup.wait_for(lock, kFlushInterval,
                      [this] { return m_closing || m_pending.size() >= kEagerFlush; });
    const bool closing = m_closing;
    taking.swap(m_pending);
    const std::uint64_t events = std::exchange(m_pending_events, 0);
    lock.unlock();
    const bool written = taking.empty() || write_all(taking);
    taking.clear();
    lock.lock();
    // A batch the file refused is lost with the stream: counted as dropped.
    (written ? m_streamed : m_dropped) += events;
    if (closing || !m_write_error.empty()) break;
  }
}

bool LiveTraceWriter::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(m_file.get(), bytes.data(), bytes.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      const int error = written < 0 ? errno : EIO;
      std::lock_guard lock(m_lock);
      m_write_error = error == EPIPE ? std::string("the reader went away")
                                     : std::string("writing failed: ") + std::strerror(error);
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
  return true;
}

void LiveTraceWriter::finish(const EventRecorder& recorder, std::string_view how_it_ended) {
  {
    std::lock_guard lock(m_lock);
    m_closing = true;
  }
  m_wakeup.notify_all();
  if (m_writer.joinable()) m_writer.join();
  if (!m_write_error.empty()) {
    m_file.reset();
    return;
  }
  // Every event observed is counted; the stream holds those it did not
  // drop, and the reader checks the one against the other.
  std::ostringstream totals;
  write_trace_counts(totals, m_observed, m_observed - m_streamed, "the reader fell behind");
  write_trace_levels(totals, recorder);
  totals << "# end: " << how_it_ended << "\n";
  if (write_all(totals.str())) {
    if (m_file.reset() != 0) m_write_error = std::string("closing failed: ") + std::strerror(errno);
  } else {
    m_file.reset();
  }
}

std::uint64_t LiveTraceWriter::streamed() const {
  std::lock_guard lock(m_lock);
  return m_streamed;
}

std::uint64_t LiveTraceWriter::dropped() const {
  std::lock_guard lock(m_lock);
  return m_dropped;
}

std::string LiveTraceWriter::write_error() const {
  std::lock_guard lock(m_lock);
  return m_write_error;
}

}  // namespace vmlab
