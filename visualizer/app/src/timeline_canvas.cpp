#include "vmlab/viz/app/timeline_canvas.hpp"

#include <QHelpEvent>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QToolTip>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>
#include <map>

#include "vmlab/trace.hpp"
#include "vmlab/viz/app/palette.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

constexpr int kGutter = 132;      // the lanes' names, left of the plot
constexpr int kRightMargin = 16;  // room for the ruler's last figure
constexpr int kRulerHeight = 34;  // figures and ticks above the lanes
constexpr int kLaneGap = 10;      // between two bands: where connectors show
constexpr int kShortestLane = 22;
constexpr int kTallestLane = 72;
constexpr int kLegendRow = 18;
constexpr int kLegendSwatch = 12;
constexpr int kLabelledSpan = 64;  // a span this wide (pixels) says what it is
constexpr int kArrowSpacing = 6;   // pixels per transition at least, for arrowheads
// Changes of level a pixel column past which a redraw reads the level
// timeline's block summaries rather than each change.
constexpr std::size_t kDenseChanges = 16;
constexpr double kPanStep = 0.1;   // of the view, per arrow key
constexpr double kZoomStep = 1.5;  // per + or -, and per wheel notch

// The lanes, top to bottom: the VMM above the monitor above the guest, the
// kernel above user code, the vCPU asleep at the bottom.
constexpr std::array kLaneOrder = {TimelineLane::Vmm,          TimelineLane::Monitor,
                                   TimelineLane::GuestKernel,  TimelineLane::GuestUser,
                                   TimelineLane::GuestUnknown, TimelineLane::Halted};
static_assert(kLaneOrder.size() == kLaneCount, "every lane has a place");

std::size_t slot(TimelineLane lane) {
  return static_cast<std::size_t>(lane);
}

// A tick every 1, 2 or 5 times a power of ten nanoseconds, at least
// `at_least` apart.
std::uint64_t tick_step(double at_least) {
  std::uint64_t power = 1;
  while (true) {
    for (const std::uint64_t multiple : {1ull, 2ull, 5ull}) {
      if (static_cast<double>(power * multiple) >= at_least) return power * multiple;
    }
    if (power > std::numeric_limits<std::uint64_t>::max() / 100) return power * 10;
    power *= 10;
  }
}

// A tick's figure in the unit its step reads best in, with as many
// decimals as the step needs: "1.2 µs" every 200 ns, "15 ms" every 5 ms.
QString tick_text(std::uint64_t time_ns, std::uint64_t step) {
  struct Unit {
    std::uint64_t size;
    const char* name;
  };
  constexpr std::array<Unit, 4> kUnits = {
      {{1, "ns"}, {1000, "µs"}, {1000 * 1000, "ms"}, {1000ull * 1000 * 1000, "s"}}};
  std::size_t unit = 0;
  while (unit + 1 < kUnits.size() && step >= kUnits[unit + 1].size / 10 &&
         time_ns >= kUnits[unit + 1].size)
    ++unit;
  int decimals = 0;
  for (std::uint64_t size = kUnits[unit].size; size > step && decimals < 9; size /= 10)
    ++decimals;
  const double value = static_cast<double>(time_ns) / static_cast<double>(kUnits[unit].size);
  return QStringLiteral("%1 %2")
      .arg(value, 0, 'f', decimals)
      .arg(QString::fromUtf8(kUnits[unit].name));
}

QString legend_text(TimelineLane lane, SpanLabel label) {
  if (label.is_guest_running()) return lane_title(lane) + QStringLiteral(" running");
  return QString::fromStdString(label.name());
}

}  // namespace

TimelineCanvas::TimelineCanvas(TraceDocument& document, QWidget* parent)
    : QWidget(parent), m_document(document) {
  setFocusPolicy(Qt::StrongFocus);
  setMouseTracking(true);
  setAttribute(Qt::WA_OpaquePaintEvent);
  setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
  connect(&m_document, &TraceDocument::trace_changed, this, &TimelineCanvas::trace_changed);
  connect(&m_document, &TraceDocument::range_changed, this, qOverload<>(&QWidget::update));
  trace_changed();
}

void TimelineCanvas::trace_changed() {
  m_highlight = kNoEvent;
  m_drag = Drag::None;
  show_whole_run();
}

