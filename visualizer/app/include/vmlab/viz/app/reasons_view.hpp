// Why the guest left: events and time per kind and reason as two horizontal
// bar charts (Qt Charts) over the selected range ("exit io-out" for a VM
// exit, "trap" for a monitor trap, "asleep" for a hlt wait), and the guest RIPs whose
// VM exits cost the VMM most. Clicking a bar or a RIP finds those events in
// the timeline.
#pragma once

#include <QBoxLayout>
#include <QLabel>
#include <QTableView>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>

#include "vmlab/viz/app/view.hpp"
#include "vmlab/viz/models/aggregate_models.hpp"

namespace vmlab::viz {

class ReasonsView final : public View {
  Q_OBJECT

 public:
  ReasonsView(TraceDocument& document, ViewLinks& links, QWidget* parent = nullptr);

  void prepare_for_render() override;

 protected:
  void resizeEvent(QResizeEvent* event) override;

 public:
  // The charts and what their bars stand for, top bar first (tests).
  QChartView& counts_view() { return *m_counts_view; }
  QChartView& time_view() { return *m_time_view; }
  const QStringList& count_categories() const { return m_count_categories; }
  const QStringList& time_categories() const { return m_time_categories; }
  QTableView& costly_rips() { return *m_rips_table; }

  // The most reasons a chart shows; the rest are one "other" bar.
  static constexpr int kMostBars = 14;

 private:
  void rebuild();

  ReasonCountsModel* m_counts;
  CostlyRipsModel* m_rips;
  QLabel* m_title;
  QBoxLayout* m_charts;
  QChartView* m_counts_view;
  QChartView* m_time_view;
  QTableView* m_rips_table;
  QStringList m_count_categories;
  QStringList m_time_categories;
  // What each bar of each chart finds in the timeline ("io-out").
  QStringList m_count_searches;
  QStringList m_time_searches;
};

}  // namespace vmlab::viz
