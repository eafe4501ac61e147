#include "vmlab/viz/app/comparison_view.hpp"

#include <QFileInfo>
#include <QGraphicsLayout>
#include <QHeaderView>
#include <QPainter>
#include <QToolButton>
#include <QVBoxLayout>
#include <QtCharts/QBarCategoryAxis>
#include <QtCharts/QBarSeries>
#include <QtCharts/QBarSet>
#include <QtCharts/QHorizontalStackedBarSeries>
#include <QtCharts/QLogValueAxis>
#include <QtCharts/QValueAxis>
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "vmlab/viz/app/palette.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

constexpr double kGroupWidth = 0.82;  // of a category, for a group's bars together
constexpr double kRowWidth = 0.7;     // of a category, for a row's stacked bar
// Figures spanning this factor or more get a log axis: on a linear one the
// small bars would be invisible next to the large.
constexpr double kLogAxisSpan = 100;

// A figure as the table writes it, to three significant digits or so.
QString figure_text(double value) {
  if (value == 0) return QStringLiteral("0");
  if (value >= 100) return QString::number(value, 'f', 0);
  if (value >= 10) return QString::number(value, 'f', 1);
  if (value >= 1) return QString::number(value, 'f', 2);
  return QString::number(value, 'g', 3);
}

// What vmlab compare calls a configuration: "hvm", "hvm+kirq", "bt/virtio".
QString configuration_label(const ComparisonRow& row) {
  QString label = QString::fromStdString(row.cpu);
  if (row.irqchip == "kernel") label += QStringLiteral("+kirq");
  if (!row.disk_model.empty()) label += QLatin1Char('/') + QString::fromStdString(row.disk_model);
  return label;
}

struct Configuration {
  QString label;
  std::string cpu;
  int variant = 0;  // configurations of this cpu before it
};

// The comparison's rows as a grid: a workload (at one N) per group, a
// configuration per bar.
struct Groups {
  QStringList workloads;
  std::vector<Configuration> configurations;
  // [workload][configuration]: its row, or null for a run not in the file.
  std::vector<std::vector<const ComparisonRow*>> cells;
  std::vector<QString> row_workload;  // each row's group label, in file order
};

Groups groups_of(const ComparisonResults& results) {
  Groups groups;
  // A workload run at two Ns is two groups, each named with its N.
  std::map<std::string, std::set<std::uint64_t>> counts;
  for (const ComparisonRow& row : results.rows)
    counts[row.workload].insert(row.n);
  std::vector<std::pair<std::string, std::uint64_t>> keys;
  for (const ComparisonRow& row : results.rows) {
    const std::pair key{row.workload, row.n};
    auto workload = std::find(keys.begin(), keys.end(), key);
    QString name = QString::fromStdString(row.workload);
    if (counts[row.workload].size() > 1) name += QStringLiteral(" n=%1").arg(row.n);
    if (workload == keys.end()) {
      keys.push_back(key);
      groups.workloads << name;
    }
    groups.row_workload.push_back(name);
    const QString label = configuration_label(row);
    const auto known = std::find_if(
        groups.configurations.begin(), groups.configurations.end(),
        [&](const Configuration& configuration) { return configuration.label == label; });
    if (known == groups.configurations.end()) {
      const auto same_cpu =
          std::count_if(groups.configurations.begin(), groups.configurations.end(),
                        [&](const Configuration& configuration) {
                          return palette::technique_family(configuration.cpu) ==
                                 palette::technique_family(row.cpu);
                        });
      groups.configurations.push_back({label, row.cpu, static_cast<int>(same_cpu)});
    }
  }
  groups.cells.assign(static_cast<std::size_t>(groups.workloads.size()),
                      std::vector<const ComparisonRow*>(groups.configurations.size(), nullptr));
  for (std::size_t index = 0; index < results.rows.size(); ++index) {
    const ComparisonRow& row = results.rows[index];
    const auto workload =
        static_cast<std::size_t>(groups.workloads.indexOf(groups.row_workload[index]));
    const QString label = configuration_label(row);
    for (std::size_t configuration = 0; configuration < groups.configurations.size();
         ++configuration) {
      auto& cell = groups.cells[workload][configuration];
      // The first of two runs of one cell is the one shown (and in the table, both).
      if (groups.configurations[configuration].label == label && cell == nullptr) cell = &row;
    }
  }
  return groups;
}

