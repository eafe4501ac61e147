// The visualizer's window against its issue's scale goals, the Qt side of
// viz_engine_bench.cpp: a trace of 1,000,000 events opens in under 2 s;
// the timeline redraws in under 16 ms at every zoom level and while
// panning; under 200 bytes an event in memory.
//
// The timeline is the window's own TimelineCanvas at the timeline view's
// render size (view_kinds(), 1400x520), drawn off screen into a QImage as
// --render draws it (QWidget::render): a frame is all the window paints, the
// six lanes' level-of-detail queries, spans, connectors, ruler and legend.
// The trace is the engine bench's synthetic run (viz_bench_support.hpp).
//
// - open: TraceModel::load_file, TraceDocument::set_trace (which computes
//   the aggregates the charts show) and the timeline's first paint, of the
//   whole run; median and worst of 3;
// - memory: the process's resident growth over the first open (the model,
//   the document's aggregates, the canvas's items and what Qt allocates)
//   over the events, and TraceModel::memory_bytes() within it;
// - redraw: at every zoom from the whole run down to the shortest view
//   (TimelineCanvas::kShortestView), each level half the one before, 16
//   jumps across the run (set_view_range, as the overview or a search
//   does) each followed by a pan of a tenth of the width (pan(), as a drag
//   does): a frame after each, median and worst per zoom.
//
//   build/bench/vmlab_bench_viz_timeline
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <QApplication>
#include <QImage>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "run_benchmarks.hpp"
#include "viz_bench_support.hpp"
#include "vmlab/viz/app/timeline_canvas.hpp"
#include "vmlab/viz/app/view.hpp"
#include "vmlab/viz/trace_model.hpp"

namespace {

using namespace vmlab;
using namespace vmlab::bench;

constexpr std::size_t kEvents = 1'000'000;
constexpr int kOpens = 3;
constexpr int kJumps = 16;  // each followed by a pan: two frames

constexpr double kOpenGoalSeconds = 2.0;
constexpr double kRedrawGoalMilliseconds = 16.0;
constexpr double kBytesPerEventGoal = 200.0;

std::filesystem::path g_trace_path;
std::size_t g_file_bytes = 0;
// The window's side: one document, one canvas, one frame to draw into.
viz::TraceDocument* g_document = nullptr;
viz::TimelineCanvas* g_canvas = nullptr;
QImage* g_frame = nullptr;

std::vector<double> g_open_seconds;  // main's first, then BM_Open's
double g_resident_growth = 0;        // bytes, over the first open
std::size_t g_model_bytes = 0;

struct ZoomSamples {
  std::uint64_t window_ns = 0;
  std::vector<double> milliseconds;  // jumps and pans
  std::vector<double> pan_milliseconds;
};
std::vector<ZoomSamples> g_zooms;

void paint() {
  g_canvas->render(g_frame);
}

// Opens the trace as a window does and draws it; the seconds that took, or
// an error. The last trace is dropped first, unmeasured: a window opening
// its first trace has none to free.
vmlab::Result<double> open_trace() {
  g_document->set_trace(nullptr);
  paint();
  const auto start = Clock::now();
  auto model = viz::TraceModel::load_file(g_trace_path.string());
  if (!model) return model.error();
  g_document->set_trace(std::make_shared<const viz::TraceModel>(std::move(*model)),
                        QString::fromStdString(g_trace_path.string()));
  paint();
  return seconds_since(start);
}

// The opens after main's first.
void BM_Open(benchmark::State& state) {
  for (auto _ : state) {
    const auto elapsed = open_trace();
    if (!elapsed) {
      state.SkipWithError(elapsed.error().message.c_str());
      return;
    }
    g_open_seconds.push_back(*elapsed);
    state.SetIterationTime(*elapsed);
  }
  state.counters["events"] = static_cast<double>(kEvents);
  state.counters["goal_s"] = kOpenGoalSeconds;
}

// Two frames per jump: after it, and after a pan from there.
void BM_Redraw(benchmark::State& state, std::size_t zoom) {
  ZoomSamples& samples = g_zooms[zoom];
  const viz::TimeRange run = g_document->run_range();
  const double pan_pixels = g_canvas->plot_area().width() / 10.0;
  int frame = 0;
  for (auto _ : state) {
    const bool jump = frame % 2 == 0;
    const auto start = Clock::now();
    if (jump) {
      const std::uint64_t room = run.length() - std::min(run.length(), samples.window_ns);
      const int place = frame / 2;
      const std::uint64_t from =
          run.start_ns + static_cast<std::uint64_t>(static_cast<unsigned __int128>(room) *
                                                    static_cast<unsigned>(place) / (kJumps - 1));
      g_canvas->set_view_range({from, from + samples.window_ns});
    } else {
      // Back at the end of the run, forwards elsewhere: always a real move.
      g_canvas->pan(g_canvas->view_range().end_ns >= run.end_ns ? -pan_pixels : pan_pixels);
    }
    paint();
    const double elapsed = seconds_since(start);
    state.SetIterationTime(elapsed);
    samples.milliseconds.push_back(elapsed * 1e3);
    if (!jump) samples.pan_milliseconds.push_back(elapsed * 1e3);
    ++frame;
  }
  state.counters["worst_ms"] =
      *std::max_element(samples.milliseconds.begin(), samples.milliseconds.end());
  state.counters["goal_ms"] = kRedrawGoalMilliseconds;
}

double worst_of(const std::vector<double>& values) {
  return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}

void print_summary() {
  if (g_open_seconds.empty() || g_document->trace() == nullptr) return;
  const double open = median(g_open_seconds);
  const double worst_open = worst_of(g_open_seconds);
  const double bytes_per_event = g_resident_growth / static_cast<double>(kEvents);
  std::printf(
      "\nvisualizer window, a synthetic trace of %zu events (%.1f MB, %.3f s of run), "
      "timeline %dx%d px\n",
      kEvents, static_cast<double>(g_file_bytes) / 1e6,
      static_cast<double>(g_document->run_range().length()) / 1e9, g_frame->width(),
      g_frame->height());
  std::printf("  open (load, set_trace, first paint), %zu times: median %.3f s, worst %.3f s\n",
              g_open_seconds.size(), open, worst_open);
  std::printf(
      "  memory after the first open: the process grew %.1f bytes an event (%.1f MB); "
      "the model %.1f of them (TraceModel::memory_bytes)\n",
      bytes_per_event, g_resident_growth / 1e6,
      static_cast<double>(g_model_bytes) / static_cast<double>(kEvents));
  std::printf("  redraw, a frame after each of %d jumps and %d pans per zoom:\n", kJumps, kJumps);
  std::printf("    %16s %12s %12s %12s\n", "window", "median ms", "worst ms", "worst pan ms");
  double worst_redraw = 0;
  for (const auto& zoom : g_zooms) {
    const double worst = worst_of(zoom.milliseconds);
    worst_redraw = std::max(worst_redraw, worst);
    std::printf("    %16s %12.3f %12.3f %12.3f\n", duration_text(zoom.window_ns).c_str(),
                median(zoom.milliseconds), worst, worst_of(zoom.pan_milliseconds));
  }
  auto verdict = [](bool met) { return met ? "met" : "NOT met"; };
  std::printf(
      "goals: open under %.0f s: %s (worst %.3f s); redraw under %.0f ms at every zoom and "
      "pan: %s (worst %.3f ms over %zu zooms); under %.0f bytes an event: %s (%.1f)\n",
      kOpenGoalSeconds, verdict(worst_open < kOpenGoalSeconds), worst_open, kRedrawGoalMilliseconds,
      verdict(worst_redraw < kRedrawGoalMilliseconds), worst_redraw, g_zooms.size(),
      kBytesPerEventGoal, verdict(bytes_per_event < kBytesPerEventGoal), bytes_per_event);
}

}  // namespace

