#include "vmlab/viz/app/graph_views.hpp"

#include <QApplication>
#include <QFontInfo>
#include <QVBoxLayout>

#include "vmlab/viz/app/graphviz.hpp"
#include "vmlab/viz/app/palette.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

std::string colour_text(const QColor& colour) {
  return colour.name(QColor::HexRgb).toStdString();
}

QLabel* new_caption(QWidget* parent) {
  auto* label = new QLabel(parent);
  label->setWordWrap(true);
  label->setContentsMargins(6, 4, 6, 2);
  label->setTextFormat(Qt::PlainText);
  return label;
}

// "Whole run" or "Selection 3.000 to 4.300 µs", as the reasons view says it.
QString range_words(const TraceDocument& document) {
  if (!document.has_selection()) return QObject::tr("Whole run");
  const TimeRange range = document.range();
  return QObject::tr("Selection %1 to %2 µs")
      .arg(microseconds_text(range.start_ns), microseconds_text(range.end_ns));
}

}  // namespace

GraphStyle graph_style() {
  GraphStyle style;
  for (std::size_t index = 0; index < kLaneCount; ++index) {
    const QColor band = palette::lane_band(static_cast<TimelineLane>(index));
    style.level_fill[index] = colour_text(band);
    // The band's hue, dark enough to outline it.
    style.level_border[index] = colour_text(band.darker(230));
  }
  style.text = colour_text(palette::ruler_text());
  style.edge = colour_text(palette::connector());
  style.highlight = colour_text(palette::highlight());
  style.unvisited = colour_text(palette::grid().darker(140));
  style.neutral_fill = colour_text(palette::background().darker(108));
  style.background = colour_text(palette::background());
  // The family Qt draws the SVG's text in is the one Graphviz measured it
  // in (both through fontconfig), so no label outgrows its box.
  style.font = QFontInfo(QApplication::font()).family().toStdString();
  return style;
}

// ---- The transition graph

TransitionGraphView::TransitionGraphView(TraceDocument& document, ViewLinks& links, QWidget* parent)
    : View(document, links, parent), m_title(new_caption(this)), m_picture(new SvgPicture(this)) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(m_title);
  layout->addWidget(m_picture, 1);
  // A new trace comes with a range_changed too.
  connect(&m_document, &TraceDocument::range_changed, this, &TransitionGraphView::rebuild);
  rebuild();
}

void TransitionGraphView::rebuild() {
  if (m_document.trace() == nullptr) {
    m_dot.clear();
    m_status = {};
    m_title->setText(tr("No trace open."));
    m_picture->set_svg({});
    return;
  }
  const TransitionMatrix& transitions = m_document.aggregates().transitions;
  // Laid out again only when the picture changes: Graphviz 2.42 keeps a
  // little of every layout (graphviz.cpp).
  std::string dot = transition_graph_dot(transitions, graph_style());
  if (dot != m_dot) {
    m_dot = std::move(dot);
    auto svg = layout_svg(m_dot);
    m_status = svg ? Status() : Status(svg.error());
    m_picture->set_svg(svg ? *svg : QByteArray());
  }
  if (!m_status) {
    m_title->setText(QString::fromStdString(m_status.error().message));
    return;
  }
  m_title->setText(tr("%1: %2 changes of level. An edge: how many, and the time then spent at "
                      "the level entered (its width grows with the count, on a log scale); a "
                      "level: its time after the changes into it.")
                       .arg(range_words(m_document))
                       .arg(transitions.total()));
}

// ---- How this mode works

ModeView::ModeView(TraceDocument& document, ViewLinks& links, QWidget* parent)
    : View(document, links, parent),
      m_caption(new_caption(this)),
      m_panels(new QBoxLayout(QBoxLayout::LeftToRight)),
      m_mode(new SvgPicture(this)),
      m_models(new SvgPicture(this)) {
  m_panels->setSpacing(2);  // a thin line of the window's colour between the two
  m_panels->addWidget(m_mode, 3);
  m_panels->addWidget(m_models, 2);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(m_caption);
  layout->addLayout(m_panels, 1);
  connect(&m_document, &TraceDocument::trace_changed, this, [this] {
    m_event = kNoEvent;
    rebuild();
  });
  connect(&m_links, &ViewLinks::event_requested, this, &ModeView::show_event);
  connect(&m_links, &ViewLinks::event_picked, this, &ModeView::show_event);
  // The models are the same for every trace: laid out once.
  auto models = layout_svg(hypervisor_models_dot(graph_style()));
  if (!models) m_models_status = models.error();
  m_models->set_svg(models ? *models : QByteArray());
  rebuild();
}

void ModeView::show_event(EventIndex event) {
  m_event = event;
  rebuild();
}

void ModeView::rebuild() {
  const TraceModel* trace = m_document.trace();
  m_technique = trace != nullptr ? technique_of(trace->info().run_description) : std::nullopt;
  QString caption;
  if (!m_technique) {
    m_mode_dot.clear();
    m_mode_status = {};
    m_mode->set_svg({});
    caption =
        trace == nullptr
            ? tr("No trace open: how its technique works comes with it.")
            : tr("This run names no technique vmlab has (run: %1), so there is no mode to draw.")
                  .arg(to_qstring(trace->info().run_description));
  } else {
    std::optional<ModePath> path;
    caption = tr("%1 (%2). ")
                  .arg(to_qstring(technique_name(*m_technique)),
                       to_qstring(technique_title(*m_technique)));
    if (m_event != kNoEvent && m_event < trace->events().size()) {
      path = event_path(*m_technique, path_event_of(*trace, m_event));
      caption += tr("The event at %1 µs: %2")
                     .arg(microseconds_text(trace->events().time_ns(m_event)),
                          QString::fromStdString(path->caption));
    } else {
      caption += QString::fromStdString(common_path_caption(*m_technique)) +
                 tr(" (Activate a row of the event list to follow its way.)");
    }
    // Laid out again only when the picture changes (graphviz.cpp).
    std::string dot = mode_graph_dot(*m_technique, path ? &*path : nullptr,
                                     kvm_backend_of(trace->info().platform_line), graph_style());
    if (dot != m_mode_dot) {
      m_mode_dot = std::move(dot);
      auto mode = layout_svg(m_mode_dot);
      m_mode_status = mode ? Status() : Status(mode.error());
      m_mode->set_svg(mode ? *mode : QByteArray());
    }
  }
  const Status status = render_status();
  m_caption->setText(status ? caption : QString::fromStdString(status.error().message));
}

void ModeView::resizeEvent(QResizeEvent* event) {
  // The models beside the mode where there is room, below it in a narrow dock.
  m_panels->setDirection(width() >= height() ? QBoxLayout::LeftToRight : QBoxLayout::TopToBottom);
  View::resizeEvent(event);
}

}  // namespace vmlab::viz
