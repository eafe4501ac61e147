// `vmlab compare --json` results drawn (Qt Charts). The cost of each
// workload under each configuration relative to hvm as grouped bars, laid
// out as the Xen paper's Figure 3 (Barham et al., SOSP 2003: a group per
// benchmark, a bar per system, a normalised score), except that the figure
// here is a cost: hvm's cycles per operation are 1.0 and lower is faster.
// Beside it the VMM's entries (VM exits it handled) and the monitor's traps
// per operation, on a log axis when the figures span decades, and for each
// run the share of its wall time at each level (guest user and kernel,
// monitor, VMM, halted) as a stacked bar. A run that failed keeps its area
// in every chart, marked failed, never a bar of zero. Above the charts: the
// file, the platform line (the KVM backend and the CPU the figures are
// from) and what failed and why; the table of every figure is a click away.
#pragma once

#include <QButtonGroup>
#include <QGridLayout>
#include <QLabel>
#include <QStackedWidget>
#include <QTableView>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <array>
#include <optional>
#include <vector>

#include "vmlab/viz/app/view.hpp"
#include "vmlab/viz/models/comparison_document.hpp"
#include "vmlab/viz/models/comparison_model.hpp"

namespace vmlab::viz {

// One chart of the comparison: Qt Charts' bars, and over them what Qt
// Charts cannot draw bar by bar: each bar's own figure, and the place of a
// run that failed (or has no figure) marked with why.
class ComparisonChartView final : public QChartView {
  Q_OBJECT

 public:
  enum class Arrangement {
    Grouped,      // vertical bars, `sets` side by side in each category
    StackedRows,  // one horizontal bar per category, its sets end to end
  };
  struct Place {
    int category = 0;  // on the category axis: 0 is the first group, or the bottom row
    int set = 0;       // the bar in its group (Grouped)
    double from = 0;   // along the value axis
    double to = 0;
    QColor colour;        // the bar's, for a figure drawn on it
    QString label;        // the figure drawn on the bar; empty: none
    QString mark;         // not empty: no bar, the place says this instead
    bool failed = false;  // the mark is a failure (else a figure that is missing)
  };

  explicit ComparisonChartView(QChart* chart, QWidget* parent = nullptr);

  void set_places(Arrangement arrangement, int sets, double bar_width, std::vector<Place> places,
                  std::optional<double> reference = std::nullopt);
  const std::vector<Place>& places() const { return m_places; }
  // Where a place is in the viewport, as the chart is laid out now.
  QRectF place_rect(const Place& place) const;
  bool log_axis() const;

 protected:
  void drawForeground(QPainter* painter, const QRectF& rectangle) override;
  void resizeEvent(QResizeEvent* event) override;

 private:
  QRectF scene_rect(const Place& place) const;
  // Stands a grouped chart's workload names upright where they would not
  // fit side by side (Qt Charts would cut them to "pagef...").
  void fit_category_labels();

  Arrangement m_arrangement = Arrangement::Grouped;
  int m_sets = 1;
  double m_bar_width = 0.8;
  std::vector<Place> m_places;
  std::optional<double> m_reference;  // a dashed line across the plot (hvm's 1.0)
};

class ComparisonView final : public ViewBase {
  Q_OBJECT

 public:
  enum Chart { kRelative, kVmExits, kMonitorTraps, kShares, kCharts };

  explicit ComparisonView(ComparisonDocument& document, QWidget* parent = nullptr);

  void set_tool_bar_visible(bool visible) override;
  void prepare_for_render() override;

  // What the charts show (tests): the groups (workloads), the bars in each
  // (configurations: "hvm", "hvm+kirq", "bt/virtio"), the lines above.
  ComparisonChartView& chart_view(Chart chart) { return *m_charts[chart]; }
  const QStringList& workloads() const { return m_workloads; }
  const QStringList& configurations() const { return m_configurations; }
  QString header_text() const { return m_header->text(); }
  QString platform_text() const { return m_platform->text(); }
  QString failures_text() const { return m_failures->text(); }
  QTableView& table() { return *m_table; }
  void show_table(bool table);

 protected:
  void resizeEvent(QResizeEvent* event) override;

 private:
  void rebuild();
  void arrange_charts(bool wide);

  ComparisonDocument& m_document;
  ComparisonModel* m_model;
  QWidget* m_bar;
  QButtonGroup* m_pages_buttons;
  QLabel* m_header;
  QLabel* m_platform;
  QLabel* m_failures;
  QStackedWidget* m_pages;
  QGridLayout* m_grid;
  std::array<ComparisonChartView*, kCharts> m_charts{};
  QTableView* m_table;
  QStringList m_workloads;
  QStringList m_configurations;
  std::optional<bool> m_wide;  // the grid's arrangement, once made
};

}  // namespace vmlab::viz