QChart* new_chart(const QString& title) {
  auto* chart = new QChart;
  chart->setTitle(title);
  QFont font = chart->titleFont();
  font.setBold(true);
  chart->setTitleFont(font);
  chart->setAnimationOptions(QChart::NoAnimation);
  chart->setMargins(QMargins(4, 2, 8, 2));
  chart->setBackgroundRoundness(0);
  chart->legend()->setAlignment(Qt::AlignTop);
  return chart;
}

void clear_chart(QChart& chart) {
  chart.removeAllSeries();  // deletes them
  // removeAxis hands an axis back to its caller: it is ours to delete.
  for (QAbstractAxis* axis : chart.axes()) {
    chart.removeAxis(axis);
    delete axis;
  }
}

struct ValueRange {
  bool log = false;
  double low = 0;
  double high = 1;
  int ticks = 6;  // a linear axis's
};

// Room above the largest figure for its label, and round ticks.
ValueRange value_range(const std::vector<double>& figures) {
  double smallest = 0;
  double largest = 0;
  for (const double figure : figures) {
    if (figure <= 0) continue;
    smallest = smallest == 0 ? figure : std::min(smallest, figure);
    largest = std::max(largest, figure);
  }
  ValueRange range;
  if (largest <= 0) return range;
  if (largest / smallest >= kLogAxisSpan) {
    range.log = true;
    range.low = std::pow(10.0, std::floor(std::log10(smallest)));
    range.high = std::pow(10.0, std::ceil(std::log10(largest * 1.5)));
    return range;
  }
  const double room = largest * 1.18;
  double step = std::pow(10.0, std::floor(std::log10(room / 4)));
  for (const double multiple : {1.0, 2.0, 5.0, 10.0}) {
    if (step * multiple >= room / 4) {
      step *= multiple;
      break;
    }
  }
  range.high = std::ceil(room / step) * step;
  range.ticks = static_cast<int>(std::lround(range.high / step)) + 1;
  return range;
}

// Regular weight, a little smaller than Qt's bold: the titles say a lot.
void set_axis_title(QAbstractAxis& axis, const QString& title) {
  QFont font = axis.titleFont();
  font.setBold(false);
  font.setPointSizeF(font.pointSizeF() * 0.92);
  axis.setTitleFont(font);
  axis.setTitleText(title);
}

QAbstractAxis* value_axis(const ValueRange& range, const QString& title) {
  if (range.log) {
    auto* axis = new QLogValueAxis;
    axis->setBase(10);
    axis->setRange(range.low, range.high);
    axis->setLabelFormat(QStringLiteral("%g"));
    axis->setMinorTickCount(0);
    // Its ticks (0.01, 0.1, 1, 10) say it is one.
    set_axis_title(*axis, title);
    return axis;
  }
  auto* axis = new QValueAxis;
  axis->setRange(range.low, range.high);
  axis->setTickCount(range.ticks);
  axis->setLabelFormat(QStringLiteral("%g"));
  set_axis_title(*axis, title);
  return axis;
}

QBarSet* new_set(const QString& name, const QColor& colour) {
  auto* set = new QBarSet(name);
  set->setColor(colour);
  set->setBorderColor(colour);
  return set;
}

using FigureOf = std::function<std::optional<double>(const ComparisonRow&)>;