int main(int argc, char** argv) {
  // No display needed to draw into an image.
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication application(argc, argv);
  g_trace_path = std::filesystem::temp_directory_path() /
                 ("vmlab-bench-viz-timeline-" + std::to_string(::getpid()) + ".trace");
  if (!write_synthetic_trace(g_trace_path, kEvents)) {
    std::fprintf(stderr, "cannot write %s\n", g_trace_path.c_str());
    return 1;
  }
  g_file_bytes = std::filesystem::file_size(g_trace_path);

  viz::TraceDocument document;
  viz::TimelineCanvas canvas(document);
  const QSize size = viz::find_view_kind(QStringLiteral("timeline"))->render_size;
  canvas.setAttribute(Qt::WA_DontShowOnScreen);
  canvas.resize(size);
  canvas.show();
  QImage frame(size, QImage::Format_ARGB32_Premultiplied);
  QCoreApplication::processEvents();
  g_document = &document;
  g_canvas = &canvas;
  g_frame = &frame;
  // Qt's first paint (fonts, glyph caches) belongs to no trace.
  paint();

  // The first open, in a process that has held no trace: its resident
  // growth is what a trace costs the window.
  const std::size_t resident_before = resident_bytes();
  const auto first = open_trace();
  if (!first) {
    std::fprintf(stderr, "%s\n", first.error().message.c_str());
    std::filesystem::remove(g_trace_path);
    return 1;
  }
  g_resident_growth = static_cast<double>(resident_bytes()) - static_cast<double>(resident_before);
  g_model_bytes = document.trace()->memory_bytes();
  g_open_seconds.push_back(*first);

  benchmark::RegisterBenchmark("open", BM_Open)
      ->Iterations(1)
      ->Repetitions(kOpens - 1)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  std::uint64_t window = document.run_range().length();
  for (; window > viz::TimelineCanvas::kShortestView; window /= 2)
    g_zooms.push_back({.window_ns = window, .milliseconds = {}, .pan_milliseconds = {}});
  g_zooms.push_back({.window_ns = viz::TimelineCanvas::kShortestView,
                     .milliseconds = {},
                     .pan_milliseconds = {}});
  for (std::size_t zoom = 0; zoom < g_zooms.size(); ++zoom) {
    const std::string name = "redraw/window_ns:" + std::to_string(g_zooms[zoom].window_ns);
    benchmark::RegisterBenchmark(name.c_str(), BM_Redraw, zoom)
        ->Iterations(2 * kJumps)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  const int status = vmlab::bench::run_benchmarks(argc, argv, print_summary);
  std::filesystem::remove(g_trace_path);
  return status;
}
