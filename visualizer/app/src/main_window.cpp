#include "vmlab/viz/app/main_window.hpp"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QSaveFile>
#include <QSettings>
#include <QStatusBar>
#include <map>

#include "vmlab/trace.hpp"
#include "vmlab/viz/app/live_run_dialog.hpp"
#include "vmlab/viz/app/output_file.hpp"
#include "vmlab/viz/models/text.hpp"
#include "vmlab/viz/models/vmlab_program.hpp"

namespace vmlab::viz {

namespace {

QSettings settings() {
  return QSettings(QStringLiteral("vmlab"), QStringLiteral("vmlab-viz"));
}

const char* const kKeysHelp =
    "Timeline:\n"
    "  wheel, + and -     zoom around the pointer (or the middle)\n"
    "  drag, arrow keys   pan\n"
    "  shift-drag         select a time range: the charts and tables follow it\n"
    "  shift-click, Esc   clear the selection\n"
    "  Home or 0          the whole run\n"
    "  hover              what the span under the pointer was\n"
    "Find (above the timeline): a reason (io-out), a guest RIP (0x101020),\n"
    "  a RIP range (0x100000-0x100fff) or an instruction (iretq); Enter jumps\n"
    "  to the next match, Shift+Enter to the previous.\n"
    "Clicking a bar of the reasons chart, a costly RIP or a trap cause finds\n"
    "its events; activating a row of the event list shows it in the timeline.";

}  // namespace

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent),
      m_document(new TraceDocument(this)),
      m_comparison(new ComparisonDocument(this)),
      m_links(new ViewLinks(this)),
      m_loader(new TraceLoader(this)),
      m_live(new LiveRun(this)) {
  setWindowTitle(tr("vmlab-viz"));
  setAcceptDrops(true);
  setDockNestingEnabled(true);
  const auto& kinds = view_kinds();
  for (std::size_t index = 0; index < kinds.size(); ++index) {
    const ViewKind& kind = kinds[index];
    ViewBase* view = create_view(kind, {*m_document, *m_links, *m_comparison}, this);
    view->setObjectName(kind.name);
    m_views[kind.name] = view;
    if (index == 0) {
      setCentralWidget(view);
      continue;
    }
    auto* dock = new QDockWidget(kind.title, this);
    dock->setObjectName(kind.name + QStringLiteral("-dock"));
    dock->setWidget(view);
    addDockWidget(kind.area, dock);
  }
  // Docks that share an area share one place, as tabs, the first of them in
  // front: the reasons chart beside the graphs, the event list below.
  std::map<Qt::DockWidgetArea, std::pair<QDockWidget*, QDockWidget*>> first_and_last;
  for (QDockWidget* dock : findChildren<QDockWidget*>()) {
    auto& [first, last] = first_and_last[dockWidgetArea(dock)];
    if (last != nullptr) tabifyDockWidget(last, dock);
    if (first == nullptr) first = dock;
    last = dock;
  }
  for (const auto& [area, docks] : first_and_last)
    docks.first->raise();
  build_menus();
  connect(m_loader, &TraceLoader::progress, this, [this](int permille) {
    if (m_progress) m_progress->setValue(permille);
  });
  connect(m_loader, &TraceLoader::loaded, this, &MainWindow::loaded);
  connect(m_loader, &TraceLoader::failed, this, &MainWindow::failed);
  connect(m_live, &LiveRun::snapshot, this, [this](std::shared_ptr<const TraceModel> trace) {
    if (!m_showing_live) return;
    m_document->set_trace(std::move(trace), m_live->trace_path());
    setWindowTitle(tr("live: %1 - vmlab-viz").arg(m_live_options.description()));
  });
  connect(m_live, &LiveRun::progress, this, &MainWindow::live_progress);
  connect(m_live, &LiveRun::finished, this, [this](int exit_code, const QString& how) {
    update_live_actions();
    QString shown = tr("%1 events").arg(m_live->events());
    if (m_live->unshown() != 0) {
      shown += tr(", %1 more not shown (the trace saved has them)").arg(m_live->unshown());
    }
    statusBar()->showMessage(tr("Live run ended: %1 (%2; vmlab exited with %3). "
                                "Run > Save the live trace keeps it.")
                                 .arg(how.isEmpty() ? tr("vmlab exited") : how, shown)
                                 .arg(exit_code));
    emit live_run_finished(exit_code, how);
  });
  connect(m_live, &LiveRun::failed, this, [this](const QString& message) {
    update_live_actions();
    auto* box = new QMessageBox(QMessageBox::Critical, tr("The live run failed"), message,
                                QMessageBox::Ok, this);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
    statusBar()->showMessage(message);
    emit live_run_failed(message);
  });
  connect(m_document, &TraceDocument::range_changed, this, &MainWindow::update_status);
  connect(&timeline().canvas(), &TimelineCanvas::view_changed, this, &MainWindow::update_status);
  resize(1500, 950);
  restore_layout();
  update_status();
}