// A group per workload, a bar per configuration in `shown`, each bar the
// row's figure; a place marked where the run failed, has no such figure
// (`missing`) or is not in the file.
void fill_grouped(ComparisonChartView& view, const Groups& groups,
                  const std::vector<std::size_t>& shown, const FigureOf& figure_of,
                  const QString& missing, const QString& axis_title,
                  std::optional<double> reference = std::nullopt) {
  QChart& chart = *view.chart();
  clear_chart(chart);
  std::vector<double> figures;
  for (const auto& cells : groups.cells) {
    for (const std::size_t configuration : shown) {
      const ComparisonRow* row = cells[configuration];
      if (row == nullptr || !row->ok) continue;
      if (const auto figure = figure_of(*row)) figures.push_back(*figure);
    }
  }
  if (reference) figures.push_back(*reference);
  if (shown.empty()) {
    view.set_places(ComparisonChartView::Arrangement::Grouped, 1, kGroupWidth, {});
    return;
  }
  const ValueRange range = value_range(figures);
  // A log axis has no 0: bars rise from its bottom.
  const double base = range.log ? range.low : 0;
  std::vector<ComparisonChartView::Place> places;
  auto* series = new QBarSeries;
  series->setBarWidth(kGroupWidth);
  for (std::size_t index = 0; index < shown.size(); ++index) {
    const Configuration& configuration = groups.configurations[shown[index]];
    const QColor colour = palette::technique(configuration.cpu, configuration.variant);
    QBarSet* set = new_set(configuration.label, colour);
    for (int workload = 0; workload < groups.workloads.size(); ++workload) {
      const ComparisonRow* row = groups.cells[static_cast<std::size_t>(workload)][shown[index]];
      ComparisonChartView::Place place{.category = workload,
                                       .set = static_cast<int>(index),
                                       .from = base,
                                       .to = range.high,
                                       .colour = colour,
                                       .label = {},
                                       .mark = {},
                                       .failed = false};
      const std::optional<double> figure =
          row != nullptr && row->ok ? figure_of(*row) : std::nullopt;
      if (row == nullptr) {
        place.mark = QObject::tr("not run");
      } else if (!row->ok) {
        place.mark = QObject::tr("failed");
        place.failed = true;
      } else if (!figure) {
        place.mark = missing;
      } else {
        place.to = std::max(*figure, base);
        place.label = figure_text(*figure);
      }
      *set << (place.mark.isEmpty() ? place.to : base);
      places.push_back(place);
    }
    series->append(set);
  }
  chart.addSeries(series);
  auto* categories = new QBarCategoryAxis;
  categories->append(groups.workloads);
  chart.addAxis(categories, Qt::AlignBottom);
  series->attachAxis(categories);
  QAbstractAxis* values = value_axis(range, axis_title);
  chart.addAxis(values, Qt::AlignLeft);
  series->attachAxis(values);
  view.set_places(ComparisonChartView::Arrangement::Grouped, static_cast<int>(shown.size()),
                  kGroupWidth, std::move(places), reference);
}

// A level's share of a row's wall time (share_percent).
struct Share {
  TimelineLane lane;
  std::function<double(const ComparisonShares&)> percent;
};

double unknown_share(const ComparisonShares& shares) {
  return std::max(0.0, shares.guest - shares.guest_user_at_exit - shares.guest_kernel_at_exit);
}

