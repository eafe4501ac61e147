// A view of vmlab-viz and the registry of them. The main window's docks and
// menus and the headless `--render VIEW` all come from view_kinds(), so a
// new view (the transition graph, how a mode works, the comparison, a live
// run) is one entry there and is at once a dock, a menu item, an export and
// a --render name. Most views draw the trace (TraceDocument); the
// comparison view draws a `vmlab compare --json` file (ComparisonDocument),
// and its kind says so, so that --render knows which file a view needs.
#pragma once

#include <QSize>
#include <QString>
#include <QStringList>
#include <QWidget>
#include <functional>
#include <variant>
#include <vector>

#include "vmlab/result.hpp"
#include "vmlab/viz/models/comparison_document.hpp"
#include "vmlab/viz/models/input_file.hpp"
#include "vmlab/viz/models/trace_document.hpp"

namespace vmlab::viz {

// How views ask each other for something besides the shared range: the
// timeline finds what a chart's bar or a table's row names, and shows an
// event a list picked.
class ViewLinks final : public QObject {
  Q_OBJECT

 public:
  using QObject::QObject;

 signals:
  // Search the timeline for this (search_query.hpp's language) and jump to it.
  void find_requested(const QString& query);
  // Bring this event into the timeline and outline it.
  void event_requested(vmlab::viz::EventIndex event);
  // A person clicked this event's span in the timeline: the views that
  // explain one event (how this mode works) follow it; the timeline stays.
  void event_picked(vmlab::viz::EventIndex event);
  // A search's matches, for the event list (a description of the search).
  void matches_found(const std::vector<vmlab::viz::EventIndex>& matches,
                     const QString& description);
};

// What the window, an export and --render ask of any view.
class ViewBase : public QWidget {
  Q_OBJECT

 public:
  // What an export or --render draws: the view without its tool bar.
  virtual QWidget* content() { return this; }
  // A headless render hides the view's tool bar, so content() fills it.
  virtual void set_tool_bar_visible(bool) {}
  // A headless render of a stretch of the run (--range): the timeline
  // shows just that; the others count it as the document's range.
  virtual void show_range(TimeRange) {}
  // Before a headless render: the view draws what it would show on screen
  // once its pending work (a chart's layout) is done.
  virtual void prepare_for_render() {}
  // Why the view cannot show what a render asks for (a graph Graphviz could
  // not lay out), so that --render fails rather than draw the message.
  virtual Status render_status() const { return {}; }

 protected:
  using QWidget::QWidget;
};

// A view of the trace.
class View : public ViewBase {
  Q_OBJECT

 protected:
  View(TraceDocument& document, ViewLinks& links, QWidget* parent);

  TraceDocument& m_document;
  ViewLinks& m_links;
};

struct ViewKind {
  using TraceViewFactory = std::function<View*(TraceDocument&, ViewLinks&, QWidget*)>;
  using ComparisonViewFactory = std::function<ViewBase*(ComparisonDocument&, QWidget*)>;

  QString name;   // --render's word and the dock's object name: "timeline"
  QString title;  // the dock's and the menus' "Timeline"
  QSize render_size;
  // Where the window puts it; the first kind is the central widget.
  Qt::DockWidgetArea area = Qt::RightDockWidgetArea;
  // How it is made, which says what it draws: a trace or a comparison.
  std::variant<TraceViewFactory, ComparisonViewFactory> create;

  InputKind input() const {
    return std::holds_alternative<TraceViewFactory>(create) ? InputKind::Trace
                                                            : InputKind::Comparison;
  }
};

// The documents a window (or a headless render) gives its views.
struct ViewInputs {
  TraceDocument& trace;
  ViewLinks& links;
  ComparisonDocument& comparison;
};
// A view of `kind` over the document it draws.
ViewBase* create_view(const ViewKind& kind, const ViewInputs& inputs, QWidget* parent);

const std::vector<ViewKind>& view_kinds();
const ViewKind* find_view_kind(const QString& name);
QStringList view_kind_names();

}  // namespace vmlab::viz
