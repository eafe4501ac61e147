// A run vmlab-viz starts and watches while it goes (the live view): it
// makes a FIFO in a directory of its own, starts `vmlab run --live FIFO`,
// and reads the FIFO without blocking from a timer on its thread, parsing
// each line as it arrives (TraceLineReader). A few times a second, on a
// worker thread, it builds a TraceModel of the events so far and hands it
// out (snapshot()): the window shows that as it shows a trace it opened, so
// the timeline and the counters grow while the guest runs.
//
// stop() sends vmlab SIGTERM, which ends the guest cleanly: the stream's last
// lines arrive, then finished(). Everything read is also kept as a trace
// file (trace_path()), which can be saved once the run is over.
#pragma once

#include <QObject>
#include <QProcess>
#include <QString>
#include <QStringList>
#include <QTemporaryDir>
#include <QTimer>
#include <memory>
#include <optional>
#include <vector>

#include "vmlab/file_descriptor.hpp"
#include "vmlab/trace.hpp"
#include "vmlab/viz/trace_model.hpp"

class QFile;
class QThread;

namespace vmlab::viz {

struct LiveRunOptions {
  QString cpu = QStringLiteral("hvm");
  QString workload = QStringLiteral("syscalls");
  std::optional<std::uint64_t> count;  // the workload's own when empty
  QString irqchip;                     // empty: vmlab's default
  bool umip = false;
  QString disk_path;  // empty: no disk
  QString disk_model;
  double timeout_seconds = 600;
  // `vmlab run`'s arguments for these, without --live.
  QStringList arguments() const;
  // "cpu=full workload=syscalls n=1000", for titles.
  QString description() const;
};

class LiveRun final : public QObject {
  Q_OBJECT

 public:
  explicit LiveRun(QObject* parent = nullptr);
  ~LiveRun() override;  // kills a run still going and waits for it

  // Starts `program` (find_vmlab_program) with `options`; false, with
  // failed() emitted, if it cannot (a run is going, no FIFO could be made).
  bool start(const QString& program, const LiveRunOptions& options);
  // Ends the run cleanly (SIGTERM: vmlab stops the guest, writes its
  // totals and exits 130); if it has not ended within a few seconds, kills it.
  void stop();
  bool running() const { return m_process != nullptr; }

  std::uint64_t events() const { return m_events.size(); }
  // Events past kMaximumEvents: read (and kept in trace_path()) but not
  // shown, so a long run cannot exhaust the window's memory.
  std::uint64_t unshown() const { return m_unshown; }
  QString trace_path() const;
  // vmlab's summary (its standard output) and its complaints, once finished.
  const QString& summary() const { return m_summary; }
  const QString& errors() const { return m_errors; }

  // How often snapshots are built while events arrive.
  static constexpr int kSnapshotIntervalMs = 250;
  // About 300 MB shown (the events and their timeline); a million events
  // open in well under a second.
  static constexpr std::size_t kMaximumEvents = 2'000'000;
  // Another bound, for the next start() (tests).
  void set_maximum_events(std::size_t maximum) { m_maximum_events = maximum; }
  std::size_t maximum_events() const { return m_maximum_events; }

 signals:
  // The events so far, built off this thread; the last one comes before
  // finished() and holds every event of the run.
  void snapshot(std::shared_ptr<const vmlab::viz::TraceModel> trace);
  // Now and then: events read, seconds since the start.
  void progress(quint64 events, double seconds);
  // vmlab exited: its exit status (130 when stopped), or -1 if it crashed.
  void finished(int exit_code, const QString& how);
  // It could not be started, its stream could not be read, or vmlab
  // refused the run (its message); no finished() follows.
  void failed(const QString& message);

 private:
  void poll();
  void consume(const char* bytes, std::size_t size);
  void build_snapshot();
  void snapshot_built();
  void process_finished(int exit_code, QProcess::ExitStatus status);
  void end_with_failure(const QString& message);
  void maybe_finish();

  QTemporaryDir* m_directory = nullptr;
  FileDescriptor m_fifo;
  QFile* m_copy = nullptr;
  QProcess* m_process = nullptr;
  QTimer m_poll;
  QTimer m_kill_timer;
  std::unique_ptr<TraceLineReader> m_reader;
  std::string m_partial;  // a line not yet ended
  std::vector<Event> m_events;
  std::uint64_t m_unshown = 0;
  std::size_t m_maximum_events = kMaximumEvents;
  bool m_stream_ended = false;
  bool m_failed = false;
  std::uint64_t m_snapshot_events = 0;  // events in the last snapshot started
  QThread* m_builder = nullptr;
  std::shared_ptr<const TraceModel> m_built;
  qint64 m_started_ms = 0;
  qint64 m_last_snapshot_ms = 0;
  std::optional<int> m_exit_code;
  QString m_exit_how;
  QString m_summary;
  QString m_errors;
};

}  // namespace vmlab::viz