// A stacked bar per row, the first row on top; a failed row's area marked
// with why it failed.
void fill_shares(ComparisonChartView& view, const ComparisonResults& results,
                 const Groups& groups) {
  QChart& chart = *view.chart();
  clear_chart(chart);
  std::vector<Share> shares = {
      {TimelineLane::GuestUser, [](const ComparisonShares& s) { return s.guest_user_at_exit; }},
      {TimelineLane::GuestKernel, [](const ComparisonShares& s) { return s.guest_kernel_at_exit; }},
      {TimelineLane::GuestUnknown, unknown_share},
      {TimelineLane::Monitor, [](const ComparisonShares& s) { return s.monitor; }},
      {TimelineLane::Vmm, [](const ComparisonShares& s) { return s.vmm; }},
      {TimelineLane::Halted, [](const ComparisonShares& s) { return s.halted; }},
  };
  // The guest at no known level is rare (a trace-less attribution); its
  // set only where some row has it.
  const bool any_unknown =
      std::any_of(results.rows.begin(), results.rows.end(),
                  [](const auto& row) { return row.ok && unknown_share(row.shares) >= 0.05; });
  if (!any_unknown) {
    shares.erase(std::find_if(shares.begin(), shares.end(), [](const Share& share) {
      return share.lane == TimelineLane::GuestUnknown;
    }));
  }
  if (results.rows.empty()) {
    view.set_places(ComparisonChartView::Arrangement::StackedRows, 1, kRowWidth, {});
    return;
  }
  const int rows = static_cast<int>(results.rows.size());
  std::vector<ComparisonChartView::Place> places;
  std::vector<QBarSet*> sets;
  for (const Share& share : shares)
    sets.push_back(new_set(lane_title(share.lane), palette::level(share.lane)));
  QStringList categories;
  // A horizontal chart's first category is its bottom row: the last row first.
  for (int index = rows - 1; index >= 0; --index) {
    const ComparisonRow& row = results.rows[static_cast<std::size_t>(index)];
    const int category = rows - 1 - index;
    categories << groups.row_workload[static_cast<std::size_t>(index)] + QStringLiteral(" · ") +
                      configuration_label(row);
    if (!row.ok || row.emulator) {
      for (QBarSet* set : sets)
        *set << 0;
      places.push_back(
          {.category = category,
           .set = 0,
           .from = 0,
           .to = 100,
           .colour = {},
           .label = {},
           .mark = !row.ok ? QObject::tr("failed: %1").arg(QString::fromStdString(row.failure))
                           : QObject::tr("QEMU TCG: no VM, its time is not split by level"),
           .failed = !row.ok});
      continue;
    }
    double start = 0;
    for (std::size_t level = 0; level < shares.size(); ++level) {
      const double percent = shares[level].percent(row.shares);
      *sets[level] << percent;
      if (percent > 0) {
        places.push_back({.category = category,
                          .set = 0,
                          .from = start,
                          .to = start + percent,
                          .colour = sets[level]->color(),
                          .label = QString::number(percent, 'f', 0) + QLatin1Char('%'),
                          .mark = {},
                          .failed = false});
      }
      start += percent;
    }
  }
  auto* series = new QHorizontalStackedBarSeries;
  series->setBarWidth(kRowWidth);
  for (QBarSet* set : sets)
    series->append(set);
  chart.addSeries(series);
  auto* axis = new QBarCategoryAxis;
  axis->append(categories);
  chart.addAxis(axis, Qt::AlignLeft);
  series->attachAxis(axis);
  auto* values = new QValueAxis;
  values->setRange(0, 100);
  values->setTickCount(6);
  values->setLabelFormat(QStringLiteral("%g"));
  set_axis_title(*values, QObject::tr("% of the run's wall time"));
  chart.addAxis(values, Qt::AlignBottom);
  series->attachAxis(values);
  view.set_places(ComparisonChartView::Arrangement::StackedRows, 1, kRowWidth, std::move(places));
}

}  // namespace

ComparisonChartView::ComparisonChartView(QChart* chart, QWidget* parent)
    : QChartView(chart, parent) {
  setRenderHint(QPainter::Antialiasing);
  setMinimumSize(260, 200);
}

void ComparisonChartView::set_places(Arrangement arrangement, int sets, double bar_width,
                                     std::vector<Place> places, std::optional<double> reference) {
  m_arrangement = arrangement;
  m_sets = std::max(sets, 1);
  m_bar_width = bar_width;
  m_places = std::move(places);
  m_reference = reference;
  fit_category_labels();
  viewport()->update();
}

void ComparisonChartView::resizeEvent(QResizeEvent* event) {
  QChartView::resizeEvent(event);
  fit_category_labels();
}