MainWindow::~MainWindow() = default;

ViewBase* MainWindow::view(const QString& name) const {
  const auto found = m_views.find(name);
  return found == m_views.end() ? nullptr : found->second;
}

TimelineView& MainWindow::timeline() const {
  return *static_cast<TimelineView*>(m_views.at(QStringLiteral("timeline")));
}

void MainWindow::build_menus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&Open trace..."), QKeySequence::Open, this,
                  [this] { choose_file(InputKind::Trace); });
  file->addAction(tr("Open &comparison..."), this, [this] { choose_file(InputKind::Comparison); });
  m_save_comparison =
      file->addAction(tr("&Save comparison as..."), this, &MainWindow::choose_comparison_copy);
  m_save_comparison->setEnabled(false);
  file->addSeparator();
  QMenu* export_menu = file->addMenu(tr("&Export view"));
  for (const ViewKind& kind : view_kinds()) {
    export_menu->addAction(tr("%1 as PNG...").arg(kind.title), this,
                           [this, &kind] { export_view(kind, ImageFormat::Png); });
    export_menu->addAction(tr("%1 as SVG...").arg(kind.title), this,
                           [this, &kind] { export_view(kind, ImageFormat::Svg); });
  }
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);

  QMenu* view = menuBar()->addMenu(tr("&View"));
  TimelineCanvas& canvas = timeline().canvas();
  view->addAction(tr("Zoom &in"), QKeySequence::ZoomIn, &canvas, [&canvas] { canvas.zoom(1.5); });
  view->addAction(tr("Zoom &out"), QKeySequence::ZoomOut, &canvas,
                  [&canvas] { canvas.zoom(1 / 1.5); });
  view->addAction(tr("&Whole run"), &canvas, &TimelineCanvas::show_whole_run);
  view->addAction(tr("&Clear selection"), m_document, &TraceDocument::clear_range);
  view->addSeparator();
  for (QDockWidget* dock : findChildren<QDockWidget*>())
    view->addAction(dock->toggleViewAction());

  QMenu* run = menuBar()->addMenu(tr("&Run"));
  m_start_live = run->addAction(tr("&Live run..."), QKeySequence(Qt::CTRL | Qt::Key_R), this,
                                &MainWindow::choose_live_run);
  m_stop_live = run->addAction(tr("&Stop"), QKeySequence(Qt::CTRL | Qt::Key_Period), this,
                               &MainWindow::stop_live_run);
  m_save_live = run->addAction(tr("Save the live &trace..."), this, &MainWindow::save_live_trace);
  run->addSeparator();
  run->addAction(tr("&Comparison..."), this, &MainWindow::run_comparison_dialog);
  update_live_actions();

  QMenu* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&Keys and mouse"), this, [this] {
    QMessageBox::information(this, tr("vmlab-viz: keys and mouse"), tr(kKeysHelp));
  });
  help->addAction(tr("&About vmlab-viz"), this, [this] {
    QMessageBox::about(this, tr("About vmlab-viz"),
                       tr("vmlab-viz shows the VM exits, monitor traps and changes of privilege "
                          "level a vmlab run recorded (vmlab run --trace FILE), and compares "
                          "the techniques side by side (vmlab compare --json FILE)."));
  });
}

void MainWindow::choose_file(InputKind kind) {
  QSettings stored = settings();
  const bool trace = kind == InputKind::Trace;
  const QString path = QFileDialog::getOpenFileName(
      this, trace ? tr("Open a vmlab trace") : tr("Open a vmlab comparison"),
      stored.value(QStringLiteral("files/directory")).toString(),
      trace ? tr("vmlab traces (*.trace *.tsv);;All files (*)")
            : tr("vmlab compare --json results (*.json);;All files (*)"));
  if (path.isEmpty()) return;
  stored.setValue(QStringLiteral("files/directory"), QFileInfo(path).absolutePath());
  // What the file holds decides, whichever menu item chose it.
  open_file(path);
}

void MainWindow::open_file(const QString& path) {
  if (input_kind_of_file(path) == InputKind::Comparison) {
    open_comparison(path);
  } else {
    open_trace(path);
  }
}