void TimelineCanvas::show_whole_run() {
  set_view_range(m_document.run_range());
}

void TimelineCanvas::set_view_range(TimeRange view) {
  const TimeRange run = m_document.run_range();
  if (run.empty()) {
    m_view = TimeRange{0, 0};
  } else {
    // As long as asked, within kShortestView and the run; then moved inside it.
    std::uint64_t length = std::clamp<std::uint64_t>(
        view.length(), std::min(kShortestView, run.length()), run.length());
    std::uint64_t start = std::min(view.start_ns, run.end_ns - length);
    start = std::max(start, run.start_ns);
    m_view = TimeRange{start, start + length};
  }
  update();
  emit view_changed();
}

void TimelineCanvas::zoom(double factor, double anchor_x) {
  if (m_view.empty() || factor <= 0) return;
  const double width = std::max(1, plot_width());
  const double fraction = std::clamp((anchor_x - kGutter) / width, 0.0, 1.0);
  const double length = static_cast<double>(m_view.length());
  const double anchor = static_cast<double>(m_view.start_ns) + fraction * length;
  const double new_length = std::max(length / factor, static_cast<double>(kShortestView));
  const double start = std::max(0.0, anchor - fraction * new_length);
  set_view_range(
      TimeRange{static_cast<std::uint64_t>(start), static_cast<std::uint64_t>(start + new_length)});
}

void TimelineCanvas::zoom(double factor) {
  zoom(factor, kGutter + plot_width() / 2.0);
}

void TimelineCanvas::pan(double pixels) {
  if (m_view.empty()) return;
  const double per_pixel = static_cast<double>(m_view.length()) / std::max(1, plot_width());
  const double shift = pixels * per_pixel;
  const double start = std::max(0.0, static_cast<double>(m_view.start_ns) + shift);
  set_view_range(TimeRange{static_cast<std::uint64_t>(start),
                           static_cast<std::uint64_t>(start) + m_view.length()});
}

void TimelineCanvas::show_event(EventIndex event) {
  const TraceModel* trace = m_document.trace();
  if (trace == nullptr || event >= trace->events().size()) return;
  m_highlight = event;
  const std::uint64_t start = trace->events().time_ns(event);
  const std::uint64_t duration = trace->events().duration_ns(event);
  // Keep the zoom if the event is some pixels wide in it; otherwise zoom
  // until it is, which for a trap of a few hundred nanoseconds shows the
  // exits and guest code around it too.
  constexpr std::uint64_t kPixelsWide = 8;
  const auto pixels = static_cast<std::uint64_t>(std::max(1, plot_width()));
  const std::uint64_t wide_enough =
      duration == 0 ? 20000 : std::max<std::uint64_t>(duration * pixels / kPixelsWide, 2000);
  std::uint64_t length = m_view.length();
  if (length > wide_enough || length == 0) length = wide_enough;
  const std::uint64_t middle = start + duration / 2;
  set_view_range(TimeRange{middle > length / 2 ? middle - length / 2 : 0,
                           (middle > length / 2 ? middle - length / 2 : 0) + length});
}

std::vector<TimelineLane> TimelineCanvas::shown_lanes() const {
  std::vector<TimelineLane> lanes;
  const TraceModel* trace = m_document.trace();
  for (const TimelineLane lane : kLaneOrder) {
    // A guest level KVM did not report gets a band only when a trace has it.
    if (lane == TimelineLane::GuestUnknown && (trace == nullptr || trace->lane(lane).empty())) {
      continue;
    }
    lanes.push_back(lane);
  }
  return lanes;
}

QRect TimelineCanvas::lane_band(TimelineLane lane) const {
  return m_layout.bands[slot(lane)];
}

QRect TimelineCanvas::plot_area() const {
  return m_layout.plot;
}

int TimelineCanvas::plot_width() const {
  return std::max(0, width() - kGutter - kRightMargin);
}

