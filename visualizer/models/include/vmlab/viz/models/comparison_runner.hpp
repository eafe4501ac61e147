// `vmlab compare` run from the window (Run > Comparison...) as a child
// process: the command line for the user's choices (what the vmlab found
// by find_vmlab_program offers, vmlab_program.hpp), and the run itself: its
// progress line followed, its results file reported when it ends, its
// error output when it fails, and Cancel. QtCore only, so a test drives it
// without a window.
#pragma once

#include <QObject>
#include <QProcess>
#include <QString>
#include <QStringList>
#include <QTimer>
#include <optional>

namespace vmlab::viz {

struct ComparisonRequest {
  QStringList workloads;    // NAME or NAME:N; empty: vmlab's default set
  QStringList cpus;         // empty: every mode built
  QStringList irqchips;     // empty: both
  QStringList disk_models;  // empty: no disk
  QString memory;           // --mem; empty: vmlab's default
  QString timeout_seconds;  // --timeout; empty: vmlab's default
};
// `compare ... --json json_path`, the program's arguments.
QStringList compare_arguments(const ComparisonRequest& request, const QString& json_path);

// What vmlab compare says on stderr after each run when stderr is not a
// terminal: "[3/16] bt: syscalls n=500 ok (0.13 s)".
struct CompareProgress {
  int done = 0;
  int total = 0;
  QString text;  // the line, "[3/16] " and all
};
std::optional<CompareProgress> parse_progress_line(const QString& line);

class ComparisonRunner final : public QObject {
  Q_OBJECT

 public:
  explicit ComparisonRunner(QObject* parent = nullptr);
  // A run under way is ended as cancel() ends it, and waited for.
  ~ComparisonRunner() override;

  // Starts `program compare_arguments(request, json_path)`; false (nothing
  // started) while a run is under way. The end is one of finished(),
  // failed() or cancelled().
  bool start(const QString& program, const ComparisonRequest& request, const QString& json_path);
  // Ends the run with SIGTERM, on which vmlab removes its temporary output
  // and scratch image (remove_temporary_outputs_on_signals); SIGKILL if it
  // has not gone kKillAfterMilliseconds later.
  void cancel();
  bool running() const { return m_process != nullptr; }
  // The running vmlab's process id (0: none), the name of its scratch files.
  qint64 process_id() const { return m_process != nullptr ? m_process->processId() : 0; }
  // The command line of the run under way (or the last), for people.
  QString command_text() const;

  static constexpr int kKillAfterMilliseconds = 5000;

 signals:
  // After each run: `done` of `total` runs, and vmlab's line about it.
  void progress(int done, int total, const QString& line);
  // vmlab wrote `json_path`. Some rows may have failed (vmlab's status is
  // then 70): the file says which and why.
  void finished(const QString& json_path);
  // vmlab did not start, or ended without writing the results: the message
  // says how it ended and carries what it printed on stderr.
  void failed(const QString& message);
  void cancelled();

 private:
  void read_errors();
  void ended(int exit_code, QProcess::ExitStatus status);
  void start_failed();

  QProcess* m_process = nullptr;
  QTimer m_kill_timer;
  QString m_program;
  QStringList m_arguments;
  QString m_json_path;
  QByteArray m_pending;  // stderr bytes after the last full line
  QStringList m_errors;  // stderr lines that are not progress lines
  QString m_last_progress;
  bool m_cancelling = false;
};

}  // namespace vmlab::viz
