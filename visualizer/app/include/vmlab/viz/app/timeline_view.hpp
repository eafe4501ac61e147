// The timeline with its search bar: a reason, a guest RIP or an
// instruction (search_query.hpp) finds the matching events, Enter and the
// arrows jump from one to the next, and the list of them goes to the
// event list (ViewLinks::matches_found).
#pragma once

#include <QLabel>
#include <QLineEdit>
#include <vector>

#include "vmlab/viz/app/timeline_canvas.hpp"
#include "vmlab/viz/app/view.hpp"

namespace vmlab::viz {

class TimelineView final : public View {
  Q_OBJECT

 public:
  TimelineView(TraceDocument& document, ViewLinks& links, QWidget* parent = nullptr);

  QWidget* content() override { return m_canvas; }
  void set_tool_bar_visible(bool visible) override;
  void show_range(TimeRange range) override { m_canvas->set_view_range(range); }
  TimelineCanvas& canvas() { return *m_canvas; }

  // Runs a search and shows the first match at or after the middle of the
  // view (the first of all if none is); the status says what was found.
  void find(const QString& text);
  void next_match();
  void previous_match();
  const std::vector<EventIndex>& matches() const { return m_matches; }
  QString status() const { return m_status->text(); }

 private:
  void show_match(std::size_t index);
  void trace_changed();

  QWidget* m_bar;
  QLineEdit* m_search;
  QLabel* m_status;
  TimelineCanvas* m_canvas;
  std::vector<EventIndex> m_matches;
  std::size_t m_current = 0;
};

}  // namespace vmlab::viz