int TimelineCanvas::pixel_at(std::uint64_t time_ns) const {
  // The last pixel whose start is at or before the time (lod.cpp's grid).
  const int width = plot_width();
  if (m_view.empty() || width == 0) return 0;
  if (time_ns <= m_view.start_ns) return 0;
  if (time_ns >= m_view.end_ns) return width;
  const auto offset = static_cast<unsigned __int128>(time_ns - m_view.start_ns);
  return static_cast<int>(((offset + 1) * static_cast<unsigned>(width) - 1) / m_view.length());
}

int TimelineCanvas::boundary_at_or_after(std::uint64_t time_ns) const {
  // The first pixel boundary at or after the time: where a span ending there stops.
  const int width = plot_width();
  if (m_view.empty() || width == 0) return 0;
  if (time_ns <= m_view.start_ns) return 0;
  if (time_ns >= m_view.end_ns) return width;
  const auto offset = static_cast<unsigned __int128>(time_ns - m_view.start_ns);
  const unsigned __int128 length = m_view.length();
  return static_cast<int>((offset * static_cast<unsigned>(width) + length - 1) / length);
}

int TimelineCanvas::x_of(std::uint64_t time_ns) const {
  return kGutter + pixel_at(time_ns);
}

std::uint64_t TimelineCanvas::time_at(int x) const {
  const int width = plot_width();
  if (m_view.empty() || width == 0) return m_view.start_ns;
  const int pixel = std::clamp(x - kGutter, 0, width);
  return m_view.start_ns +
         static_cast<std::uint64_t>(static_cast<unsigned __int128>(m_view.length()) *
                                    static_cast<unsigned>(pixel) / static_cast<unsigned>(width));
}

// --- Layout and the level-of-detail queries

void TimelineCanvas::prepare() {
  const TraceModel* trace = m_document.trace();
  const auto width = static_cast<std::uint32_t>(plot_width());
  m_legend.clear();
  // What the legend lists: each colour the view shows, once, lane by lane.
  std::vector<std::pair<QRgb, QString>> seen;
  for (const TimelineLane lane : kLaneOrder) {
    auto& items = m_items[slot(lane)];
    items.clear();
    if (trace == nullptr || m_view.empty() || width == 0) continue;
    query_lod(trace->lane(lane), m_view, width, items);
    for (const LodItem& item : items) {
      const QColor colour = palette::span(lane, item.dominant);
      const QString text = legend_text(lane, item.dominant);
      const bool known = std::any_of(seen.begin(), seen.end(), [&](const auto& entry) {
        return entry.first == colour.rgb() && entry.second == text;
      });
      if (known) continue;
      seen.emplace_back(colour.rgb(), text);
      m_legend.push_back({colour, text, false});
    }
  }
  // (A trace of one level has no connector to show.)
  if (trace != nullptr && trace->levels().size() > 1) {
    m_legend.push_back({palette::connector(), tr("change of level"), true});
  }
  if (m_highlight != kNoEvent) m_legend.push_back({palette::highlight(), tr("found event"), true});
  m_layout = layout_for(legend_height(plot_width()));
}

int TimelineCanvas::legend_height(int width) const {
  if (m_legend.empty()) return 0;
  const QFontMetrics metrics(font());
  int rows = 1;
  int x = 0;
  for (const LegendEntry& entry : m_legend) {
    const int entry_width = kLegendSwatch + 6 + metrics.horizontalAdvance(entry.text) + 16;
    if (x > 0 && x + entry_width > width) {
      ++rows;
      x = 0;
    }
    x += entry_width;
  }
  return rows * kLegendRow + 12;
}

TimelineCanvas::Layout TimelineCanvas::layout_for(int legend) const {
  Layout layout;
  const auto lanes = shown_lanes();
  const int count = static_cast<int>(lanes.size());
  const int room = height() - kRulerHeight - legend - 8 - kLaneGap * (count - 1);
  const int lane_height = std::clamp(room / std::max(1, count), kShortestLane, kTallestLane);
  const int width = plot_width();
  layout.ruler = QRect(kGutter, 0, width, kRulerHeight);
  int y = kRulerHeight;
  for (const TimelineLane lane : lanes) {
    layout.bands[slot(lane)] = QRect(kGutter, y, width, lane_height);
    y += lane_height + kLaneGap;
  }
  const int bottom = y - kLaneGap;
  layout.plot = QRect(kGutter, kRulerHeight, width, bottom - kRulerHeight);
  layout.legend = QRect(kGutter, bottom + 10, width, legend);
  return layout;
}