void MainWindow::show_error(const QString& title, const QString& message, const QString& hint) {
  // Not exec(): the window keeps running (and a test can read the box).
  auto* box = new QMessageBox(QMessageBox::Critical, title, message, QMessageBox::Ok, this);
  box->setInformativeText(hint);
  box->setAttribute(Qt::WA_DeleteOnClose);
  box->open();
  statusBar()->showMessage(message);
}

void MainWindow::open_comparison(const QString& path) {
  if (const Status loaded = m_comparison->load_file(path); !loaded) {
    const QString message = QString::fromStdString(loaded.error().message);
    show_error(tr("Cannot open the comparison"), message,
               tr("vmlab compare --json FILE writes a comparison vmlab-viz reads."));
    emit open_failed(message);
    return;
  }
  setWindowTitle(tr("%1 - vmlab-viz").arg(QFileInfo(path).fileName()));
  m_save_comparison->setEnabled(true);
  if (auto* dock = findChild<QDockWidget*>(QStringLiteral("comparison-dock"))) {
    dock->show();
    dock->raise();
    // The charts need room: most of the window's height.
    resizeDocks({dock}, {height() * 3 / 5}, Qt::Vertical);
  }
  const ComparisonResults& results = m_comparison->results();
  statusBar()->showMessage(tr("%1: %2 runs (%3)")
                               .arg(QFileInfo(path).fileName())
                               .arg(results.rows.size())
                               .arg(QString::fromStdString(results.platform_line)));
  emit comparison_opened(path);
}

RunComparisonDialog* MainWindow::run_comparison_dialog() {
  if (m_run_dialog) {
    m_run_dialog->show();
    m_run_dialog->raise();
    return m_run_dialog;
  }
  auto directory = std::make_unique<QTemporaryDir>(QDir::tempPath() +
                                                   QStringLiteral("/vmlab-viz-compare-XXXXXX"));
  if (!directory->isValid()) {
    show_error(tr("Cannot run a comparison"),
               tr("cannot make a directory for its results: %1").arg(directory->errorString()),
               tr("vmlab-viz writes them to the temporary directory (TMPDIR)."));
    return nullptr;
  }
  auto* dialog = new RunComparisonDialog(
      find_vmlab_program(), directory->filePath(QStringLiteral("comparison.json")), this);
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  m_pending_directory = std::move(directory);
  connect(dialog, &RunComparisonDialog::results_ready, this, [this](const QString& path) {
    // These results are the window's now; the last run's go.
    m_run_directory = std::move(m_pending_directory);
    open_comparison(path);
  });
  connect(dialog, &QObject::destroyed, this, [this] { m_pending_directory.reset(); });
  m_run_dialog = dialog;
  dialog->show();
  return dialog;
}

void MainWindow::choose_comparison_copy() {
  if (!m_comparison->has_results()) return;
  QSettings stored = settings();
  const QString suggested = stored.value(QStringLiteral("files/directory")).toString() +
                            QStringLiteral("/") + QFileInfo(m_comparison->path()).fileName();
  const QString path =
      QFileDialog::getSaveFileName(this, tr("Save the comparison"), suggested,
                                   tr("vmlab compare --json results (*.json);;All files (*)"));
  if (path.isEmpty()) return;
  stored.setValue(QStringLiteral("files/directory"), QFileInfo(path).absolutePath());
  if (const Status saved = save_comparison_as(path); !saved) {
    QMessageBox::warning(this, tr("Cannot save"), QString::fromStdString(saved.error().message));
  }
}

Status MainWindow::save_comparison_as(const QString& path) {
  if (!m_comparison->has_results()) {
    return Error{VizError::kUsage, "there is no comparison open to save"};
  }
  // The file as vmlab wrote it, so that vmlab-viz and scripts read it again.
  QFile source(m_comparison->path());
  if (!source.open(QIODevice::ReadOnly)) {
    return Error{
        VizError::kOutputUnwritable,
        tr("cannot read %1: %2").arg(source.fileName(), source.errorString()).toStdString()};
  }
  const QByteArray contents = source.readAll();
  QSaveFile target(path);
  if (!target.open(QIODevice::WriteOnly) || target.write(contents) != contents.size() ||
      !target.commit()) {
    return Error{VizError::kOutputUnwritable,
                 tr("cannot write %1: %2").arg(path, target.errorString()).toStdString()};
  }
  m_comparison->set_results(m_comparison->results(), path);
  setWindowTitle(tr("%1 - vmlab-viz").arg(QFileInfo(path).fileName()));
  statusBar()->showMessage(tr("Saved the comparison to %1").arg(path), 5000);
  return {};
}

