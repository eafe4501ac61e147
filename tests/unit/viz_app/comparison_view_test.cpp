// The comparison view drawn off screen from a small known file: a bar per
// workload and technique in each chart, found by its colour in the
// picture; the failed run's place marked failed in every chart, never an
// empty place or a bar of zero; hvm left out of the monitor's chart; a log
// axis where the figures span decades; the platform and failures above.
#include "vmlab/viz/app/comparison_view.hpp"

#include <gtest/gtest.h>

#include <QtCharts/QBarCategoryAxis>
#include <QtCharts/QBarSeries>
#include <QtCharts/QBarSet>
#include <map>

#include "comparison_sample.hpp"
#include "view_test_support.hpp"
#include "vmlab/viz/app/palette.hpp"

namespace vmlab::viz {
namespace {

using testing::rgb_at;

struct OffscreenComparison {
  explicit OffscreenComparison(const std::string& json = testing::kSmallComparison,
                               QSize size = QSize(1600, 1000)) {
    auto results = parse_comparison_json(json);
    EXPECT_TRUE(results.ok()) << results.error().message;
    if (results) document.set_results(std::move(*results), QStringLiteral("/tmp/small.json"));
    view = make_offscreen_view(*find_view_kind(QStringLiteral("comparison")), document, size);
  }
  QImage image() { return grab_image(*view->content()).convertToFormat(QImage::Format_RGB32); }
  ComparisonView& comparison() { return static_cast<ComparisonView&>(*view); }

