// The views that are tables: the events of the selected range (or of a
// search), and the monitor's traps by cause beside the transitions between
// levels.
#pragma once

#include <QLabel>
#include <QTableView>

#include "vmlab/viz/app/view.hpp"
#include "vmlab/viz/models/aggregate_models.hpp"
#include "vmlab/viz/models/events_model.hpp"

namespace vmlab::viz {

// Every event starting in the selected range, one a row, served lazily
// (a million rows cost nothing until scrolled to); a search's matches
// replace them until the range changes. Activating a row shows the event
// in the timeline.
class EventsView final : public View {
  Q_OBJECT

 public:
  EventsView(TraceDocument& document, ViewLinks& links, QWidget* parent = nullptr);
  EventsModel& model() { return *m_model; }

 private:
  void fit_columns();
  void show_range();

  EventsModel* m_model;
  QLabel* m_title;
  QTableView* m_table;
};

class TrapsTransitionsView final : public View {
  Q_OBJECT

 public:
  TrapsTransitionsView(TraceDocument& document, ViewLinks& links, QWidget* parent = nullptr);

 private:
  TrapCausesModel* m_traps;
  TransitionsModel* m_transitions;
};

}  // namespace vmlab::viz