// --- Painting

void TimelineCanvas::paintEvent(QPaintEvent*) {
  prepare();
  QPainter painter(this);
  painter.fillRect(rect(), palette::background());
  if (m_document.trace() == nullptr) {
    painter.setPen(palette::ruler_text());
    painter.drawText(rect(), Qt::AlignCenter,
                     tr("Open a trace (File > Open, or drop one here):\n"
                        "vmlab run --trace run.trace ... writes one."));
    return;
  }
  paint_ruler(painter);
  paint_lanes(painter);
  paint_connectors(painter);
  paint_highlight(painter);
  paint_selection(painter);
  paint_legend(painter);
}

void TimelineCanvas::paint_ruler(QPainter& painter) const {
  const QRect ruler = m_layout.ruler;
  const int width = plot_width();
  if (width == 0 || m_view.empty()) return;
  const QFontMetrics metrics(font());
  // Figures at least a wide label apart.
  const int label_width = metrics.horizontalAdvance(QStringLiteral("000.000 ms")) + 16;
  const double per_pixel = static_cast<double>(m_view.length()) / width;
  const std::uint64_t step = tick_step(per_pixel * label_width);
  const std::uint64_t minor = step / 5 == 0 ? step : step / 5;
  painter.setPen(palette::grid());
  painter.drawLine(ruler.left(), ruler.bottom() - 2, ruler.right(), ruler.bottom() - 2);
  for (std::uint64_t tick = (m_view.start_ns + minor - 1) / minor * minor; tick < m_view.end_ns;
       tick += minor) {
    const int x = x_of(tick);
    const bool major = tick % step == 0;
    painter.setPen(major ? palette::ruler_text() : palette::grid());
    painter.drawLine(x, ruler.bottom() - 2, x, ruler.bottom() - (major ? 10 : 6));
    if (!major) continue;
    const QString text = tick_text(tick, step);
    const int text_width = metrics.horizontalAdvance(text);
    const int left = std::clamp(x - text_width / 2, ruler.left() - kGutter + 4,
                                ruler.right() + kRightMargin - text_width);
    painter.drawText(QRect(left, ruler.top() + 4, text_width, metrics.height()), Qt::AlignLeft,
                     text);
  }
  // What the gutter says above the lane names: the view's length.
  painter.setPen(palette::ruler_text());
  painter.drawText(QRect(6, ruler.top() + 4, kGutter - 10, metrics.height()), Qt::AlignLeft,
                   tr("view %1").arg(duration_text(m_view.length())));
}

