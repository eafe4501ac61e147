#include "vmlab/viz/app/timeline_view.hpp"

#include <QHBoxLayout>
#include <QShortcut>
#include <QToolButton>
#include <QVBoxLayout>
#include <algorithm>

#include "vmlab/viz/models/search_query.hpp"

namespace vmlab::viz {

TimelineView::TimelineView(TraceDocument& document, ViewLinks& links, QWidget* parent)
    : View(document, links, parent),
      m_bar(new QWidget(this)),
      m_search(new QLineEdit(this)),
      m_status(new QLabel(this)),
      m_canvas(new TimelineCanvas(document, this)) {
  m_search->setPlaceholderText(
      tr("Find: a reason (io-out), a guest RIP (0x101020) or an "
         "instruction (iretq)"));
  m_search->setClearButtonEnabled(true);
  m_search->setMinimumWidth(360);
  auto button = [this](const QString& text, const QString& tip, auto slot) {
    auto* tool = new QToolButton(this);
    tool->setText(text);
    tool->setToolTip(tip);
    tool->setAutoRaise(true);
    connect(tool, &QToolButton::clicked, this, slot);
    return tool;
  };
  auto* bar = new QHBoxLayout(m_bar);
  bar->setContentsMargins(4, 4, 4, 0);
  bar->addWidget(m_search);
  bar->addWidget(button(tr("◀"), tr("Previous match (Shift+Enter)"), [this] { previous_match(); }));
  bar->addWidget(button(tr("▶"), tr("Next match (Enter)"), [this] { next_match(); }));
  bar->addWidget(m_status, 1);
  bar->addWidget(button(tr("−"), tr("Zoom out (-)"), [this] { m_canvas->zoom(1 / 1.5); }));
  bar->addWidget(button(tr("+"), tr("Zoom in (+)"), [this] { m_canvas->zoom(1.5); }));
  bar->addWidget(button(tr("Whole run"), tr("Show the whole run (Home)"),
                        [this] { m_canvas->show_whole_run(); }));
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->setSpacing(2);
  layout->addWidget(m_bar);
  layout->addWidget(m_canvas, 1);

  connect(m_search, &QLineEdit::returnPressed, this, [this] {
    // Enter on the same text goes to the next match; new text searches.
    if (!m_matches.empty() && m_search->property("searched").toString() == m_search->text()) {
      next_match();
    } else {
      find(m_search->text());
    }
  });
  auto* previous = new QShortcut(QKeySequence(Qt::SHIFT | Qt::Key_Return), m_search);
  previous->setContext(Qt::WidgetShortcut);
  connect(previous, &QShortcut::activated, this, [this] { previous_match(); });
  connect(&m_links, &ViewLinks::find_requested, this, [this](const QString& text) {
    m_search->setText(text);
    find(text);
  });
  connect(&m_links, &ViewLinks::event_requested, this,
          [this](EventIndex event) { m_canvas->show_event(event); });
  connect(m_canvas, &TimelineCanvas::event_clicked, &m_links, &ViewLinks::event_picked);
  connect(&m_document, &TraceDocument::trace_changed, this, &TimelineView::trace_changed);
  trace_changed();
}

void TimelineView::set_tool_bar_visible(bool visible) {
  m_bar->setVisible(visible);
}

void TimelineView::trace_changed() {
  m_matches.clear();
  m_current = 0;
  m_search->setProperty("searched", QString());
  m_status->setText(m_document.trace() != nullptr
                        ? tr("%1 events").arg(m_document.trace()->events().size())
                        : QString());
}

void TimelineView::find(const QString& text) {
  m_search->setProperty("searched", text);
  m_matches.clear();
  const TraceModel* trace = m_document.trace();
  if (trace == nullptr) return;
  auto query = parse_search_query(text);
  if (!query) {
    m_status->setText(QString::fromStdString(query.error().message));
    return;
  }
  auto found = run_search(*trace, *query);
  if (!found) {
    m_status->setText(QString::fromStdString(found.error().message));
    return;
  }
  m_matches = std::move(*found);
  emit m_links.matches_found(m_matches, query->description());
  if (m_matches.empty()) {
    m_status->setText(tr("no event with %1").arg(query->description()));
    return;
  }
  // From the middle of what is on screen onwards.
  const TimeRange view = m_canvas->view_range();
  const std::uint64_t middle = view.start_ns + view.length() / 2;
  const auto after = std::find_if(m_matches.begin(), m_matches.end(), [&](EventIndex event) {
    return trace->events().time_ns(event) >= middle;
  });
  show_match(after == m_matches.end() ? 0 : static_cast<std::size_t>(after - m_matches.begin()));
}

void TimelineView::next_match() {
  if (m_matches.empty()) return;
  show_match((m_current + 1) % m_matches.size());
}

void TimelineView::previous_match() {
  if (m_matches.empty()) return;
  show_match((m_current + m_matches.size() - 1) % m_matches.size());
}

void TimelineView::show_match(std::size_t index) {
  m_current = index;
  m_canvas->show_event(m_matches[index]);
  m_status->setText(tr("match %1 of %2").arg(index + 1).arg(m_matches.size()));
}

}  // namespace vmlab::viz
