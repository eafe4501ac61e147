#include "vmlab/viz/app/reasons_view.hpp"

#include <QBoxLayout>
#include <QGraphicsLayout>
#include <QHeaderView>
#include <QVBoxLayout>
#include <QtCharts/QBarCategoryAxis>
#include <QtCharts/QBarSet>
#include <QtCharts/QHorizontalBarSeries>
#include <QtCharts/QValueAxis>
#include <algorithm>
#include <cmath>

#include "vmlab/viz/app/palette.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

// A kind in a word, for a bar's label: "exit io-out", "trap system-call".
QString short_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::VmExit:
      return QStringLiteral("exit");
    case EventKind::MonitorTrap:
      return QStringLiteral("trap");
    case EventKind::Hypercall:
      return QStringLiteral("hypercall");
    case EventKind::InterruptInjection:
      return QStringLiteral("inject");
    case EventKind::DeviceAccess:
      return QStringLiteral("device");
    case EventKind::IommuFault:
      return QStringLiteral("iommu");
    case EventKind::Translation:
      return QStringLiteral("bt");
    case EventKind::GuestHalt:
      return QStringLiteral("asleep");
    case EventKind::Count:
      break;
  }
  return QStringLiteral("?");
}

struct Bar {
  QString category;  // "vm-exit io-out"
  QString search;    // what clicking it finds: "io-out"
  double value = 0;
};

// The bars of one chart, largest first, at most kMostBars (the rest in one).
std::vector<Bar> bars_of(const std::vector<KindReasonCount>& counts, bool by_time) {
  std::vector<Bar> bars;
  for (const KindReasonCount& count : counts) {
    // Time in microseconds to one decimal: the bar's figure reads "4925.5".
    const double value =
        by_time ? std::round(static_cast<double>(count.total_duration_ns) / 100.0) / 10.0
                : static_cast<double>(count.count);
    if (value <= 0) continue;  // no bar of no length: an instant has no time
    bars.push_back({short_kind_name(count.kind) + QLatin1Char(' ') +
                        to_qstring(event_reason_name(count.reason)),
                    to_qstring(event_reason_name(count.reason)), value});
  }
  std::stable_sort(bars.begin(), bars.end(),
                   [](const Bar& a, const Bar& b) { return a.value > b.value; });
  if (bars.size() > static_cast<std::size_t>(ReasonsView::kMostBars)) {
    double rest = 0;
    const std::size_t kept = ReasonsView::kMostBars - 1;
    for (std::size_t index = kept; index < bars.size(); ++index)
      rest += bars[index].value;
    const auto others = bars.size() - kept;
    bars.resize(kept);
    bars.push_back({QStringLiteral("%1 other reasons").arg(others), QString(), rest});
  }
  return bars;
}

QChart* new_chart(const QString& title) {
  auto* chart = new QChart;
  chart->setTitle(title);
  chart->setAnimationOptions(QChart::NoAnimation);
  chart->legend()->hide();
  chart->setMargins(QMargins(4, 4, 12, 4));
  chart->setBackgroundRoundness(0);
  return chart;
}

// Fills `chart` with one horizontal bar per entry of `bars`, the first on
// top, and returns their categories in that order.
QStringList fill_chart(QChart& chart, const std::vector<Bar>& bars, const QColor& colour,
                       const QString& label_format, int decimals,
                       const std::function<void(int)>& clicked) {
  chart.removeAllSeries();  // deletes them
  // removeAxis hands an axis back to its caller: it is ours to delete.
  for (QAbstractAxis* axis : chart.axes()) {
    chart.removeAxis(axis);
    delete axis;
  }
  QStringList categories;
  auto* set = new QBarSet(QString());
  set->setColor(colour);
  set->setBorderColor(colour);
  set->setLabelColor(palette::ruler_text());
  // A horizontal bar chart's first category is the bottom bar: add them
  // smallest first so the largest is on top.
  for (auto bar = bars.rbegin(); bar != bars.rend(); ++bar) {
    categories.prepend(bar->category);
    *set << bar->value;
  }
  auto* series = new QHorizontalBarSeries;
  series->append(set);
  series->setBarWidth(0.75);
  series->setLabelsVisible(true);
  series->setLabelsPosition(QAbstractBarSeries::LabelsOutsideEnd);
  series->setLabelsFormat(label_format);
  series->setLabelsPrecision(9);  // significant digits: a count in full, time to the ns
  chart.addSeries(series);
  auto* axis = new QBarCategoryAxis;
  QStringList bottom_up = categories;
  std::reverse(bottom_up.begin(), bottom_up.end());
  axis->append(bottom_up);
  chart.addAxis(axis, Qt::AlignLeft);
  series->attachAxis(axis);
  auto* values = new QValueAxis;
  double largest = 0;
  for (const Bar& bar : bars)
    largest = std::max(largest, bar.value);
  // Room right of the longest bar for its figure, and three or four ticks
  // a round step apart (1, 2 or 5 times a power of ten).
  const double room = largest <= 0 ? 1 : largest * 1.15;
  double step = std::pow(10.0, std::floor(std::log10(room / 3)));
  for (const double multiple : {1.0, 2.0, 5.0, 10.0}) {
    if (step * multiple >= room / 3) {
      step *= multiple;
      break;
    }
  }
  const double top = std::ceil(room / step) * step;
  values->setRange(0, top);
  values->setTickCount(static_cast<int>(std::lround(top / step)) + 1);
  values->setLabelFormat(step >= 1 || decimals == 0 ? QStringLiteral("%.0f")
                                                    : QStringLiteral("%.1f"));
  chart.addAxis(values, Qt::AlignBottom);
  series->attachAxis(values);
  const int count = static_cast<int>(bars.size());
  QObject::connect(set, &QBarSet::clicked, &chart,
                   [clicked, count](int index) { clicked(count - 1 - index); });
  return categories;
}

}  // namespace