void TimelineCanvas::paint_lanes(QPainter& painter) const {
  const TraceModel& trace = *m_document.trace();
  QFont bold = font();
  bold.setBold(true);
  const QFontMetrics metrics(font());
  // Spans batched by colour: one drawRects per colour, whatever the trace.
  std::map<QRgb, std::vector<QRect>> spans;
  struct Label {
    QRect rect;
    QString text;
    QColor colour;
  };
  std::vector<Label> labels;
  for (const TimelineLane lane : shown_lanes()) {
    const QRect band = lane_band(lane);
    painter.fillRect(band, palette::lane_band(lane));
    painter.setFont(bold);
    painter.setPen(palette::ruler_text());
    painter.drawText(QRect(6, band.top(), kGutter - 12, band.height()),
                     Qt::AlignVCenter | Qt::AlignLeft,
                     QFontMetrics(bold).elidedText(lane_title(lane), Qt::ElideRight, kGutter - 12));
    painter.fillRect(QRect(kGutter - 5, band.top(), 3, band.height()),
                     palette::lane_band(lane).darker(140));
    painter.setFont(font());
    const auto& items = m_items[slot(lane)];
    for (std::size_t index = 0; index < items.size(); ++index) {
      const LodItem& item = items[index];
      const int left = kGutter + pixel_at(item.start_ns);
      const int right =
          kGutter + std::max(boundary_at_or_after(item.end_ns), pixel_at(item.start_ns) + 1);
      // A pixel only partly busy is drawn as tall as the share of its time
      // spans cover, so sparse exits read as sparse; but the end pixel of
      // a span wider than it is drawn whole, or every span would have notches.
      auto same_span = [&](std::size_t other) {
        return other < items.size() && items[other].wholly_busy() &&
               items[other].event == item.event && items[other].dominant == item.dominant;
      };
      const bool edge =
          item.event != kNoEvent && ((index > 0 && same_span(index - 1)) || same_span(index + 1));
      const std::uint64_t length = item.end_ns - item.start_ns;
      const double busy =
          length == 0 ? 1.0 : static_cast<double>(item.busy_ns) / static_cast<double>(length);
      const int height =
          item.wholly_busy() || edge
              ? band.height()
              : std::max(4, static_cast<int>(std::lround(band.height() * std::max(busy, 0.3))));
      const QRect rect(left, band.top() + (band.height() - height) / 2, right - left, height);
      const QColor colour = palette::span(lane, item.dominant);
      spans[colour.rgb()].push_back(rect);
      if (rect.width() >= kLabelledSpan && item.event != kNoEvent && item.wholly_busy()) {
        const QString text =
            item.dominant.is_guest_running()
                ? tr("running")
                : QString::fromStdString(event_slice_name(trace.events().event(item.event)));
        labels.push_back({rect.adjusted(4, 0, -4, 0), text, palette::text_on(colour)});
      }
    }
  }
  painter.setPen(Qt::NoPen);
  for (const auto& [colour, rects] : spans) {
    painter.setBrush(QColor::fromRgb(colour));
    painter.drawRects(rects.data(), static_cast<int>(rects.size()));
  }
  painter.setBrush(Qt::NoBrush);
  for (const Label& label : labels) {
    const QString text = metrics.elidedText(label.text, Qt::ElideRight, label.rect.width());
    if (text.isEmpty() || text == QStringLiteral("…")) continue;
    painter.setPen(label.colour);
    painter.drawText(label.rect, Qt::AlignVCenter | Qt::AlignLeft, text);
  }
}

void TimelineCanvas::paint_connectors(QPainter& painter) const {
  const TraceModel& trace = *m_document.trace();
  const int width = plot_width();
  if (width == 0) return;
  // Per pixel column, which (from, to) pairs change level in it: a column
  // draws each pair once, however many transitions it holds.
  std::vector<std::uint64_t> pairs(static_cast<std::size_t>(width), 0);
  std::size_t transitions = trace.levels().segments_in(m_view);
  if (transitions > static_cast<std::size_t>(width) * kDenseChanges) {
    // Many changes a column: each column's pairs from the level timeline's
    // block summaries, so the cost follows the pixels, not the trace.
    for (int pixel = 0; pixel < width; ++pixel) {
      pairs[static_cast<std::size_t>(pixel)] = trace.levels().transition_pairs(
          TimeRange{time_at(kGutter + pixel), time_at(kGutter + pixel + 1)});
    }
  } else {
    transitions = 0;
    trace.levels().for_each_transition(m_view, [&](const Transition& transition) {
      const int pixel = std::min(pixel_at(transition.time_ns), width - 1);
      pairs[static_cast<std::size_t>(pixel)] |=
          1ull << (slot(transition.from) * kLaneCount + slot(transition.to));
      ++transitions;
    });
  }
  // Sparse enough, each connector runs from band to band with an arrowhead
  // at the level entered; denser, only the gaps between the bands it
  // crosses show it, so a band it passes keeps showing its own spans.
  const bool sparse = transitions * kArrowSpacing <= static_cast<std::size_t>(width);
  const auto lanes = shown_lanes();
  std::vector<QLine> lines;
  QPainterPath heads;
  for (int pixel = 0; pixel < width; ++pixel) {
    std::uint64_t set = pairs[static_cast<std::size_t>(pixel)];
    while (set != 0) {
      const int bit = std::countr_zero(set);
      set &= set - 1;
      const auto from = static_cast<TimelineLane>(bit / static_cast<int>(kLaneCount));
      const auto to = static_cast<TimelineLane>(bit % static_cast<int>(kLaneCount));
      const QRect from_band = lane_band(from);
      const QRect to_band = lane_band(to);
      if (from_band.isEmpty() || to_band.isEmpty()) continue;
      const int x = kGutter + pixel;
      const bool down = from_band.top() < to_band.top();
      const QRect& upper = down ? from_band : to_band;
      const QRect& lower = down ? to_band : from_band;
      if (sparse) {
        lines.emplace_back(x, upper.bottom() + 1, x, lower.top() - 1);
        // The head, at the level entered.
        const double tip = down ? lower.top() : upper.bottom() + 1;
        const double base = down ? tip - 5 : tip + 5;
        heads.moveTo(x + 0.5, tip);
        heads.lineTo(x - 3 + 0.5, base);
        heads.lineTo(x + 3 + 0.5, base);
        heads.closeSubpath();
        continue;
      }
      for (std::size_t index = 0; index + 1 < lanes.size(); ++index) {
        const QRect above = lane_band(lanes[index]);
        const QRect below = lane_band(lanes[index + 1]);
        if (above.top() >= upper.top() && below.bottom() <= lower.bottom()) {
          lines.emplace_back(x, above.bottom() + 1, x, below.top() - 1);
        }
      }
    }
  }
  painter.setRenderHint(QPainter::Antialiasing, false);
  painter.setPen(QPen(palette::connector(), 0));
  painter.drawLines(lines.data(), static_cast<int>(lines.size()));
  if (!heads.isEmpty()) {
    painter.setRenderHint(QPainter::Antialiasing, true);
    painter.fillPath(heads, palette::connector());
    painter.setRenderHint(QPainter::Antialiasing, false);
  }
}