  ComparisonDocument document;
  std::unique_ptr<ViewBase> view;
};

// A chart's plot area in the view's coordinates.
QRect plot_in(ViewBase& view, ComparisonChartView& chart) {
  const QPolygon on_view = chart.mapFromScene(chart.chart()->mapToScene(chart.chart()->plotArea()));
  return QRect(chart.viewport()->mapTo(&view, on_view.boundingRect().topLeft()),
               on_view.boundingRect().size());
}

QPoint centre_in(ViewBase& view, ComparisonChartView& chart,
                 const ComparisonChartView::Place& place) {
  return chart.viewport()->mapTo(&view, chart.place_rect(place).center().toPoint());
}

// Runs of each colour along a line of the picture: a bar is one run.
std::map<QRgb, int> runs_along(const QImage& image, QPoint from, QPoint to) {
  std::map<QRgb, int> runs;
  QRgb previous = 0x1000000;  // no colour
  const int steps = std::max(std::abs(to.x() - from.x()), std::abs(to.y() - from.y()));
  for (int step = 0; step <= steps; ++step) {
    const int x = from.x() + (to.x() - from.x()) * step / std::max(steps, 1);
    const int y = from.y() + (to.y() - from.y()) * step / std::max(steps, 1);
    const QRgb colour = rgb_at(image, x, y);
    if (colour != previous) ++runs[colour];
    previous = colour;
  }
  return runs;
}

QRgb rgb(const QColor& colour) {
  return colour.rgb() & 0xffffffu;
}

QStringList set_names(ComparisonChartView& chart) {
  QStringList names;
  if (auto* series = qobject_cast<QAbstractBarSeries*>(chart.chart()->series().value(0))) {
    for (const QBarSet* set : series->barSets())
      names << set->label();
  }
  return names;
}

// Along the foot of each bar of a grouped chart: `bars` runs of each set's
// colour, one marked place per failed run.
void expect_bars(ViewBase& view, ComparisonChartView& chart, const QImage& image,
                 const std::map<QString, int>& bars, int failed) {
  auto* series = qobject_cast<QBarSeries*>(chart.chart()->series().value(0));
  ASSERT_NE(series, nullptr);
  const QRect plot = plot_in(view, chart);
  const int foot = plot.bottom() - 3;
  auto runs = runs_along(image, QPoint(plot.left() + 1, foot), QPoint(plot.right() - 1, foot));
  for (QBarSet* set : series->barSets()) {
    EXPECT_EQ(runs[rgb(set->color())], bars.at(set->label())) << set->label().toStdString();
  }
  EXPECT_EQ(runs[rgb(palette::failed_slot())], failed);
}

TEST(ComparisonView, ABarPerWorkloadAndTechnique) {
  OffscreenComparison shown;
  ComparisonView& view = shown.comparison();
  EXPECT_EQ(view.workloads(), (QStringList{"syscalls", "pio"}));
  EXPECT_EQ(view.configurations(), (QStringList{"hvm", "full", "bt"}));
  const QImage image = shown.image();
  ASSERT_EQ(image.size(), QSize(1600, 1000));

  ComparisonChartView& relative = view.chart_view(ComparisonView::kRelative);
  EXPECT_EQ(set_names(relative), (QStringList{"hvm", "full", "bt"}));
  EXPECT_FALSE(relative.log_axis()) << "0.66 to 1.01";
  expect_bars(*shown.view, relative, image, {{"hvm", 2}, {"full", 2}, {"bt", 1}}, 1);
  QStringList labels;
  for (const auto& place : relative.places())
    labels << place.label;
  // hvm's two, full's two, bt's syscalls and its failed pio.
  EXPECT_EQ(labels, (QStringList{"1.00", "1.00", "0.66", "1.01", "0.85", ""}));
  // The failed place is pio's under bt, and it is marked so at its foot.
  const auto& failed = relative.places().back();
  EXPECT_EQ(failed.mark, QStringLiteral("failed"));
  EXPECT_TRUE(failed.failed);
  EXPECT_EQ(failed.category, 1);
  EXPECT_EQ(failed.set, 2);
  const QPoint centre = centre_in(*shown.view, relative, failed);
  EXPECT_EQ(rgb_at(image, centre.x(), plot_in(*shown.view, relative).bottom() - 3),
            rgb(palette::failed_slot()));

  ComparisonChartView& exits = view.chart_view(ComparisonView::kVmExits);
  EXPECT_FALSE(exits.log_axis()) << "0.6 to 2.95";
  expect_bars(*shown.view, exits, image, {{"hvm", 2}, {"full", 2}, {"bt", 1}}, 1);

  // hvm has no monitor to trap to: not in that chart. 0.004 to 2.8: decades.
  ComparisonChartView& traps = view.chart_view(ComparisonView::kMonitorTraps);
  EXPECT_EQ(set_names(traps), (QStringList{"full", "bt"}));
  EXPECT_TRUE(traps.log_axis());
  expect_bars(*shown.view, traps, image, {{"full", 2}, {"bt", 1}}, 1);
}

TEST(ComparisonView, TimeSharesStackedPerRunAndTheFailedOneMarked) {
  OffscreenComparison shown;
  ComparisonView& view = shown.comparison();
  const QImage image = shown.image();
  ComparisonChartView& shares = view.chart_view(ComparisonView::kShares);
  EXPECT_EQ(set_names(shares),
            (QStringList{"Guest user", "Guest kernel", "Monitor", "VMM", "Halted"}));
  auto* axis = qobject_cast<QBarCategoryAxis*>(shares.chart()->axes(Qt::Vertical).value(0));
  ASSERT_NE(axis, nullptr);
  // The first row on top: the axis counts from the bottom.
  EXPECT_EQ(axis->categories(), (QStringList{"pio · bt", "pio · full", "pio · hvm", "syscalls · bt",
                                             "syscalls · full", "syscalls · hvm"}));
  // Down the rows' left ends: each starts with its first level, the failed
  // one with its mark (hvm's guest time is all kernel at its exits).
  const QRect plot = plot_in(*shown.view, shares);
  auto runs = runs_along(image, QPoint(plot.left() + 3, plot.top() + 1),
                         QPoint(plot.left() + 3, plot.bottom() - 1));
  EXPECT_EQ(runs[rgb(palette::level(TimelineLane::GuestUser))], 2);
  EXPECT_EQ(runs[rgb(palette::level(TimelineLane::GuestKernel))], 3);
  EXPECT_EQ(runs[rgb(palette::failed_slot())], 1);
  const auto failed = std::find_if(shares.places().begin(), shares.places().end(),
                                   [](const auto& place) { return place.failed; });
  ASSERT_NE(failed, shares.places().end());
  EXPECT_EQ(failed->mark, QStringLiteral("failed: the guest timed out after 60 s"));
  EXPECT_EQ(failed->category, 0);
  // Across syscalls under bt (row 3 from the bottom): user, kernel, monitor, VMM.
  const auto row =
      std::find_if(shares.places().begin(), shares.places().end(), [](const auto& place) {
        return place.category == 3 && place.label == QStringLiteral("15%");
      });
  ASSERT_NE(row, shares.places().end()) << "the VMM's 15% of syscalls under bt";
  EXPECT_DOUBLE_EQ(row->from, 85.0);
  EXPECT_DOUBLE_EQ(row->to, 100.0);
  const QPoint vmm = centre_in(*shown.view, shares, *row);
  EXPECT_EQ(rgb_at(image, vmm.x(), vmm.y() - 20), rgb(palette::level(TimelineLane::Vmm)));
}

TEST(ComparisonView, SaysWhatItShowsAndWhatFailed) {
  OffscreenComparison shown;
  ComparisonView& view = shown.comparison();
  EXPECT_EQ(view.header_text(),
            QStringLiteral("small.json: 6 runs, 2 workloads under hvm, full, bt; 1 failed."));
  EXPECT_EQ(view.platform_text(),
            QStringLiteral("platform: kvm_intel (hardware) on Test CPU, Linux 6.1"));
  EXPECT_EQ(view.failures_text(),
            QStringLiteral("Failed: pio n=1000 under bt: the guest timed out after 60 s"));
  EXPECT_EQ(view.table().model()->rowCount(), 6);
  view.show_table(true);
  EXPECT_TRUE(view.table().isVisible());
  view.show_table(false);
  EXPECT_FALSE(view.table().isVisible());
}

// What `vmlab simulate --json` writes, cut to what the view reads: a
// measured full run and two platforms' predictions of it.
constexpr const char* kSmallSimulation = R"({
 "format": "vmlab-simulation", "version": 1,
 "platform": "platform: kvm_pvm (software KVM backend) on Test CPU, Linux 6.1",
 "trace": "pf.tsv", "run": "cpu=full workload=pagefaults n=100", "technique": "full",
 "events": 300, "dropped": 0,
 "measured_ns": {"vmm": 100, "monitor": 0, "guest-kernel": 300, "guest-user": 600,
                 "unknown": 0, "halted": 0, "total": 1000},
 "predictions": [
  {"profile": "vtx-2006", "title": "t", "kind": "hardware",
   "predicted_ns": {"vmm": 200, "monitor": 0, "guest-kernel": 0, "guest-user": 300,
                    "unknown": 0, "halted": 0, "total": 500},
   "events": [{"event": "trap-shadow-fill", "count": 200, "becomes": "hidden-page-fault-exit"}]},
  {"profile": "vmware-bt-2006", "title": "t", "kind": "binary-translation",
   "predicted_ns": {"vmm": 0, "monitor": 100, "guest-kernel": 0, "guest-user": 300,
                    "unknown": 0, "halted": 0, "total": 400},
   "events": [{"event": "trap-shadow-fill", "count": 200, "becomes": "bt-hidden-page-fault"}]}
 ]
})";

