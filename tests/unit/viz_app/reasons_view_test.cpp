// The reasons view drawn off screen from the hand-written trace: a bar per
// reason in each chart, found by its colour in the picture, in the order of
// the figures, following the selected range; the costly RIPs beneath.
#include "vmlab/viz/app/reasons_view.hpp"

#include <gtest/gtest.h>

#include "view_test_support.hpp"
#include "vmlab/viz/app/palette.hpp"

namespace vmlab::viz {
namespace {

using testing::OffscreenView;
using testing::rgb_at;

// The bars of a chart in the picture of the view: runs of the bars' colour
// down a column just right of the category axis.
int bars_in(const QImage& image, ReasonsView& view, QChartView& chart_view, const QColor& colour) {
  const QRectF plot = chart_view.chart()->plotArea();
  const QPolygon on_view = chart_view.mapFromScene(chart_view.chart()->mapToScene(plot));
  const QRect area = QRect(chart_view.viewport()->mapTo(&view, on_view.boundingRect().topLeft()),
                           on_view.boundingRect().size());
  const int x = area.left() + 3;
  int bars = 0;
  bool inside = false;
  for (int y = area.top(); y <= area.bottom(); ++y) {
    const bool bar = rgb_at(image, x, y) == (colour.rgb() & 0xffffffu);
    if (bar && !inside) ++bars;
    inside = bar;
  }
  return bars;
}

TEST(ReasonsView, ABarPerReasonInEachChart) {
  OffscreenView shown(QStringLiteral("reasons"), QSize(1200, 760));
  auto& reasons = static_cast<ReasonsView&>(*shown.view);
  const QImage image = shown.image();
  ASSERT_EQ(image.size(), QSize(1200, 760));
  // Most first; equal counts as the aggregates order them.
  const QStringList counts = {"exit io-out",      "trap privileged-instruction",
                              "asleep hlt",       "inject external-interrupt",
                              "trap system-call", "exit hlt"};
  EXPECT_EQ(reasons.count_categories(), counts);
  EXPECT_EQ(bars_in(image, reasons, reasons.counts_view(), palette::count_bars()), 6);
  // Time: the interrupt is an instant (no bar); the rest by their time.
  const QStringList times = {"exit io-out", "exit hlt", "asleep hlt", "trap privileged-instruction",
                             "trap system-call"};
  EXPECT_EQ(reasons.time_categories(), times);
  EXPECT_EQ(bars_in(image, reasons, reasons.time_view(), palette::time_bars()), 5);
  // The costly RIPs, the hlt exit's first.
  ASSERT_EQ(reasons.costly_rips().model()->rowCount(), 4);
  EXPECT_EQ(reasons.costly_rips().model()->index(0, 0).data().toString(), "0x101020");
}

TEST(ReasonsView, FollowsTheSelectedRange) {
  OffscreenView shown(QStringLiteral("reasons"), QSize(1200, 760));
  auto& reasons = static_cast<ReasonsView&>(*shown.view);
  shown.document.set_range({3000, 4300});
  shown.view->prepare_for_render();
  const QImage image = shown.image();
  EXPECT_EQ(reasons.count_categories(),
            (QStringList{"trap privileged-instruction", "exit io-out"}));
  EXPECT_EQ(bars_in(image, reasons, reasons.counts_view(), palette::count_bars()), 2);
  EXPECT_EQ(bars_in(image, reasons, reasons.time_view(), palette::time_bars()), 2);
  EXPECT_EQ(reasons.costly_rips().model()->rowCount(), 1);
  shown.document.clear_range();
  EXPECT_EQ(reasons.count_categories().size(), 6);
}

TEST(ReasonsView, ManyReasonsEndInOneOtherBar) {
  // More reasons than a chart shows: the smallest become "N other reasons".
  std::string text = testing::trace_header(20);
  const std::vector<EventReason> reasons = {EventReason::IoIn,
                                            EventReason::IoOut,
                                            EventReason::MmioRead,
                                            EventReason::MmioWrite,
                                            EventReason::Halt,
                                            EventReason::Interrupted,
                                            EventReason::InterruptWindowOpen,
                                            EventReason::Shutdown,
                                            EventReason::FailEntry,
                                            EventReason::InternalError,
                                            EventReason::SystemEvent,
                                            EventReason::Debug,
                                            EventReason::Unknown,
                                            EventReason::ShadowFill,
                                            EventReason::GuestPageFault,
                                            EventReason::PageTableWrite,
                                            EventReason::SystemCall,
                                            EventReason::CallOut,
                                            EventReason::IndirectMiss,
                                            EventReason::CodeInvalidated};
  std::uint64_t time = 100;
  for (const EventReason reason : reasons) {
    text += testing::event_line({.time_ns = time,
                                 .duration_ns = 50,
                                 .kind = EventKind::VmExit,
                                 .reason = reason,
                                 .from = PrivilegeLevel::GuestKernel,
                                 .to = PrivilegeLevel::Vmm});
    time += 100;
  }
  OffscreenView shown(QStringLiteral("reasons"), QSize(1200, 760),
                      std::make_shared<const TraceModel>(testing::load_text(text)));
  auto& view = static_cast<ReasonsView&>(*shown.view);
  ASSERT_EQ(view.count_categories().size(), ReasonsView::kMostBars);
  EXPECT_EQ(view.count_categories().back(), QStringLiteral("7 other reasons"));
  EXPECT_EQ(bars_in(shown.image(), view, view.counts_view(), palette::count_bars()),
            ReasonsView::kMostBars);
}

}  // namespace
}  // namespace vmlab::viz