void TimelineCanvas::paint_highlight(QPainter& painter) const {
  const TraceModel& trace = *m_document.trace();
  if (m_highlight == kNoEvent || m_highlight >= trace.events().size()) return;
  const std::uint64_t start = trace.events().time_ns(m_highlight);
  const std::uint64_t end = trace.events().end_ns(m_highlight);
  if (end < m_view.start_ns || start > m_view.end_ns) return;
  const QRect band = lane_band(lane_of_event(trace.events(), m_highlight));
  const int left = kGutter + pixel_at(start);
  const int right = kGutter + std::max(boundary_at_or_after(end), pixel_at(start) + 1);
  painter.setPen(QPen(palette::highlight(), 2));
  painter.setBrush(Qt::NoBrush);
  if (!band.isEmpty())
    painter.drawRect(QRect(left - 2, band.top() - 3, right - left + 4, band.height() + 6));
  // A marker in the ruler, so the event is found however thin it is.
  const QRect ruler = m_layout.ruler;
  QPainterPath marker;
  marker.moveTo(left, ruler.bottom());
  marker.lineTo(left - 5, ruler.bottom() - 8);
  marker.lineTo(left + 5, ruler.bottom() - 8);
  marker.closeSubpath();
  painter.fillPath(marker, palette::highlight());
}

void TimelineCanvas::paint_selection(QPainter& painter) const {
  QRect selected;
  if (m_drag == Drag::Select) {
    selected = QRect(QPoint(std::min(m_select_from, m_select_to), m_layout.plot.top()),
                     QPoint(std::max(m_select_from, m_select_to), m_layout.plot.bottom()));
  } else if (m_document.has_selection()) {
    const TimeRange range = m_document.range();
    if (range.end_ns <= m_view.start_ns || range.start_ns >= m_view.end_ns) return;
    // Zoomed to the selection (or inside it): tinting all of it says nothing.
    if (range.start_ns <= m_view.start_ns && range.end_ns >= m_view.end_ns) return;
    selected = QRect(QPoint(x_of(range.start_ns), m_layout.plot.top()),
                     QPoint(kGutter + boundary_at_or_after(range.end_ns), m_layout.plot.bottom()));
  } else {
    return;
  }
  painter.fillRect(selected, palette::selection());
  painter.setPen(QPen(palette::selection().darker(250), 1));
  painter.drawLine(selected.topLeft(), selected.bottomLeft());
  painter.drawLine(selected.topRight(), selected.bottomRight());
  // The selection's length, in the ruler above it.
  const TimeRange range = m_drag == Drag::Select
                              ? TimeRange{time_at(selected.left()), time_at(selected.right())}
                              : m_document.range();
  const QString text = tr("selected %1").arg(duration_text(range.length()));
  const QFontMetrics metrics(font());
  const QRect box(selected.left(), m_layout.ruler.bottom() - metrics.height() - 12,
                  metrics.horizontalAdvance(text) + 8, metrics.height());
  painter.fillRect(box, palette::selection().darker(150));
  painter.setPen(palette::background());
  painter.drawText(box, Qt::AlignCenter, text);
}