void ComparisonChartView::fit_category_labels() {
  if (m_arrangement != Arrangement::Grouped) return;
  auto* axis = qobject_cast<QBarCategoryAxis*>(chart()->axes(Qt::Horizontal).value(0));
  if (axis == nullptr || axis->count() == 0) return;
  const QFontMetrics metrics(axis->labelsFont());
  int widest = 0;
  for (const QString& category : axis->categories())
    widest = std::max(widest, metrics.horizontalAdvance(category));
  // The plot is the view less the value axis and margins, about 110 pixels.
  const int room = (width() - 110) / axis->count();
  const bool upright = widest + 12 > room;
  axis->setLabelsAngle(upright ? -90 : 0);
  // Qt Charts' layout leaves upright labels a few pixels short at the foot.
  QMargins margins = chart()->margins();
  margins.setBottom(upright ? 10 : 2);
  chart()->setMargins(margins);
}

bool ComparisonChartView::log_axis() const {
  const auto axes = chart()->axes();
  return std::any_of(axes.begin(), axes.end(), [](const QAbstractAxis* axis) {
    return axis->type() == QAbstractAxis::AxisTypeLogValue;
  });
}

QRectF ComparisonChartView::scene_rect(const Place& place) const {
  const auto series = chart()->series();
  if (series.isEmpty()) return {};
  QPointF first;
  QPointF second;
  if (m_arrangement == Arrangement::Grouped) {
    // Qt Charts lays a group's bars side by side across bar_width of the
    // category, centred on it (the category's value is its index).
    const double width = m_bar_width / m_sets;
    const double left = place.category - m_bar_width / 2 + place.set * width;
    first = QPointF(left, place.from);
    second = QPointF(left + width, place.to);
  } else {
    first = QPointF(place.from, place.category - m_bar_width / 2);
    second = QPointF(place.to, place.category + m_bar_width / 2);
  }
  return QRectF(chart()->mapToScene(chart()->mapToPosition(first, series.first())),
                chart()->mapToScene(chart()->mapToPosition(second, series.first())))
      .normalized();
}

QRectF ComparisonChartView::place_rect(const Place& place) const {
  return mapFromScene(scene_rect(place)).boundingRect();
}