ReasonsView::ReasonsView(TraceDocument& document, ViewLinks& links, QWidget* parent)
    : View(document, links, parent),
      m_counts(new ReasonCountsModel(&document, this)),
      m_rips(new CostlyRipsModel(&document, this)),
      m_title(new QLabel(this)),
      m_counts_view(new QChartView(new_chart(tr("Events per reason")), this)),
      m_time_view(new QChartView(new_chart(tr("Time per reason (µs, each event's own)")), this)),
      m_rips_table(new QTableView(this)) {
  m_title->setWordWrap(true);
  QFont title_font = m_title->font();
  title_font.setBold(true);
  m_title->setFont(title_font);
  m_title->setContentsMargins(6, 4, 6, 0);
  for (QChartView* view : {m_counts_view, m_time_view}) {
    view->setRenderHint(QPainter::Antialiasing);
    view->setMinimumSize(280, 220);
  }
  m_rips_table->setModel(m_rips);
  m_rips_table->verticalHeader()->hide();
  m_rips_table->horizontalHeader()->setStretchLastSection(false);
  m_rips_table->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_rips_table->setAlternatingRowColors(true);
  connect(m_rips_table, &QTableView::activated, this, [this](const QModelIndex& index) {
    const auto rip =
        m_rips->data(m_rips->index(index.row(), CostlyRipsModel::kGuestRip), kValueRole);
    emit m_links.find_requested(hex_text(rip.toULongLong()));
  });

  m_charts = new QBoxLayout(QBoxLayout::LeftToRight);
  m_charts->addWidget(m_counts_view, 1);
  m_charts->addWidget(m_time_view, 1);
  auto* rips = new QWidget(this);
  auto* rips_layout = new QVBoxLayout(rips);
  rips_layout->setContentsMargins(0, 0, 0, 0);
  auto* rips_title = new QLabel(tr("Guest RIPs whose VM exits cost the VMM most"), rips);
  rips_title->setContentsMargins(6, 2, 6, 0);
  rips_layout->addWidget(rips_title);
  rips_layout->addWidget(m_rips_table);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(m_title);
  layout->addLayout(m_charts, 3);
  layout->addWidget(rips, 1);

  connect(m_counts, &QAbstractItemModel::modelReset, this, &ReasonsView::rebuild);
  rebuild();
}

void ReasonsView::rebuild() {
  const TraceModel* trace = m_document.trace();
  const Aggregates& aggregates = m_document.aggregates();
  if (trace == nullptr) {
    m_title->setText(tr("No trace open."));
  } else {
    const TimeRange range = m_document.range();
    const QString where = m_document.has_selection() ? tr("Selection %1 to %2 µs")
                                                           .arg(microseconds_text(range.start_ns),
                                                                microseconds_text(range.end_ns))
                                                     : tr("Whole run");
    m_title->setText(tr("%1: %2 events over %3.")
                         .arg(where)
                         .arg(aggregates.events)
                         .arg(duration_text(aggregates.span_ns)));
  }
  std::vector<KindReasonCount> rows;
  for (int row = 0; row < m_counts->rowCount(); ++row)
    rows.push_back(m_counts->row(static_cast<std::size_t>(row)));
  const auto count_bars = bars_of(rows, false);
  const auto time_bars = bars_of(rows, true);
  m_count_searches.clear();
  for (const Bar& bar : count_bars)
    m_count_searches << bar.search;
  m_time_searches.clear();
  for (const Bar& bar : time_bars)
    m_time_searches << bar.search;
  auto finder = [this](const QStringList& searches) {
    return [this, &searches](int index) {
      if (index >= 0 && index < searches.size() && !searches[index].isEmpty())
        emit m_links.find_requested(searches[index]);
    };
  };
  m_count_categories = fill_chart(*m_counts_view->chart(), count_bars, palette::count_bars(),
                                  QStringLiteral("@value"), 0, finder(m_count_searches));
  m_time_categories = fill_chart(*m_time_view->chart(), time_bars, palette::time_bars(),
                                 QStringLiteral("@value"), 1, finder(m_time_searches));
  m_rips_table->resizeColumnsToContents();
}

void ReasonsView::resizeEvent(QResizeEvent* event) {
  // Side by side where there is room, one above the other in a narrow dock.
  m_charts->setDirection(width() >= 900 ? QBoxLayout::LeftToRight : QBoxLayout::TopToBottom);
  View::resizeEvent(event);
}

void ReasonsView::prepare_for_render() {
  // A chart lays itself out when its view is resized and shown; make that
  // happen before the picture is taken.
  for (QChartView* view : {m_counts_view, m_time_view}) {
    view->chart()->resize(view->viewport()->size());
    view->chart()->layout()->activate();
  }
}

}  // namespace vmlab::viz