void TimelineCanvas::paint_legend(QPainter& painter) const {
  const QRect area = m_layout.legend;
  if (area.height() == 0) return;
  const QFontMetrics metrics(font());
  int x = area.left();
  int y = area.top();
  for (const LegendEntry& entry : m_legend) {
    const int entry_width = kLegendSwatch + 6 + metrics.horizontalAdvance(entry.text) + 16;
    if (x > area.left() && x + entry_width > area.right()) {
      x = area.left();
      y += kLegendRow;
    }
    const QRect swatch(x, y + (kLegendRow - kLegendSwatch) / 2, kLegendSwatch, kLegendSwatch);
    if (entry.line) {
      painter.fillRect(QRect(swatch.center().x() - 1, swatch.top(), 2, swatch.height()),
                       entry.colour);
    } else {
      painter.fillRect(swatch, entry.colour);
    }
    painter.setPen(palette::ruler_text());
    painter.drawText(QRect(swatch.right() + 6, y, entry_width, kLegendRow),
                     Qt::AlignVCenter | Qt::AlignLeft, entry.text);
    x += entry_width;
  }
}

// --- Interaction

TimelineLane TimelineCanvas::lane_at(QPoint point) const {
  for (const TimelineLane lane : shown_lanes()) {
    const QRect band = lane_band(lane);
    if (point.y() >= band.top() && point.y() <= band.bottom() && point.x() >= band.left() &&
        point.x() <= band.right()) {
      return lane;
    }
  }
  return TimelineLane::Count;
}

EventIndex TimelineCanvas::event_at(QPoint point, TimelineLane lane, std::size_t* pieces) const {
  const TraceModel* trace = m_document.trace();
  *pieces = 0;
  if (trace == nullptr || lane == TimelineLane::Count) return kNoEvent;
  // The pixel's time, and the pieces touching it.
  const std::uint64_t start = time_at(point.x());
  const std::uint64_t end = std::max(time_at(point.x() + 1), start + 1);
  const LaneTimeline& pieces_of_lane = trace->lane(lane);
  const auto touching = pieces_of_lane.touching({start, end});
  *pieces = touching.last - touching.first;
  if (touching.first == touching.last) return kNoEvent;
  // The piece that covers most of the pixel.
  std::size_t best = touching.first;
  std::uint64_t best_overlap = 0;
  for (std::size_t index = touching.first; index < touching.last && index < touching.first + 64;
       ++index) {
    const std::uint64_t overlap = std::min(end, pieces_of_lane.end_ns(index)) -
                                  std::min(std::max(start, pieces_of_lane.start_ns(index)),
                                           std::min(end, pieces_of_lane.end_ns(index)));
    if (overlap > best_overlap) {
      best_overlap = overlap;
      best = index;
    }
  }
  return pieces_of_lane.event(best);
}

bool TimelineCanvas::event(QEvent* event) {
  if (event->type() != QEvent::ToolTip) return QWidget::event(event);
  auto* help = static_cast<QHelpEvent*>(event);
  const TimelineLane lane = lane_at(help->pos());
  std::size_t pieces = 0;
  const EventIndex found = event_at(help->pos(), lane, &pieces);
  const TraceModel* trace = m_document.trace();
  if (found == kNoEvent || trace == nullptr) {
    QToolTip::hideText();
    event->ignore();
    return true;
  }
  QString text;
  const LaneTimeline& lane_pieces = trace->lane(lane);
  const auto touching =
      lane_pieces.touching({time_at(help->pos().x()),
                            std::max(time_at(help->pos().x() + 1), time_at(help->pos().x()) + 1)});
  const bool running = touching.first < touching.last &&
                       lane_pieces.label(touching.first).is_guest_running() &&
                       lane != TimelineLane::Vmm && lane != TimelineLane::Monitor;
  if (running && pieces == 1) {
    const auto piece = lane_pieces.piece(touching.first);
    text = tr("%1 running, %2 to %3 µs (%4)\nended by:\n")
               .arg(lane_title(lane), microseconds_text(piece.start_ns),
                    microseconds_text(piece.end_ns), duration_text(piece.end_ns - piece.start_ns));
  }
  text += event_description(*trace, found);
  if (pieces > 1) text += tr("\n(%1 spans in this pixel: zoom in to see each)").arg(pieces);
  QToolTip::showText(help->globalPos(), text, this);
  return true;
}