void ComparisonChartView::drawForeground(QPainter* painter, const QRectF& rectangle) {
  QChartView::drawForeground(painter, rectangle);
  const auto series = chart()->series();
  if (series.isEmpty()) return;
  const QRectF plot = chart()->mapToScene(chart()->plotArea()).boundingRect();
  painter->save();
  QFont font = chart()->font();
  font.setPointSizeF(font.pointSizeF() * 0.85);
  painter->setFont(font);
  const QFontMetricsF metrics(font);
  const bool grouped = m_arrangement == Arrangement::Grouped;

  if (m_reference) {
    const double y =
        chart()->mapToScene(chart()->mapToPosition(QPointF(0, *m_reference), series.first())).y();
    painter->setPen(QPen(palette::ruler_text(), 1, Qt::DashLine));
    painter->drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y));
  }
  for (const Place& place : m_places) {
    // A figure of 0 has a bar of no height, but a place and a label.
    QRectF area = scene_rect(place);
    if (area.width() <= 0) continue;
    if (!place.mark.isEmpty()) {
      area = area.intersected(plot);
      painter->fillRect(area, place.failed ? palette::failed_slot() : palette::missing_slot());
      painter->setPen(place.failed ? palette::failed_text() : palette::ruler_text());
      if (grouped) {
        // Upright along the place, clear of its foot (the tests look there).
        painter->save();
        painter->translate(area.center());
        painter->rotate(-90);
        const QRectF along(-area.height() / 2 + 14, -area.width() / 2, area.height() - 28,
                           area.width());
        painter->drawText(along, Qt::AlignCenter,
                          metrics.elidedText(place.mark, Qt::ElideRight, along.width()));
        painter->restore();
      } else {
        const QRectF inside = area.adjusted(6, 0, -6, 0);
        painter->drawText(inside, Qt::AlignVCenter | Qt::AlignLeft,
                          metrics.elidedText(place.mark, Qt::ElideRight, inside.width()));
      }
      continue;
    }
    if (place.label.isEmpty()) continue;
    const double text_width = metrics.horizontalAdvance(place.label);
    const double text_height = metrics.height();
    if (!grouped) {
      // Inside its segment, where it fits.
      if (text_width + 6 > area.width() || text_height > area.height() + 2) continue;
      painter->setPen(palette::text_on(place.colour));
      painter->drawText(area, Qt::AlignCenter, place.label);
      continue;
    }
    if (text_width + 4 <= area.width()) {
      // Across, above the bar, or inside its top where the plot ends.
      QRectF text(area.center().x() - text_width / 2 - 2, area.top() - text_height - 1,
                  text_width + 4, text_height);
      painter->setPen(palette::ruler_text());
      if (text.top() < plot.top()) {
        text.moveTop(area.top() + 1);
        painter->setPen(palette::text_on(place.colour));
      }
      painter->drawText(text, Qt::AlignCenter, place.label);
      continue;
    }
    // Upright, rising from the bar's top; inside it where the plot ends.
    painter->save();
    painter->translate(area.center().x(), area.top());
    painter->rotate(-90);
    QRectF text(2, -text_height / 2, text_width + 2, text_height);
    painter->setPen(palette::ruler_text());
    if (area.top() - text_width - 4 < plot.top()) {
      text.moveRight(-2);
      painter->setPen(palette::text_on(place.colour));
    }
    painter->drawText(text, Qt::AlignCenter, place.label);
    painter->restore();
  }
  painter->restore();
}

ComparisonView::ComparisonView(ComparisonDocument& document, QWidget* parent)
    : ViewBase(parent),
      m_document(document),
      m_model(new ComparisonModel(this)),
      m_bar(new QWidget(this)),
      m_pages_buttons(new QButtonGroup(this)),
      m_header(new QLabel(this)),
      m_platform(new QLabel(this)),
      m_failures(new QLabel(this)),
      m_pages(new QStackedWidget(this)),
      m_grid(new QGridLayout),
      m_table(new QTableView(this)) {
  auto* bar = new QHBoxLayout(m_bar);
  bar->setContentsMargins(4, 2, 4, 2);
  int page = 0;
  for (const QString& name : {tr("Charts"), tr("Table")}) {
    auto* button = new QToolButton(m_bar);
    button->setText(name);
    button->setCheckable(true);
    button->setAutoRaise(true);
    button->setChecked(page == 0);
    m_pages_buttons->addButton(button, page++);
    bar->addWidget(button);
  }
  bar->addStretch(1);
  connect(m_pages_buttons, &QButtonGroup::idClicked, this, [this](int id) { show_table(id == 1); });

  QFont bold = m_header->font();
  bold.setBold(true);
  m_header->setFont(bold);
  for (QLabel* label : {m_header, m_platform, m_failures}) {
    label->setWordWrap(true);
    label->setContentsMargins(8, 2, 8, 0);
    label->setTextInteractionFlags(Qt::TextSelectableByMouse);
  }
  QPalette failures = m_failures->palette();
  failures.setColor(QPalette::WindowText, palette::failed_text());
  m_failures->setPalette(failures);

  const QString titles[kCharts] = {
      tr("Cost relative to hvm: guest cycles per operation ÷ hvm's"),
      tr("VMM entries: VM exits the VMM handled per operation"),
      tr("Monitor traps per operation (the software modes)"),
      tr("Where each run's time went (guest user/kernel: its level at each exit)"),
  };
  for (int chart = 0; chart < kCharts; ++chart) {
    m_charts[static_cast<std::size_t>(chart)] = new ComparisonChartView(new_chart(titles[chart]));
  }
  auto* charts = new QWidget(m_pages);
  charts->setLayout(m_grid);
  m_grid->setContentsMargins(0, 0, 0, 0);
  m_grid->setSpacing(2);
  m_pages->addWidget(charts);
  m_table->setModel(m_model);
  m_table->setAlternatingRowColors(true);
  m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_table->verticalHeader()->hide();
  m_pages->addWidget(m_table);
  arrange_charts(true);

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->setSpacing(2);
  layout->addWidget(m_bar);
  layout->addWidget(m_header);
  layout->addWidget(m_platform);
  layout->addWidget(m_failures);
  layout->addWidget(m_pages, 1);

  connect(&m_document, &ComparisonDocument::results_changed, this, &ComparisonView::rebuild);
  rebuild();
}

