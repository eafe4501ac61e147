// vmlab-viz's window: the timeline in the middle, the other views docked
// around it (view_kinds()), all over one TraceDocument so that a range
// selected in the timeline narrows the charts and tables. A trace opens
// from the command line, File > Open or a drop, loading on a worker thread
// behind a progress dialog with a Cancel button; a trace that cannot be
// read opens a message naming the file and line. A comparison (`vmlab
// compare --json`) opens the same ways, told from a trace by what the file
// holds, into the comparison view and its own document; Run >
// Comparison... makes one with the vmlab live runs use. The window's
// layout is remembered (QSettings) from one run to the next.
#pragma once

#include <QMainWindow>
#include <QPointer>
#include <QProgressDialog>
#include <QTemporaryDir>
#include <map>
#include <memory>

#include "vmlab/viz/app/comparison_dialog.hpp"
#include "vmlab/viz/app/render.hpp"
#include "vmlab/viz/app/timeline_view.hpp"
#include "vmlab/viz/app/view.hpp"
#include "vmlab/viz/models/live_run.hpp"
#include "vmlab/viz/models/trace_document.hpp"
#include "vmlab/viz/models/trace_loader.hpp"

namespace vmlab::viz {

class MainWindow final : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // A trace or a comparison, whichever `path` holds (input_file.hpp).
  void open_file(const QString& path);
  // Starts loading `path` (cancelling a load under way).
  void open_trace(const QString& path);
  // Reads `path` into the comparison view; a bad file opens a message
  // naming the field at fault, and the view keeps what it showed.
  void open_comparison(const QString& path);
  // Run > Comparison...: the dialog (shown, not run: tests drive it).
  RunComparisonDialog* run_comparison_dialog();
  // File > Save comparison as...: the open comparison's file, as vmlab
  // wrote it, copied to `path`, which the window then shows as its own
  // (a comparison run from the window lives in a temporary directory).
  Status save_comparison_as(const QString& path);
  bool loading() const { return m_loader->running(); }

  // Starts `program` (vmlab) live with `options` (Run > Live run... asks
  // for them): the document shows its events as they arrive.
  void start_live_run(const QString& program, const LiveRunOptions& options);
  // Run > Stop: ends the live run's guest cleanly.
  void stop_live_run();
  LiveRun& live_run() { return *m_live; }

  TraceDocument& document() { return *m_document; }
  ComparisonDocument& comparison() { return *m_comparison; }
  ViewBase* view(const QString& name) const;
  TimelineView& timeline() const;

 signals:
  void trace_opened(const QString& path);
  void comparison_opened(const QString& path);
  void open_failed(const QString& message);
  // The live run ended (exit status 130 when stopped) or could not start.
  void live_run_finished(int exit_code, const QString& how);
  void live_run_failed(const QString& message);

 protected:
  void closeEvent(QCloseEvent* event) override;
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;

 private:
  void build_menus();
  void choose_file(InputKind kind);
  void choose_comparison_copy();
  void show_error(const QString& title, const QString& message, const QString& hint);
  void export_view(const ViewKind& kind, ImageFormat format);
  void loaded(std::shared_ptr<const TraceModel> trace, const QString& path);
  void failed(std::error_code kind, const QString& message, const QString& path);
  void update_status();
  void restore_layout();
  void choose_live_run();
  void save_live_trace();
  void live_progress(quint64 events, double seconds);
  void update_live_actions();

  TraceDocument* m_document;
  ComparisonDocument* m_comparison;
  ViewLinks* m_links;
  TraceLoader* m_loader;
  LiveRun* m_live;
  LiveRunOptions m_live_options;  // the last live run's, offered again
  bool m_showing_live = false;    // false once a trace was opened over the live run
  QAction* m_start_live = nullptr;
  QAction* m_stop_live = nullptr;
  QAction* m_save_live = nullptr;
  QPointer<QProgressDialog> m_progress;
  QString m_pending;  // a trace to open once the cancelled load has ended
  std::map<QString, ViewBase*> m_views;
  QAction* m_save_comparison = nullptr;
  QPointer<RunComparisonDialog> m_run_dialog;
  // Where the last comparison run from the window wrote its results; they
  // live until the next run or the window's end (File > Save comparison as...).
  std::unique_ptr<QTemporaryDir> m_run_directory;
  std::unique_ptr<QTemporaryDir> m_pending_directory;  // the open dialog's
};

}  // namespace vmlab::viz