void TimelineCanvas::wheelEvent(QWheelEvent* event) {
  const QPoint angle = event->angleDelta();
  if (angle.y() != 0) {
    zoom(std::pow(kZoomStep, angle.y() / 120.0), event->position().x());
  } else if (angle.x() != 0) {
    pan(-angle.x() / 120.0 * plot_width() * kPanStep);
  }
  event->accept();
}

void TimelineCanvas::mousePressEvent(QMouseEvent* event) {
  if (event->button() != Qt::LeftButton) return QWidget::mousePressEvent(event);
  const int x = static_cast<int>(event->position().x());
  if (event->modifiers() & Qt::ShiftModifier) {
    m_drag = Drag::Select;
    m_select_from = m_select_to = std::clamp(x, kGutter, kGutter + plot_width());
  } else {
    m_drag = Drag::Pan;
    m_drag_start_x = x;
    m_drag_start_view = m_view;
    setCursor(Qt::ClosedHandCursor);
  }
  event->accept();
}

void TimelineCanvas::mouseMoveEvent(QMouseEvent* event) {
  const int x = static_cast<int>(event->position().x());
  switch (m_drag) {
    case Drag::Pan: {
      const double per_pixel =
          static_cast<double>(m_drag_start_view.length()) / std::max(1, plot_width());
      const double start =
          static_cast<double>(m_drag_start_view.start_ns) - (x - m_drag_start_x) * per_pixel;
      set_view_range(
          TimeRange{static_cast<std::uint64_t>(std::max(0.0, start)),
                    static_cast<std::uint64_t>(std::max(0.0, start)) + m_drag_start_view.length()});
      break;
    }
    case Drag::Select:
      m_select_to = std::clamp(x, kGutter, kGutter + plot_width());
      update();
      break;
    case Drag::None:
      break;
  }
}

void TimelineCanvas::mouseReleaseEvent(QMouseEvent* event) {
  if (event->button() != Qt::LeftButton) return QWidget::mouseReleaseEvent(event);
  if (m_drag == Drag::Select) {
    const int left = std::min(m_select_from, m_select_to);
    const int right = std::max(m_select_from, m_select_to);
    m_drag = Drag::None;
    // A shift-click (no width) clears the selection.
    if (right - left >= 3) {
      m_document.set_range(TimeRange{time_at(left), time_at(right)});
    } else {
      m_document.clear_range();
    }
  } else if (m_drag == Drag::Pan &&
             std::abs(static_cast<int>(event->position().x()) - m_drag_start_x) < 3) {
    // Pressed and let go in place: a pick, not a pan.
    std::size_t pieces = 0;
    const QPoint point = event->position().toPoint();
    const EventIndex picked = event_at(point, lane_at(point), &pieces);
    if (picked != kNoEvent) {
      m_highlight = picked;
      emit event_clicked(picked);
    }
  }
  m_drag = Drag::None;
  unsetCursor();
  update();
}

void TimelineCanvas::keyPressEvent(QKeyEvent* event) {
  switch (event->key()) {
    case Qt::Key_Plus:
    case Qt::Key_Equal:
      zoom(kZoomStep);
      break;
    case Qt::Key_Minus:
      zoom(1.0 / kZoomStep);
      break;
    case Qt::Key_Left:
      pan(-plot_width() * kPanStep);
      break;
    case Qt::Key_Right:
      pan(plot_width() * kPanStep);
      break;
    case Qt::Key_Home:
    case Qt::Key_0:
      show_whole_run();
      break;
    case Qt::Key_Escape:
      m_document.clear_range();
      break;
    default:
      return QWidget::keyPressEvent(event);
  }
  event->accept();
}

}  // namespace vmlab::viz