void ComparisonView::set_tool_bar_visible(bool visible) {
  m_bar->setVisible(visible);
  if (!visible) show_table(false);
}

void ComparisonView::show_table(bool table) {
  m_pages->setCurrentIndex(table ? 1 : 0);
  m_pages_buttons->button(table ? 1 : 0)->setChecked(true);
}

void ComparisonView::arrange_charts(bool wide) {
  if (m_wide == wide) return;
  m_wide = wide;
  for (ComparisonChartView* chart : m_charts)
    m_grid->removeWidget(chart);
  // Wide: the relative cost across two columns above the VMM's entries and
  // the monitor's traps, the time shares down the third. Narrow: two by two.
  if (wide) {
    m_grid->addWidget(m_charts[kRelative], 0, 0, 1, 2);
    m_grid->addWidget(m_charts[kVmExits], 1, 0);
    m_grid->addWidget(m_charts[kMonitorTraps], 1, 1);
    m_grid->addWidget(m_charts[kShares], 0, 2, 2, 1);
    m_grid->setColumnStretch(2, 2);
  } else {
    m_grid->addWidget(m_charts[kRelative], 0, 0);
    m_grid->addWidget(m_charts[kShares], 0, 1);
    m_grid->addWidget(m_charts[kVmExits], 1, 0);
    m_grid->addWidget(m_charts[kMonitorTraps], 1, 1);
    m_grid->setColumnStretch(2, 0);
  }
  m_grid->setColumnStretch(0, 2);
  m_grid->setColumnStretch(1, 2);
  m_grid->setRowStretch(0, 1);
  m_grid->setRowStretch(1, 1);
}

void ComparisonView::resizeEvent(QResizeEvent* event) {
  arrange_charts(width() >= 1200);
  ViewBase::resizeEvent(event);
}

