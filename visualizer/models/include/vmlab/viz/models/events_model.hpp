// A flat list of a trace's events for a table: every event starting in a
// time range, or a chosen list (a search's matches). Rows are served as the
// view asks for them, each cell's text made when it is drawn: the model
// keeps a range of event indexes, or one index per row (4 bytes), never the
// strings, so a million rows cost a view nothing until it scrolls to them.
#pragma once

#include <QAbstractTableModel>
#include <memory>
#include <vector>

#include "vmlab/viz/trace_model.hpp"

namespace vmlab::viz {

class EventsModel final : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column {
    kIndex,
    kTime,
    kDuration,
    kKind,
    kReason,
    kFrom,
    kTo,
    kGuestRip,
    kAddress,
    kSize,
    kValue,
    kDetail,
    kColumns
  };

  explicit EventsModel(QObject* parent = nullptr);

  // A new trace (null: none), showing all of its events.
  void set_trace(std::shared_ptr<const TraceModel> trace);
  // The events that start inside `range`.
  void show_range(TimeRange range);
  // These events, in this order (a search's matches).
  void show_events(std::vector<EventIndex> events);

  // The event a row shows (kNoEvent outside the table).
  EventIndex event_at(int row) const;
  // The row showing `event`, or -1.
  int row_of(EventIndex event) const;

  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation,
                      int role = Qt::DisplayRole) const override;

 private:
  QVariant text(EventIndex event, int column) const;
  QVariant value(EventIndex event, int column) const;

  std::shared_ptr<const TraceModel> m_trace;
  // Either a contiguous run of indexes, or a list.
  bool m_listed = false;
  EventIndex m_first = 0;
  EventIndex m_last = 0;
  std::vector<EventIndex> m_events;
};

}  // namespace vmlab::viz