TEST(ComparisonView, ShowsASimulationBesideItsMeasuredRun) {
  OffscreenComparison shown(kSmallSimulation);
  ComparisonView& view = shown.comparison();
  EXPECT_EQ(view.workloads(), (QStringList{"pagefaults"}));
  EXPECT_EQ(view.configurations(), (QStringList{"measured full", "vtx-2006", "vmware-bt-2006"}));
  EXPECT_EQ(view.header_text(),
            QStringLiteral("small.json: pagefaults replayed under vtx-2006, vmware-bt-2006."));
  EXPECT_TRUE(view.platform_text().startsWith(QStringLiteral("Recorded on platform: kvm_pvm")))
      << view.platform_text().toStdString();
  const QImage image = shown.image();
  ComparisonChartView& relative = view.chart_view(ComparisonView::kRelative);
  EXPECT_TRUE(relative.chart()->title().contains(QStringLiteral("relative to the measured run")));
  QStringList labels;
  for (const auto& place : relative.places())
    labels << place.label;
  EXPECT_EQ(labels, (QStringList{"1.00", "0.5", "0.4"}));
  // Each platform in the colour of its kind of technique: the measured
  // run full's, the hardware one hvm's, the translator bt's.
  expect_bars(*shown.view, relative, image,
              {{"measured full", 1}, {"vtx-2006", 1}, {"vmware-bt-2006", 1}}, 0);
  auto* series = qobject_cast<QBarSeries*>(relative.chart()->series().value(0));
  ASSERT_NE(series, nullptr);
  EXPECT_EQ(rgb(series->barSets()[0]->color()), rgb(palette::technique("full", 0)));
  EXPECT_EQ(rgb(series->barSets()[1]->color()), rgb(palette::technique("hvm", 0)));
  EXPECT_EQ(rgb(series->barSets()[2]->color()), rgb(palette::technique("bt", 0)));
  // The table says what its figures are: time per operation, against the run.
  QStringList headers;
  for (int column = 0; column < view.table().model()->columnCount(); ++column)
    headers << view.table().model()->headerData(column, Qt::Horizontal).toString();
  EXPECT_TRUE(headers.contains(QStringLiteral("Run ns/op"))) << headers.join(", ").toStdString();
  EXPECT_TRUE(headers.contains(QStringLiteral("Relative to measured")));
}

