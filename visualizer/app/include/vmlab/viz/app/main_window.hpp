// vmlab-viz's window: the timeline in the middle, the other views docked
// around it (view_kinds()), all over one TraceDocument so that a range
// selected in the timeline narrows the charts and tables. A trace opens
// from the command line, File > Open or a drop, loading on a worker thread
// behind a progress dialog with a Cancel button; a trace that cannot be
// read opens a message naming the file and line. The window's layout is
// remembered (QSettings) from one run to the next.
#pragma once

#include <QMainWindow>
#include <QPointer>
#include <QProgressDialog>
#include <map>

#include "vmlab/viz/app/render.hpp"
#include "vmlab/viz/app/timeline_view.hpp"
#include "vmlab/viz/app/view.hpp"
#include "vmlab/viz/models/trace_document.hpp"
#include "vmlab/viz/models/trace_loader.hpp"

namespace vmlab::viz {

class MainWindow final : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // Starts loading `path` (cancelling a load under way).
  void open_trace(const QString& path);
  bool loading() const { return m_loader->running(); }

  TraceDocument& document() { return *m_document; }
  View* view(const QString& name) const;
  TimelineView& timeline() const;

 signals:
  void trace_opened(const QString& path);
  void open_failed(const QString& message);

 protected:
  void closeEvent(QCloseEvent* event) override;
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;

 private:
  void build_menus();
  void choose_trace();
  void export_view(const ViewKind& kind, ImageFormat format);
  void loaded(std::shared_ptr<const TraceModel> trace, const QString& path);
  void failed(std::error_code kind, const QString& message, const QString& path);
  void update_status();
  void restore_layout();

  TraceDocument* m_document;
  ViewLinks* m_links;
  TraceLoader* m_loader;
  QPointer<QProgressDialog> m_progress;
  QString m_pending;  // a trace to open once the cancelled load has ended
  std::map<QString, View*> m_views;
};

}  // namespace vmlab::viz
