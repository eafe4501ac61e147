#include "vmlab/viz/app/table_views.hpp"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QVBoxLayout>

#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

QTableView* new_table(QAbstractItemModel* model, QWidget* parent) {
  auto* table = new QTableView(parent);
  table->setModel(model);
  table->verticalHeader()->hide();
  // Rows of one height: a view of a million rows never measures each.
  table->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
  table->verticalHeader()->setDefaultSectionSize(table->fontMetrics().height() + 6);
  table->horizontalHeader()->setStretchLastSection(true);
  table->setSelectionBehavior(QAbstractItemView::SelectRows);
  table->setAlternatingRowColors(true);
  table->setWordWrap(false);
  return table;
}

QWidget* titled(const QString& title, QWidget* table, QWidget* parent) {
  auto* box = new QWidget(parent);
  auto* layout = new QVBoxLayout(box);
  layout->setContentsMargins(0, 0, 0, 0);
  auto* label = new QLabel(title, box);
  label->setContentsMargins(6, 2, 6, 0);
  layout->addWidget(label);
  layout->addWidget(table, 1);
  return box;
}

}  // namespace

EventsView::EventsView(TraceDocument& document, ViewLinks& links, QWidget* parent)
    : View(document, links, parent),
      m_model(new EventsModel(this)),
      m_title(new QLabel(this)),
      m_table(new_table(m_model, this)) {
  m_title->setContentsMargins(6, 2, 6, 0);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(m_title);
  layout->addWidget(m_table, 1);
  // Column widths from the header and a sample row, not from every row.
  m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Interactive);
  connect(&m_document, &TraceDocument::trace_changed, this, [this] {
    m_model->set_trace(m_document.shared_trace());
    show_range();
    fit_columns();
  });
  connect(&m_document, &TraceDocument::range_changed, this, &EventsView::show_range);
  connect(&m_links, &ViewLinks::matches_found, this,
          [this](const std::vector<EventIndex>& matches, const QString& description) {
            m_model->show_events(matches);
            m_title->setText(tr("%1 events with %2 (a new selection lists its events again)")
                                 .arg(matches.size())
                                 .arg(description));
          });
  connect(m_table, &QTableView::activated, this, [this](const QModelIndex& index) {
    const EventIndex event = m_model->event_at(index.row());
    if (event != kNoEvent) emit m_links.event_requested(event);
  });
  m_model->set_trace(m_document.shared_trace());
  show_range();
  fit_columns();
}

void EventsView::fit_columns() {
  m_table->resizeColumnsToContents();
  // A kernel RIP or an MMIO address is 18 characters, wider than the rows
  // the resize may have sampled: never cut.
  const int hex =
      m_table->fontMetrics().horizontalAdvance(QStringLiteral("0xffffffffffffffff")) + 16;
  for (const int column : {EventsModel::kGuestRip, EventsModel::kAddress}) {
    m_table->setColumnWidth(column, std::max(m_table->columnWidth(column), hex));
  }
}

void EventsView::show_range() {
  m_model->show_range(m_document.has_selection() ? m_document.range() : TimeRange{});
  if (m_document.trace() == nullptr) {
    m_title->setText(tr("No trace open."));
    return;
  }
  const TimeRange range = m_document.range();
  m_title->setText(m_document.has_selection() ? tr("%1 events starting from %2 to %3 µs")
                                                    .arg(m_model->rowCount())
                                                    .arg(microseconds_text(range.start_ns),
                                                         microseconds_text(range.end_ns))
                                              : tr("All %1 events").arg(m_model->rowCount()));
}

TrapsTransitionsView::TrapsTransitionsView(TraceDocument& document, ViewLinks& links,
                                           QWidget* parent)
    : View(document, links, parent),
      m_traps(new TrapCausesModel(&document, this)),
      m_transitions(new TransitionsModel(&document, this)) {
  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  auto* traps = new_table(m_traps, this);
  auto* transitions = new_table(m_transitions, this);
  // The cause is the column to read; the figures keep their width.
  traps->horizontalHeader()->setStretchLastSection(false);
  traps->horizontalHeader()->setSectionResizeMode(TrapCausesModel::kCause, QHeaderView::Stretch);
  transitions->horizontalHeader()->setStretchLastSection(false);
  layout->addWidget(titled(tr("Monitor traps by cause"), traps, this), 1);
  layout->addWidget(titled(tr("Changes of level"), transitions, this), 1);
  connect(m_transitions, &QAbstractItemModel::modelReset, transitions,
          [transitions] { transitions->resizeColumnsToContents(); });
  // A cause is an instruction (or a reason): find its traps in the timeline.
  connect(traps, &QTableView::activated, this, [this](const QModelIndex& index) {
    emit m_links.find_requested(
        m_traps->data(m_traps->index(index.row(), TrapCausesModel::kCause)).toString());
  });
}

}  // namespace vmlab::viz