void ComparisonView::rebuild() {
  const ComparisonResults& results = m_document.results();
  m_model->set_results(results);
  const Groups groups = groups_of(results);
  m_workloads = groups.workloads;
  m_configurations.clear();
  for (const Configuration& configuration : groups.configurations)
    m_configurations << configuration.label;

  if (!m_document.has_results()) {
    m_header->setText(
        tr("No comparison open. File > Open comparison... reads what `vmlab compare "
           "--json FILE` writes; Run > Comparison... makes one."));
  } else {
    const auto failed = std::count_if(results.rows.begin(), results.rows.end(),
                                      [](const ComparisonRow& row) { return !row.ok; });
    const QString name =
        m_document.path().isEmpty() ? tr("Comparison") : QFileInfo(m_document.path()).fileName();
    QString text = results.simulated
                       ? tr("%1: %2 replayed under %3")
                             .arg(name, m_workloads.join(QStringLiteral(", ")),
                                  QStringList(m_configurations.mid(1)).join(QStringLiteral(", ")))
                       : tr("%1: %2 runs, %3 workloads under %4")
                             .arg(name)
                             .arg(results.rows.size())
                             .arg(m_workloads.size())
                             .arg(m_configurations.join(QStringLiteral(", ")));
    if (failed > 0) text += tr("; %1 failed").arg(failed);
    m_header->setText(text + QLatin1Char('.'));
  }
  QString platform = QString::fromStdString(results.platform_line);
  if (results.simulated) {
    platform = tr("Recorded on %1\nGuest time is carried over as that machine ran it, less what "
                  "its own transitions cost inside KVM_RUN; each platform costs the events "
                  "it keeps (vmlab simulate).")
                   .arg(platform);
  } else if (platform.contains(QLatin1String("kvm_pvm"))) {
    platform +=
        tr("\nkvm_pvm runs guest kernel (CPL0) code in software, so hvm is slow at "
           "kernel work here: a mode that deprivileges the kernel may cost far less.");
  }
  m_platform->setText(platform);
  m_platform->setVisible(!platform.isEmpty());
  QStringList failures;
  for (std::size_t index = 0; index < results.rows.size(); ++index) {
    const ComparisonRow& row = results.rows[index];
    if (row.ok) continue;
    failures << tr("Failed: %1 n=%2 under %3: %4")
                    .arg(QString::fromStdString(row.workload))
                    .arg(row.n)
                    .arg(configuration_label(row), QString::fromStdString(row.failure));
  }
  m_failures->setText(failures.join(QLatin1Char('\n')));
  m_failures->setVisible(!failures.isEmpty());

  std::vector<std::size_t> every;
  std::vector<std::size_t> with_vm;       // QEMU TCG runs no VM: nothing exits
  std::vector<std::size_t> with_monitor;  // hvm has no monitor to trap to
  for (std::size_t index = 0; index < groups.configurations.size(); ++index) {
    every.push_back(index);
    if (groups.configurations[index].cpu == "qemu-tcg") continue;
    with_vm.push_back(index);
    if (groups.configurations[index].cpu != "hvm") with_monitor.push_back(index);
  }
  const bool any_hvm = every.size() != with_monitor.size();
  // A simulation's rows are its measured run and each platform's prediction.
  m_charts[kRelative]->chart()->setTitle(
      results.simulated ? tr("Predicted time relative to the measured run (%1)")
                              .arg(QString::fromStdString(results.simulated_trace))
                        : tr("Cost relative to hvm: guest cycles per operation ÷ hvm's"));
  m_charts[kVmExits]->chart()->setTitle(
      results.simulated ? tr("VM exits per operation: the events that are exits there")
                        : tr("VMM entries: VM exits the VMM handled per operation"));
  m_charts[kMonitorTraps]->chart()->setTitle(
      results.simulated ? tr("Monitor traps per operation (a translator's work there)")
                        : tr("Monitor traps per operation (the software modes)"));
  fill_grouped(
      *m_charts[kRelative], groups, every,
      [](const ComparisonRow& row) { return row.relative_to_hvm; },
      results.simulated ? tr("no figure")
      : any_hvm         ? tr("no hvm figure")
                        : tr("no hvm run"),
      results.simulated ? tr("time ÷ the measured run's (measured = 1; lower is faster)")
                        : tr("cycles/op ÷ hvm's (hvm = 1; lower is faster)"),
      1.0);
  fill_grouped(
      *m_charts[kVmExits], groups, with_vm,
      [](const ComparisonRow& row) -> std::optional<double> { return row.vm_exits_per_op; }, {},
      tr("VM exits per operation (fewer is better)"));
  fill_grouped(
      *m_charts[kMonitorTraps], groups, with_monitor,
      [](const ComparisonRow& row) -> std::optional<double> { return row.monitor_traps_per_op; },
      {}, tr("monitor traps per operation (fewer is better)"));
  fill_shares(*m_charts[kShares], results, groups);
  m_table->resizeColumnsToContents();
}

void ComparisonView::prepare_for_render() {
  // A chart lays itself out when its view is resized and shown; make that
  // happen before the picture is taken.
  for (ComparisonChartView* view : m_charts) {
    view->chart()->resize(view->viewport()->size());
    view->chart()->layout()->activate();
  }
}

}  // namespace vmlab::viz
