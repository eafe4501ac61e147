// The timeline drawn off screen from the hand-written trace, checked pixel
// by pixel: the five bands in order with their colours, each span's colour
// where the trace puts it, a connector at every change of level and none
// elsewhere, and zooming, panning, selecting and finding.
#include "vmlab/viz/app/timeline_view.hpp"

#include <gtest/gtest.h>

#include <QElapsedTimer>
#include <QHelpEvent>
#include <QSignalSpy>
#include <QToolTip>
#include <QtTest/QTest>

#include "../viz_models/qt_test_support.hpp"
#include "view_test_support.hpp"
#include "vmlab/viz/app/palette.hpp"

namespace vmlab::viz {
namespace {

using testing::colour_name;
using testing::OffscreenView;
using testing::rgb_at;
using enum TimelineLane;

TimelineCanvas& canvas_of(OffscreenView& shown) {
  return static_cast<TimelineView&>(*shown.view).canvas();
}

QRgb rgb(const QColor& colour) {
  return colour.rgb() & 0xffffffu;
}

// A pixel near the top of a band, away from a span's text.
QRgb band_pixel(const QImage& image, const TimelineCanvas& canvas, TimelineLane lane,
                std::uint64_t time) {
  return rgb_at(image, canvas.x_of(time), canvas.lane_band(lane).top() + 2);
}

TEST(TimelineView, FiveBandsInOrderWithTheirColours) {
  OffscreenView shown(QStringLiteral("timeline"), QSize(1000, 420));
  TimelineCanvas& canvas = canvas_of(shown);
  const QImage image = shown.image();
  ASSERT_EQ(image.size(), QSize(1000, 420)) << "the tool bar is hidden: the canvas is the view";
  const std::vector<TimelineLane> lanes = {Vmm, Monitor, GuestKernel, GuestUser, Halted};
  EXPECT_EQ(canvas.shown_lanes(), lanes) << "no band for an unreported level this trace lacks";
  EXPECT_TRUE(canvas.lane_band(GuestUnknown).isEmpty());
  for (std::size_t index = 0; index < lanes.size(); ++index) {
    const QRect band = canvas.lane_band(lanes[index]);
    EXPECT_GE(band.height(), 22) << index;
    if (index > 0) {
      EXPECT_GT(band.top(), canvas.lane_band(lanes[index - 1]).bottom() + 1)
          << "a gap between bands, for the connectors";
    }
  }
  // Where no lane is busy: at 2000 ns the kernel runs, the rest is idle;
  // at 500 ns only user code runs.
  for (const TimelineLane lane : {Vmm, Monitor, GuestUser, Halted}) {
    EXPECT_EQ(band_pixel(image, canvas, lane, 2000), rgb(palette::lane_band(lane)))
        << lane_name(lane) << ": " << colour_name(band_pixel(image, canvas, lane, 2000));
  }
  EXPECT_EQ(band_pixel(image, canvas, GuestKernel, 500), rgb(palette::lane_band(GuestKernel)));
  // The bands differ from each other and from the background.
  for (const TimelineLane lane : lanes) {
    EXPECT_NE(rgb(palette::lane_band(lane)), rgb(palette::background()));
    for (const TimelineLane other : lanes) {
      if (other != lane) {
        EXPECT_NE(rgb(palette::lane_band(lane)), rgb(palette::lane_band(other)));
      }
    }
  }
  // Between bands (away from connectors), the background.
  const int gap = canvas.lane_band(Vmm).bottom() + 4;
  EXPECT_EQ(rgb_at(image, canvas.x_of(2000), gap), rgb(palette::background()));
}

TEST(TimelineView, EachSpanInItsLaneAndColour) {
  OffscreenView shown(QStringLiteral("timeline"), QSize(1000, 420));
  TimelineCanvas& canvas = canvas_of(shown);
  const QImage image = shown.image();
  const SpanLabel running = SpanLabel::guest_running();
  struct Expected {
    TimelineLane lane;
    std::uint64_t time;
    QColor colour;
  };
  const std::vector<Expected> spans = {
      {GuestUser, 500, palette::span(GuestUser, running)},  // user code before it all
      {Vmm, 1100, palette::reason(EventKind::VmExit, EventReason::IoOut)},
      {Monitor, 1350, palette::reason(EventKind::MonitorTrap, EventReason::SystemCall)},
      {GuestKernel, 2400, palette::span(GuestKernel, running)},  // the system call's kernel
      {Monitor, 3200, palette::reason(EventKind::MonitorTrap, EventReason::PrivilegedInstruction)},
      {GuestUser, 5000, palette::span(GuestUser, running)},
      {Vmm, 8000, palette::reason(EventKind::VmExit, EventReason::Halt)},
      {Halted, 8000, palette::reason(EventKind::GuestHalt, EventReason::Halt)},
  };
  for (const Expected& span : spans) {
    EXPECT_EQ(band_pixel(image, canvas, span.lane, span.time), rgb(span.colour))
        << lane_name(span.lane) << " at " << span.time << ": "
        << colour_name(band_pixel(image, canvas, span.lane, span.time));
  }
  // Distinct colours for what differs.
  EXPECT_NE(rgb(palette::span(GuestUser, running)), rgb(palette::span(GuestKernel, running)));
  EXPECT_NE(rgb(palette::reason(EventKind::VmExit, EventReason::IoOut)),
            rgb(palette::reason(EventKind::VmExit, EventReason::Halt)));
}

TEST(TimelineView, AConnectorAtEveryChangeOfLevel) {
  OffscreenView shown(QStringLiteral("timeline"), QSize(1000, 420));
  TimelineCanvas& canvas = canvas_of(shown);
  const QImage image = shown.image();
  const TraceModel& trace = *shown.document.trace();
  const auto transitions = trace.levels().transitions();
  ASSERT_EQ(transitions.size(), 11u);
  const QRgb connector = rgb(palette::connector());
  const auto lanes = canvas.shown_lanes();
  auto row_of = [&](TimelineLane lane) {
    return static_cast<std::size_t>(std::find(lanes.begin(), lanes.end(), lane) - lanes.begin());
  };
  std::vector<int> columns;
  for (const Transition& transition : transitions) {
    const int x = canvas.x_of(transition.time_ns);
    columns.push_back(x);
    // In the gap next to the band left, on the side of the band entered,
    // and in the gap next to the band entered.
    const bool down = row_of(transition.from) < row_of(transition.to);
    const QRect from = canvas.lane_band(transition.from);
    const QRect to = canvas.lane_band(transition.to);
    const int leaving = down ? from.bottom() + 3 : from.top() - 3;
    const int entering = down ? to.top() - 7 : to.bottom() + 7;
    EXPECT_EQ(rgb_at(image, x, leaving), connector)
        << lane_name(transition.from) << " -> " << lane_name(transition.to) << " at "
        << transition.time_ns << " (x " << x << "): " << colour_name(rgb_at(image, x, leaving));
    EXPECT_EQ(rgb_at(image, x, entering), connector)
        << lane_name(transition.from) << " -> " << lane_name(transition.to) << " at "
        << transition.time_ns;
  }
  // The user -> monitor connector of the system call crosses the kernel's band.
  EXPECT_EQ(rgb_at(image, canvas.x_of(1000), canvas.lane_band(GuestKernel).center().y()),
            connector);
  // Nowhere else: each gap is free of connectors away from the transitions.
  for (std::size_t row = 0; row + 1 < lanes.size(); ++row) {
    const int y = canvas.lane_band(lanes[row]).bottom() + 3;
    for (int x = canvas.plot_area().left(); x <= canvas.plot_area().right(); ++x) {
      const bool near = std::any_of(columns.begin(), columns.end(),
                                    [&](int column) { return std::abs(column - x) <= 3; });
      if (!near) {
        EXPECT_NE(rgb_at(image, x, y), connector) << "a connector at x " << x;
      }
    }
  }
}

TEST(TimelineView, ZoomPanAndTheWholeRun) {
  OffscreenView shown(QStringLiteral("timeline"), QSize(1000, 420));
  TimelineCanvas& canvas = canvas_of(shown);
  EXPECT_EQ(canvas.view_range().start_ns, 0u);
  EXPECT_EQ(canvas.view_range().end_ns, 9000u);
  // Zooming in around a point keeps the time under it.
  const int x = canvas.x_of(3000);
  canvas.zoom(3.0, x);
  EXPECT_EQ(canvas.view_range().length(), 3000u);
  EXPECT_NEAR(static_cast<double>(canvas.time_at(x)), 3000.0, 20.0);
  // Keys: + zooms in, - out, the arrows pan, Home shows the whole run.
  QTest::keyClick(&canvas, Qt::Key_Plus);
  EXPECT_EQ(canvas.view_range().length(), 2000u);
  const std::uint64_t start = canvas.view_range().start_ns;
  QTest::keyClick(&canvas, Qt::Key_Right);
  EXPECT_GT(canvas.view_range().start_ns, start);
  EXPECT_EQ(canvas.view_range().length(), 2000u) << "panning keeps the zoom";
  QTest::keyClick(&canvas, Qt::Key_Minus);
  EXPECT_EQ(canvas.view_range().length(), 3000u);
  // A drag pans, by the pixels dragged.
  const TimeRange before = canvas.view_range();
  const int y = canvas.lane_band(Vmm).center().y();
  QTest::mousePress(&canvas, Qt::LeftButton, Qt::NoModifier, QPoint(600, y));
  QTest::mouseMove(&canvas, QPoint(500, y));
  QTest::mouseRelease(&canvas, Qt::LeftButton, Qt::NoModifier, QPoint(500, y));
  EXPECT_GT(canvas.view_range().start_ns, before.start_ns) << "dragging left shows later";
  QTest::keyClick(&canvas, Qt::Key_Home);
  EXPECT_EQ(canvas.view_range().length(), 9000u);
  // Never past the run, never shorter than kShortestView.
  canvas.pan(-10000);
  EXPECT_EQ(canvas.view_range().start_ns, 0u);
  canvas.zoom(1e9);
  EXPECT_EQ(canvas.view_range().length(), TimelineCanvas::kShortestView);
  canvas.zoom(1e-9);
  EXPECT_EQ(canvas.view_range().length(), 9000u);
  // Zoomed in, the spans still line up with the ruler: the kernel runs at 2400.
  canvas.set_view_range({2000, 3200});
  const QImage image = shown.image();
  EXPECT_EQ(band_pixel(image, canvas, GuestKernel, 2400),
            rgb(palette::span(GuestKernel, SpanLabel::guest_running())));
  EXPECT_EQ(band_pixel(image, canvas, Vmm, 3100),
            rgb(palette::reason(EventKind::VmExit, EventReason::IoOut)));
}

TEST(TimelineView, ShiftDragSelectsARangeTheOtherViewsFollow) {
  OffscreenView shown(QStringLiteral("timeline"), QSize(1000, 420));
  TimelineCanvas& canvas = canvas_of(shown);
  (void)shown.image();  // lays the bands out
  const int y = canvas.lane_band(Monitor).center().y();
  const int from = canvas.x_of(3000);
  const int to = canvas.x_of(4300);
  QTest::mousePress(&canvas, Qt::LeftButton, Qt::ShiftModifier, QPoint(from, y));
  QTest::mouseMove(&canvas, QPoint(to, y));
  QTest::mouseRelease(&canvas, Qt::LeftButton, Qt::ShiftModifier, QPoint(to, y));
  ASSERT_TRUE(shown.document.has_selection());
  EXPECT_NEAR(static_cast<double>(shown.document.range().start_ns), 3000.0, 15.0);
  EXPECT_NEAR(static_cast<double>(shown.document.range().end_ns), 4300.0, 15.0);
  EXPECT_EQ(shown.document.aggregates().events, 4u) << "the aggregates follow the selection";
  // The selection is drawn over the plot (translucent).
  const QImage image = shown.image();
  const QRgb selected = band_pixel(image, canvas, Halted, 3500);
  EXPECT_NE(selected, rgb(palette::lane_band(Halted)));
  EXPECT_EQ(band_pixel(image, canvas, Halted, 2000), rgb(palette::lane_band(Halted)));
  QTest::keyClick(&canvas, Qt::Key_Escape);
  EXPECT_FALSE(shown.document.has_selection());
}

TEST(TimelineView, FindJumpsToEachMatch) {
  OffscreenView shown(QStringLiteral("timeline"), QSize(1000, 420));
  auto& timeline = static_cast<TimelineView&>(*shown.view);
  std::vector<EventIndex> listed;
  QObject::connect(
      &shown.links, &ViewLinks::matches_found,
      [&](const std::vector<EventIndex>& matches, const QString&) { listed = matches; });
  timeline.find(QStringLiteral("io-out"));
  EXPECT_EQ(timeline.matches(), (std::vector<EventIndex>{0, 2, 4, 6}));
  EXPECT_EQ(listed, timeline.matches()) << "the event list gets them";
  // From the middle of the whole run (4500) on: the exit at 6000.
  EXPECT_EQ(timeline.canvas().highlighted(), 6u);
  timeline.next_match();
  EXPECT_EQ(timeline.canvas().highlighted(), 0u) << "after the last, the first";
  timeline.previous_match();
  EXPECT_EQ(timeline.canvas().highlighted(), 6u);
  const TimeRange view = timeline.canvas().view_range();
  EXPECT_LE(view.start_ns, 6000u);
  EXPECT_GE(view.end_ns, 6400u) << "the match is in view";

  timeline.find(QStringLiteral("0x4002a8"));  // the user's syscall instruction
  EXPECT_EQ(timeline.matches(), (std::vector<EventIndex>{1}));
  timeline.find(QStringLiteral("0x101000-0x101fff"));
  EXPECT_EQ(timeline.matches(), (std::vector<EventIndex>{3, 7}));
  timeline.find(QStringLiteral("iretq"));
  EXPECT_EQ(timeline.matches(), (std::vector<EventIndex>{5}));
  timeline.find(QStringLiteral("0xnothex"));
  EXPECT_TRUE(timeline.matches().empty());
  EXPECT_TRUE(timeline.status().contains(QStringLiteral("not a guest RIP")));
  // A click elsewhere (a chart's bar) asks the timeline through the links.
  emit shown.links.find_requested(QStringLiteral("hlt"));
  EXPECT_EQ(timeline.matches(), (std::vector<EventIndex>{7, 8}));

  // The found event is outlined in the highlight colour.
  timeline.find(QStringLiteral("system-call"));
  ASSERT_EQ(timeline.canvas().highlighted(), 1u);
  const QImage image = shown.image();
  const TimelineCanvas& canvas = timeline.canvas();
  const QRect band = canvas.lane_band(Monitor);
  bool outlined = false;
  for (int x = canvas.x_of(1200) - 3; x <= canvas.x_of(1500) + 3; ++x)
    outlined = outlined || rgb_at(image, x, band.top() - 2) == rgb(palette::highlight());
  EXPECT_TRUE(outlined);
}

TEST(TimelineView, HoverShowsTheEventUnderThePointer) {
  OffscreenView shown(QStringLiteral("timeline"), QSize(1000, 420));
  TimelineCanvas& canvas = canvas_of(shown);
  (void)shown.image();
  auto hover = [&](TimelineLane lane, std::uint64_t time) {
    const QPoint point(canvas.x_of(time), canvas.lane_band(lane).center().y());
    QHelpEvent help(QEvent::ToolTip, point, canvas.mapToGlobal(point));
    QCoreApplication::sendEvent(&canvas, &help);
    return QToolTip::isVisible() ? QToolTip::text() : QString();
  };
  const QString exit = hover(Vmm, 1400);
  EXPECT_TRUE(exit.startsWith(QStringLiteral("vm-exit io-out 0xe8"))) << exit.toStdString();
  EXPECT_TRUE(exit.contains(QStringLiteral("guest RIP 0xffffff8000003072")));
  const QString trap = hover(Monitor, 4200);
  EXPECT_TRUE(trap.contains(QStringLiteral("instruction: iretq"))) << trap.toStdString();
  EXPECT_TRUE(trap.contains(QStringLiteral("vector 0xb")));
  const QString running = hover(GuestKernel, 2400);
  EXPECT_TRUE(running.startsWith(QStringLiteral("Guest kernel running, 1.800 to 3.000 µs")))
      << running.toStdString();
  EXPECT_TRUE(running.contains(QStringLiteral("ended by:\nvm-exit io-out 0xe8")));
  // Over nothing, the tooltip goes (Qt hides it after a short delay).
  hover(Halted, 2000);
  EXPECT_TRUE(testing::wait_until([] { return !QToolTip::isVisible(); }, 3000))
      << "nothing there, no tooltip";
}

TEST(TimelineView, AClickOnASpanPicksItsEventAndADragDoesNot) {
  OffscreenView shown(QStringLiteral("timeline"), QSize(1000, 420));
  TimelineCanvas& canvas = canvas_of(shown);
  (void)shown.image();
  QSignalSpy picked(&shown.links, &ViewLinks::event_picked);
  const TimeRange before = canvas.view_range();
  const QPoint trap(canvas.x_of(4200), canvas.lane_band(Monitor).center().y());
  QTest::mouseClick(&canvas, Qt::LeftButton, {}, trap);
  ASSERT_EQ(picked.size(), 1);
  const auto event = picked.first().first().value<EventIndex>();
  EXPECT_EQ(shown.document.trace()->detail(event), "iretq");
  EXPECT_EQ(canvas.view_range().start_ns, before.start_ns) << "a pick leaves the view as it was";
  EXPECT_EQ(canvas.view_range().end_ns, before.end_ns);
  // Over nothing, or dragging, picks nothing.
  QTest::mouseClick(&canvas, Qt::LeftButton, {},
                    QPoint(canvas.x_of(2000), canvas.lane_band(Halted).center().y()));
  QTest::mousePress(&canvas, Qt::LeftButton, {}, trap);
  QTest::mouseMove(&canvas, trap + QPoint(40, 0));
  QTest::mouseRelease(&canvas, Qt::LeftButton, {}, trap + QPoint(40, 0));
  EXPECT_EQ(picked.size(), 1);
}

TEST(TimelineView, ALargeTraceDrawsFromItsLevelOfDetail) {
  // 200,000 exits: a redraw of the whole run costs what the pixels cost.
  auto trace = std::make_shared<const TraceModel>(
      testing::load_text(testing::trace_text(testing::random_events(3, 200'000))));
  OffscreenView shown(QStringLiteral("timeline"), QSize(1400, 520), trace);
  TimelineCanvas& canvas = canvas_of(shown);
  QElapsedTimer timer;
  timer.start();
  const QImage image = shown.image();
  const qint64 whole = timer.elapsed();
  canvas.zoom(50.0);
  timer.restart();
  (void)shown.image();
  const qint64 zoomed = timer.elapsed();
  EXPECT_LT(whole, 1000) << "ms to draw 200,000 exits";
  EXPECT_LT(zoomed, 1000);
  // The exits fill the VMM's band across the run.
  const QRect band = canvas.lane_band(Vmm);
  int busy = 0;
  for (int x = band.left(); x <= band.right(); ++x)
    busy += rgb_at(image, x, band.center().y()) != rgb(palette::lane_band(Vmm)) ? 1 : 0;
  EXPECT_GT(busy, band.width() / 2);
}

}  // namespace
}  // namespace vmlab::viz
