// The trace a window shows and the time range selected in it: what links
// the views. A selection in the timeline sets the range; the reason chart,
// the tables and the event list follow it (each model listens for
// range_changed()). The aggregates over the range are computed once here,
// for every model that shows a part of them.
#pragma once

#include <QObject>
#include <QString>
#include <memory>

#include "vmlab/viz/aggregates.hpp"
#include "vmlab/viz/trace_model.hpp"

namespace vmlab::viz {

class TraceDocument : public QObject {
  Q_OBJECT

 public:
  explicit TraceDocument(QObject* parent = nullptr);

  // Replaces the trace (null: none) and clears the selection.
  void set_trace(std::shared_ptr<const TraceModel> trace, const QString& path = {});
  const TraceModel* trace() const { return m_trace.get(); }
  const std::shared_ptr<const TraceModel>& shared_trace() const { return m_trace; }
  const QString& path() const { return m_path; }

  // The whole run as the timeline shows it: from 0, where the guest started
  // running, to the last event's end.
  TimeRange run_range() const;

  // The selected range; with nothing selected, the whole run. An empty
  // range clears the selection.
  void set_range(TimeRange range);
  void clear_range() { set_range(TimeRange{0, 0}); }
  TimeRange range() const { return m_selected ? m_range : run_range(); }
  bool has_selection() const { return m_selected; }

  // Over range(); the 20 costliest RIPs.
  const Aggregates& aggregates() const { return m_aggregates; }

 signals:
  // A new trace (or none): everything shown from the old one is stale.
  void trace_changed();
  // The selection changed and aggregates() was computed over the new range.
  void range_changed();

 private:
  void recompute();

  std::shared_ptr<const TraceModel> m_trace;
  QString m_path;
  TimeRange m_range{0, 0};
  bool m_selected = false;
  Aggregates m_aggregates;
};

}  // namespace vmlab::viz
