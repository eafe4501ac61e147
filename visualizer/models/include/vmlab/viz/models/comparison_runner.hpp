// `vmlab compare` run from the window (File > Run comparison...) as a child
// process: the vmlab to run (beside vmlab-viz, else on PATH), what it offers
// (its own --help: the workloads, CPU modes, disk models and defaults, so
// the dialog never lists a choice this vmlab does not have), the command
// line for the user's choices, and the run itself: its progress line
// followed, its results file reported when it ends, its error output when
// it fails, and Cancel. QtCore only, so a test drives it without a window.
#pragma once

#include <QObject>
#include <QProcess>
#include <QString>
#include <QStringList>
#include <QTimer>
#include <cstdint>
#include <optional>
#include <vector>

#include "vmlab/result.hpp"

namespace vmlab::viz {

enum class RunnerError {
  kNoVmlab = 1,    // no vmlab program beside vmlab-viz or on PATH
  kNotUnderstood,  // its --help did not say what it offers (another version?)
  kCannotStart,    // the program did not start, or its --help did not finish
};
constexpr const char* error_domain(RunnerError) {
  return "comparison runner";
}
using vmlab::make_error_code;

struct VmlabProgram {
  QString path;
  QString where;  // how it was found, for the dialog: "in the build tree beside vmlab-viz"
};
// The vmlab beside the vmlab-viz in `viz_directory` (where the running
// program is): build/cli/vmlab for build/visualizer/app/vmlab-viz in a build
// tree, bin/vmlab for bin/vmlab-viz once installed; else the first on PATH.
Result<VmlabProgram> find_vmlab(const QString& viz_directory);

struct WorkloadOffer {
  QString name;
  std::uint64_t default_count = 0;  // `vmlab run`'s N
  QString description;
  // In `vmlab compare`'s default set, with this N (its N is sized for a
  // comparison of every mode, often more than run's).
  std::optional<std::uint64_t> compare_count;
};

struct CompareOffer {
  std::vector<WorkloadOffer> workloads;  // in vmlab's order
  QStringList cpus;                      // --cpu: "hvm", "full", "bt", "para"
  QStringList irqchips;                  // --irqchip: "vmm", "kernel"
  QStringList disk_models;               // --disk-model: "ata", "virtio", "passthrough"
  QString default_memory;                // --mem's default: "64M"
  QString default_timeout;               // --timeout's default, in seconds: "60"
};
// From the texts of `vmlab compare --help` and `vmlab run --help` (whose
// table lists every workload).
Result<CompareOffer> parse_compare_offer(const QString& compare_help, const QString& run_help);
// Asks `program` (both --help texts; a second or so).
Result<CompareOffer> ask_compare_offer(const QString& program);

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

VMLAB_ERROR_KINDS(vmlab::viz::RunnerError);
