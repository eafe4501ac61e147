#include "vmlab/viz/app/view.hpp"

#include "vmlab/viz/app/comparison_view.hpp"
#include "vmlab/viz/app/graph_views.hpp"
#include "vmlab/viz/app/reasons_view.hpp"
#include "vmlab/viz/app/table_views.hpp"
#include "vmlab/viz/app/timeline_view.hpp"

namespace vmlab::viz {

View::View(TraceDocument& document, ViewLinks& links, QWidget* parent)
    : ViewBase(parent), m_document(document), m_links(links) {}

ViewBase* create_view(const ViewKind& kind, const ViewInputs& inputs, QWidget* parent) {
  if (const auto* trace_view = std::get_if<ViewKind::TraceViewFactory>(&kind.create)) {
    return (*trace_view)(inputs.trace, inputs.links, parent);
  }
  return std::get<ViewKind::ComparisonViewFactory>(kind.create)(inputs.comparison, parent);
}

const std::vector<ViewKind>& view_kinds() {
  static const std::vector<ViewKind> kinds = {
      {QStringLiteral("timeline"), QObject::tr("Timeline"), QSize(1400, 520), Qt::TopDockWidgetArea,
       [](TraceDocument& document, ViewLinks& links, QWidget* parent) -> View* {
         return new TimelineView(document, links, parent);
       }},
      {QStringLiteral("reasons"), QObject::tr("Exit and trap reasons"), QSize(1200, 760),
       Qt::RightDockWidgetArea,
       [](TraceDocument& document, ViewLinks& links, QWidget* parent) -> View* {
         return new ReasonsView(document, links, parent);
       }},
      {QStringLiteral("events"), QObject::tr("Events"), QSize(1200, 500), Qt::BottomDockWidgetArea,
       [](TraceDocument& document, ViewLinks& links, QWidget* parent) -> View* {
         return new EventsView(document, links, parent);
       }},
      {QStringLiteral("traps"), QObject::tr("Traps and changes of level"), QSize(1000, 400),
       Qt::BottomDockWidgetArea,
       [](TraceDocument& document, ViewLinks& links, QWidget* parent) -> View* {
         return new TrapsTransitionsView(document, links, parent);
       }},
      {QStringLiteral("graph"), QObject::tr("Transition graph"), QSize(1000, 760),
       Qt::RightDockWidgetArea,
       [](TraceDocument& document, ViewLinks& links, QWidget* parent) -> View* {
         return new TransitionGraphView(document, links, parent);
       }},
      {QStringLiteral("mode"), QObject::tr("How this mode works"), QSize(1500, 900),
       Qt::RightDockWidgetArea,
       [](TraceDocument& document, ViewLinks& links, QWidget* parent) -> View* {
         return new ModeView(document, links, parent);
       }},
      {QStringLiteral("comparison"), QObject::tr("Comparison"), QSize(1600, 1000),
       Qt::BottomDockWidgetArea,
       [](ComparisonDocument& document, QWidget* parent) -> ViewBase* {
         return new ComparisonView(document, parent);
       }},
  };
  return kinds;
}

const ViewKind* find_view_kind(const QString& name) {
  for (const ViewKind& kind : view_kinds()) {
    if (kind.name == name) return &kind;
  }
  return nullptr;
}

QStringList view_kind_names() {
  QStringList names;
  for (const ViewKind& kind : view_kinds())
    names << kind.name;
  return names;
}

}  // namespace vmlab::viz
