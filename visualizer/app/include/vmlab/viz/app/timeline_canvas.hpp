// The timeline, painted: a time ruler, one band per level (VMM, monitor,
// guest kernel, guest user, halted; a band for an unreported guest level
// only when the trace has one), the spans of each lane coloured by what
// they were, a connector at every change of level, and a legend of what the
// view shows. Each lane is drawn from one level-of-detail query for the
// visible range at the canvas's width (lod.hpp): the work grows with the
// pixels, never with the trace, at every zoom.
//
// Mouse and keys: the wheel (or + and -) zooms around the pointer (or the
// middle), a drag or the arrow keys pan, shift-drag selects a range (the
// document's, which narrows the other views), Escape clears it, Home shows
// the whole run. Hovering shows the event under the pointer.
#pragma once

#include <QWidget>
#include <array>
#include <cstdint>
#include <vector>

#include "vmlab/viz/lod.hpp"
#include "vmlab/viz/models/trace_document.hpp"

namespace vmlab::viz {

class TimelineCanvas final : public QWidget {
  Q_OBJECT

 public:
  explicit TimelineCanvas(TraceDocument& document, QWidget* parent = nullptr);

  // What the canvas shows; set_view_range keeps it inside the run and at
  // least kShortestView long.
  TimeRange view_range() const { return m_view; }
  void set_view_range(TimeRange view);
  void show_whole_run();
  // Zooms by `factor` (above 1: in) keeping the time under `anchor_x` there.
  void zoom(double factor, double anchor_x);
  void zoom(double factor);  // around the middle
  void pan(double pixels);   // positive: later

  // A search's or a click's event: drawn outlined, and brought into view
  // (zooming in when it would be too thin to see).
  void show_event(EventIndex event);
  EventIndex highlighted() const { return m_highlight; }

  // Geometry, as the last paint laid it out (tests sample these pixels).
  std::vector<TimelineLane> shown_lanes() const;
  QRect lane_band(TimelineLane lane) const;  // empty for a lane not shown
  QRect plot_area() const;                   // the lanes' horizontal extent, all bands
  // The pixel column holding `time_ns` (in the view), as query_lod counts pixels.
  int x_of(std::uint64_t time_ns) const;
  std::uint64_t time_at(int x) const;

  QSize sizeHint() const override { return {1000, 420}; }
  QSize minimumSizeHint() const override { return {400, 260}; }

  static constexpr std::uint64_t kShortestView = 40;  // ns across the canvas, zoomed in most

 signals:
  void view_changed();
  // A click (no drag) on a span: the event it shows, outlined now.
  void event_clicked(vmlab::viz::EventIndex event);

 protected:
  void paintEvent(QPaintEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void keyPressEvent(QKeyEvent* event) override;
  bool event(QEvent* event) override;

 private:
  struct LegendEntry {
    QColor colour;
    QString text;
    bool line = false;  // a connector, not a span
  };
  struct Layout {
    QRect plot;  // from the first band's top to the last's bottom, the lanes' width
    std::array<QRect, kLaneCount> bands{};
    QRect ruler;
    QRect legend;
  };

  void trace_changed();
  // Runs the lanes' queries for the view at the plot's width, and lays out
  // the bands around the legend those items need.
  void prepare();
  Layout layout_for(int legend_height) const;
  int legend_height(int width) const;

  void paint_ruler(QPainter& painter) const;
  void paint_lanes(QPainter& painter) const;
  void paint_connectors(QPainter& painter) const;
  void paint_highlight(QPainter& painter) const;
  void paint_selection(QPainter& painter) const;
  void paint_legend(QPainter& painter) const;

  // Pixel boundaries as query_lod draws them.
  int pixel_at(std::uint64_t time_ns) const;
  int boundary_at_or_after(std::uint64_t time_ns) const;
  int plot_width() const;
  // The lane a point is in (Count: none) and the event under it.
  TimelineLane lane_at(QPoint point) const;
  EventIndex event_at(QPoint point, TimelineLane lane, std::size_t* pieces) const;

  TraceDocument& m_document;
  TimeRange m_view{0, 0};
  EventIndex m_highlight = kNoEvent;
  Layout m_layout;
  std::array<std::vector<LodItem>, kLaneCount> m_items;
  std::vector<LegendEntry> m_legend;

  // A drag: panning, or selecting (shift held when it began).
  enum class Drag { None, Pan, Select };
  Drag m_drag = Drag::None;
  int m_drag_start_x = 0;
  TimeRange m_drag_start_view{0, 0};
  int m_select_from = 0;
  int m_select_to = 0;
};

}  // namespace vmlab::viz