void MainWindow::open_trace(const QString& path) {
  // A trace opened over a live run replaces it in the window; the run goes
  // on (Run > Stop ends it).
  m_showing_live = false;
  if (m_loader->running()) {
    // One load at a time: this one starts when the last has stopped.
    m_pending = path;
    m_loader->cancel();
    return;
  }
  m_loader->start(path);
  if (m_progress) m_progress->deleteLater();
  m_progress = new QProgressDialog(tr("Loading %1...").arg(QFileInfo(path).fileName()),
                                   tr("Cancel"), 0, 1000, this);
  m_progress->setWindowTitle(tr("vmlab-viz"));
  m_progress->setWindowModality(Qt::WindowModal);
  // A small trace loads before the dialog would show.
  m_progress->setMinimumDuration(400);
  m_progress->setAutoClose(false);
  m_progress->setAutoReset(false);
  connect(m_progress, &QProgressDialog::canceled, m_loader, &TraceLoader::cancel);
  statusBar()->showMessage(tr("Loading %1...").arg(path));
}

void MainWindow::loaded(std::shared_ptr<const TraceModel> trace, const QString& path) {
  if (m_progress) m_progress->deleteLater();
  if (!m_pending.isEmpty()) {
    open_trace(std::exchange(m_pending, QString()));
    return;
  }
  m_document->set_trace(std::move(trace), path);
  setWindowTitle(tr("%1 - vmlab-viz").arg(QFileInfo(path).fileName()));
  if (m_document->trace()->truncated()) {
    statusBar()->showMessage(QString::fromStdString(m_document->trace()->truncation_message()));
  }
  update_status();
  emit trace_opened(path);
}

void MainWindow::failed(std::error_code kind, const QString& message, const QString& path) {
  if (m_progress) m_progress->deleteLater();
  if (!m_pending.isEmpty()) {
    open_trace(std::exchange(m_pending, QString()));
    return;
  }
  if (kind == TraceError::kCancelled) {
    statusBar()->showMessage(tr("Loading %1 was cancelled.").arg(path), 5000);
    emit open_failed(message);
    return;
  }
  show_error(tr("Cannot open the trace"), message,
             tr("vmlab run --trace FILE writes a trace vmlab-viz reads."));
  emit open_failed(message);
}

void MainWindow::update_status() {
  const TraceModel* trace = m_document->trace();
  if (trace == nullptr) return;
  // While a live run goes, the status is its progress (live_progress).
  if (m_showing_live && m_live->running()) return;
  QString text = tr("%1: %2 events, %3 (%4)")
                     .arg(QFileInfo(m_document->path()).fileName())
                     .arg(trace->events().size())
                     .arg(duration_text(m_document->run_range().length()))
                     .arg(QString::fromStdString(trace->info().run_description));
  if (m_document->has_selection()) {
    const TimeRange range = m_document->range();
    text += tr("; selected %1 to %2 µs")
                .arg(microseconds_text(range.start_ns), microseconds_text(range.end_ns));
  }
  statusBar()->showMessage(text);
}

void MainWindow::export_view(const ViewKind& kind, ImageFormat format) {
  ViewBase* shown = view(kind.name);
  if (shown == nullptr) return;
  const QString extension =
      format == ImageFormat::Png ? QStringLiteral("png") : QStringLiteral("svg");
  QSettings stored = settings();
  const QString suggested = stored.value(QStringLiteral("files/export-directory")).toString() +
                            QStringLiteral("/") + kind.name + QStringLiteral(".") + extension;
  const QString path = QFileDialog::getSaveFileName(
      this, tr("Export %1").arg(kind.title), suggested,
      format == ImageFormat::Png ? tr("PNG images (*.png)") : tr("SVG drawings (*.svg)"));
  if (path.isEmpty()) return;
  stored.setValue(QStringLiteral("files/export-directory"), QFileInfo(path).absolutePath());
  const QString& source =
      kind.input() == InputKind::Comparison ? m_comparison->path() : m_document->path();
  const Status saved =
      save_widget_image(*shown->content(), path,
                        QStringLiteral("%1 of %2").arg(kind.title, QFileInfo(source).fileName()));
  if (!saved) {
    QMessageBox::warning(this, tr("Cannot export"), QString::fromStdString(saved.error().message));
    return;
  }
  statusBar()->showMessage(tr("Exported %1 to %2").arg(kind.title, path), 5000);
}