TEST(ComparisonView, FollowsItsDocument) {
  ComparisonDocument document;
  const auto view = make_offscreen_view(*find_view_kind(QStringLiteral("comparison")), document,
                                        QSize(1000, 700));
  auto& comparison = static_cast<ComparisonView&>(*view);
  EXPECT_TRUE(comparison.header_text().startsWith(QStringLiteral("No comparison open")));
  EXPECT_TRUE(comparison.workloads().isEmpty());

  // No hvm run: nothing to be relative to, said in each place; a workload
  // at two Ns is two groups.
  std::string json = testing::kSmallComparison;
  auto results = parse_comparison_json(json);
  ASSERT_TRUE(results.ok());
  std::vector<ComparisonRow> rows;
  for (ComparisonRow row : results->rows) {
    if (row.cpu == "hvm") continue;
    row.relative_to_hvm.reset();
    if (row.workload == "pio") row.workload = "syscalls";
    rows.push_back(row);
  }
  results->rows = rows;
  results->platform_line = "platform: kvm_pvm (software KVM backend (PVM)) on Test CPU";
  document.set_results(std::move(*results), QStringLiteral("other.json"));
  view->prepare_for_render();
  EXPECT_EQ(comparison.workloads(), (QStringList{"syscalls n=500", "syscalls n=1000"}));
  EXPECT_EQ(comparison.configurations(), (QStringList{"full", "bt"}));
  for (const auto& place : comparison.chart_view(ComparisonView::kRelative).places()) {
    EXPECT_EQ(place.mark, place.failed ? QStringLiteral("failed") : QStringLiteral("no hvm run"));
  }
  EXPECT_TRUE(comparison.platform_text().contains(QStringLiteral("kvm_pvm runs guest kernel")))
      << "why a deprivileged kernel beats hvm there";
}

}  // namespace
}  // namespace vmlab::viz