void MainWindow::choose_live_run() {
  auto program = find_vmlab_program();
  if (!program) {
    QMessageBox::warning(this, tr("No vmlab to run"),
                         QString::fromStdString(program.error().message));
    return;
  }
  auto choices = query_run_choices(*program);
  if (!choices) {
    QMessageBox::warning(this, tr("Cannot ask vmlab what it runs"),
                         QString::fromStdString(choices.error().message));
    return;
  }
  LiveRunDialog dialog(*program, *choices, this);
  if (m_live_options.count) dialog.choose(m_live_options);
  if (dialog.exec() != QDialog::Accepted) return;
  start_live_run(*program, dialog.options());
}

void MainWindow::start_live_run(const QString& program, const LiveRunOptions& options) {
  if (m_loader->running()) m_loader->cancel();
  m_live_options = options;
  m_showing_live = true;
  if (m_live->start(program, options)) {
    statusBar()->showMessage(tr("Starting %1 ...").arg(options.description()));
  }
  update_live_actions();
}

void MainWindow::stop_live_run() {
  if (!m_live->running()) return;
  m_live->stop();
  statusBar()->showMessage(tr("Stopping the guest ..."));
}

void MainWindow::live_progress(quint64 events, double seconds) {
  if (!m_showing_live || !m_live->running()) return;
  QString text = tr("live: %1, %2 events in %3 s (Run > Stop ends it)")
                     .arg(m_live_options.description())
                     .arg(events + m_live->unshown())
                     .arg(seconds, 0, 'f', 1);
  if (m_live->unshown() != 0) {
    text += tr("; the window shows the first %1").arg(m_live->maximum_events());
  }
  statusBar()->showMessage(text);
}

void MainWindow::update_live_actions() {
  if (m_start_live == nullptr) return;
  const bool running = m_live->running();
  m_start_live->setEnabled(!running);
  m_stop_live->setEnabled(running);
  m_save_live->setEnabled(!running && !m_live->trace_path().isEmpty() && m_live->events() > 0);
}

void MainWindow::save_live_trace() {
  const QString source = m_live->trace_path();
  if (source.isEmpty() || m_live->running()) return;
  const QString path =
      QFileDialog::getSaveFileName(this, tr("Save the live trace"), QStringLiteral("live.trace"),
                                   tr("vmlab traces (*.trace *.tsv)"));
  if (path.isEmpty()) return;
  // Never over a file that is not a vmlab trace: the same rule as vmlab's.
  QFile existing(path);
  if (existing.exists()) {
    if (!existing.open(QIODevice::ReadOnly) ||
        (existing.size() > 0 && !existing.read(16).startsWith("# vmlab-trace "))) {
      QMessageBox::warning(this, tr("Cannot save"),
                           tr("%1 is not a vmlab trace; vmlab-viz will not replace it.").arg(path));
      return;
    }
    existing.close();
    QFile::remove(path);
  }
  if (!QFile::copy(source, path)) {
    QMessageBox::warning(this, tr("Cannot save"), tr("Cannot write %1.").arg(path));
    return;
  }
  statusBar()->showMessage(tr("Saved the live trace to %1").arg(path), 5000);
}

void MainWindow::restore_layout() {
  const QSettings stored = settings();
  if (stored.contains(QStringLiteral("window/state"))) {
    restoreGeometry(stored.value(QStringLiteral("window/geometry")).toByteArray());
    restoreState(stored.value(QStringLiteral("window/state")).toByteArray());
    return;
  }
  // The first run: most of the width for the timeline, the charts beside it.
  if (auto* reasons = findChild<QDockWidget*>(QStringLiteral("reasons-dock"))) {
    resizeDocks({reasons}, {520}, Qt::Horizontal);
  }
}

void MainWindow::closeEvent(QCloseEvent* event) {
  QSettings stored = settings();
  stored.setValue(QStringLiteral("window/geometry"), saveGeometry());
  stored.setValue(QStringLiteral("window/state"), saveState());
  m_loader->cancel();
  m_live->stop();
  QMainWindow::closeEvent(event);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
  const QMimeData* mime = event->mimeData();
  if (mime->hasUrls() && !mime->urls().isEmpty() && mime->urls().first().isLocalFile()) {
    event->acceptProposedAction();
  }
}

void MainWindow::dropEvent(QDropEvent* event) {
  const auto urls = event->mimeData()->urls();
  if (urls.isEmpty() || !urls.first().isLocalFile()) return;
  event->acceptProposedAction();
  open_file(urls.first().toLocalFile());
}

}  // namespace vmlab::viz
