// The visualizer engine against its issue's goals: a trace of 1,000,000
// events opens in under 2 s; zooming or panning the timeline redraws in
// under 16 ms at every zoom level; under 200 bytes an event in memory.
//
// The trace is synthetic (viz_bench_support.hpp), in the mix of the runs
// vmlab makes. The same goals for the window: viz_timeline_bench.cpp.
//
// - load: TraceModel::load_file, the whole file to a model ready to draw
//   (parse, order, lanes, levels, sums), median of 5;
// - memory: the model's bytes after load (TraceModel::memory_bytes, the
//   capacity of everything it keeps) over its events, and the process's
//   resident growth over that load as a cross-check (malloc's own overhead
//   and pages it keeps after the load's transient vectors are freed);
// - redraw: one frame of the timeline, a 1920-pixel query of each of the six
//   lanes, at every zoom from the whole run down to a 1 us window (each
//   level half the one before), panned across the whole run at 64
//   positions; median and worst per zoom, and the items drawn (six lanes).
//
//   build/bench/vmlab_bench_viz_engine
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "run_benchmarks.hpp"
#include "viz_bench_support.hpp"
#include "vmlab/events.hpp"
#include "vmlab/viz/aggregates.hpp"
#include "vmlab/viz/lod.hpp"
#include "vmlab/viz/search.hpp"
#include "vmlab/viz/trace_model.hpp"

namespace {

using namespace vmlab;
using namespace vmlab::bench;

constexpr std::size_t kEvents = 1'000'000;
constexpr std::uint32_t kWidth = 1920;
constexpr int kLoads = 5;
constexpr int kPans = 64;
constexpr std::uint64_t kNarrowestWindow = 1000;  // ns

constexpr double kLoadGoalSeconds = 2.0;
constexpr double kRedrawGoalMilliseconds = 16.0;
constexpr double kBytesPerEventGoal = 200.0;

std::filesystem::path g_trace_path;
std::unique_ptr<viz::TraceModel> g_model;  // loaded once, for the redraws
std::size_t g_file_bytes = 0;
double g_resident_growth = 0;  // bytes, over the model's load
std::vector<double> g_load_seconds;
struct ZoomSamples {
  std::uint64_t window_ns = 0;
  std::vector<double> milliseconds;
  std::size_t items = 0;  // drawn in the last frame
};
std::vector<ZoomSamples> g_zooms;
double g_aggregate_ms = 0, g_search_ms = 0;
// Seconds into one load at which reading, ordering, building began, and its end.
std::array<double, 4> g_phase_start{};

void BM_Load(benchmark::State& state) {
  for (auto _ : state) {
    const auto start = Clock::now();
    auto model = viz::TraceModel::load_file(g_trace_path.string());
    const double elapsed = seconds_since(start);
    if (!model) {
      state.SkipWithError(model.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(model->events().size());
    g_load_seconds.push_back(elapsed);
    state.SetIterationTime(elapsed);
  }
  state.counters["events"] = static_cast<double>(kEvents);
  state.counters["MB_per_s"] = static_cast<double>(g_file_bytes) / 1e6 / median(g_load_seconds);
}

// One frame at each pan position of one zoom level.
void BM_Redraw(benchmark::State& state, std::size_t zoom) {
  ZoomSamples& samples = g_zooms[zoom];
  const viz::TimeRange extent = g_model->extent();
  std::vector<viz::LodItem> items;
  std::size_t pan = 0;
  for (auto _ : state) {
    const std::uint64_t room = extent.length() - samples.window_ns;
    const std::uint64_t start =
        extent.start_ns + static_cast<std::uint64_t>(static_cast<unsigned __int128>(room) *
                                                     (pan % kPans) / (kPans - 1));
    const viz::TimeRange view{start, start + samples.window_ns};
    const auto begin = Clock::now();
    std::size_t drawn = 0;
    for (std::size_t lane = 0; lane < viz::kLaneCount; ++lane) {
      viz::query_lod(g_model->lane(static_cast<TimelineLane>(lane)), view, kWidth, items);
      drawn += items.size();
    }
    const double elapsed = seconds_since(begin);
    state.SetIterationTime(elapsed);
    samples.milliseconds.push_back(elapsed * 1e3);
    samples.items = drawn;
    ++pan;
  }
}

void print_summary() {
  if (!g_model) return;
  const double load = median(g_load_seconds);
  const double bytes_per_event =
      static_cast<double>(g_model->memory_bytes()) / static_cast<double>(kEvents);
  double worst_redraw = 0;
  std::printf("\nvisualizer engine, a synthetic trace of %zu events (%.1f MB, %.3f s of run)\n",
              kEvents, static_cast<double>(g_file_bytes) / 1e6,
              static_cast<double>(g_model->extent().length()) / 1e9);
  std::printf("  load (file to a model ready to draw), median of %zu: %.3f s\n",
              g_load_seconds.size(), load);
  std::printf("    one load: parse %.3f s, order %.3f s, lanes and levels %.3f s\n",
              g_phase_start[1], g_phase_start[2] - g_phase_start[1],
              g_phase_start[3] - g_phase_start[2]);
  auto per_event = [](std::size_t bytes) {
    return static_cast<double>(bytes) / static_cast<double>(kEvents);
  };
  std::printf("  memory after load: %.1f bytes an event (%.1f MB; the process grew %.1f MB)\n",
              bytes_per_event, static_cast<double>(g_model->memory_bytes()) / 1e6,
              g_resident_growth / 1e6);
  std::printf("    events %.1f, lanes %.1f, levels %.1f bytes an event\n",
              per_event(g_model->events().memory_bytes()),
              per_event(g_model->timeline().memory_bytes() - g_model->levels().memory_bytes()),
              per_event(g_model->levels().memory_bytes()));
  std::printf("  redraw, %u px, six lanes, %d pans across the run:\n", kWidth, kPans);
  std::printf("    %16s %12s %12s %8s\n", "window", "median ms", "worst ms", "items");
  for (const auto& zoom : g_zooms) {
    const double worst = zoom.milliseconds.empty() ? 0
                                                   : *std::max_element(zoom.milliseconds.begin(),
                                                                       zoom.milliseconds.end());
    worst_redraw = std::max(worst_redraw, worst);
    std::printf("    %16s %12.3f %12.3f %8zu\n", duration_text(zoom.window_ns).c_str(),
                median(zoom.milliseconds), worst, zoom.items);
  }
  std::printf("  whole-run aggregates %.1f ms; search by reason %.1f ms\n", g_aggregate_ms,
              g_search_ms);
  auto verdict = [](bool met) { return met ? "met" : "NOT met"; };
  std::printf(
      "goals: load under %.0f s: %s (%.3f s); redraw under %.0f ms at every zoom: %s "
      "(worst %.3f ms); under %.0f bytes an event: %s (%.1f)\n",
      kLoadGoalSeconds, verdict(load < kLoadGoalSeconds), load, kRedrawGoalMilliseconds,
      verdict(worst_redraw < kRedrawGoalMilliseconds), worst_redraw, kBytesPerEventGoal,
      verdict(bytes_per_event < kBytesPerEventGoal), bytes_per_event);
}

}  // namespace

int main(int argc, char** argv) {
  g_trace_path = std::filesystem::temp_directory_path() /
                 ("vmlab-bench-viz-" + std::to_string(::getpid()) + ".trace");
  if (!vmlab::bench::write_synthetic_trace(g_trace_path, kEvents)) {
    std::fprintf(stderr, "cannot write %s\n", g_trace_path.c_str());
    return 1;
  }
  g_file_bytes = std::filesystem::file_size(g_trace_path);
  const std::size_t resident_before = resident_bytes();
  // Where a load's time goes: the progress reports mark each phase's start.
  const auto load_start = Clock::now();
  auto model =
      viz::TraceModel::load_file(g_trace_path.string(), [&](const viz::LoadProgress& progress) {
        const auto phase = static_cast<std::size_t>(progress.phase);
        if (g_phase_start[phase] == 0) g_phase_start[phase] = seconds_since(load_start);
        return true;
      });
  g_phase_start[3] = seconds_since(load_start);
  if (!model) {
    std::fprintf(stderr, "%s\n", model.error().message.c_str());
    std::filesystem::remove(g_trace_path);
    return 1;
  }
  g_model = std::make_unique<viz::TraceModel>(std::move(*model));
  g_resident_growth = static_cast<double>(resident_bytes()) - static_cast<double>(resident_before);
  {
    const auto start = Clock::now();
    benchmark::DoNotOptimize(viz::aggregate(*g_model).events);
    g_aggregate_ms = seconds_since(start) * 1e3;
    const auto search = Clock::now();
    benchmark::DoNotOptimize(viz::find_by_reason(*g_model, EventReason::Halt).size());
    g_search_ms = seconds_since(search) * 1e3;
  }

  benchmark::RegisterBenchmark("load", BM_Load)
      ->Iterations(1)
      ->Repetitions(kLoads)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  for (std::uint64_t window = g_model->extent().length(); window >= kNarrowestWindow; window /= 2) {
    g_zooms.push_back({.window_ns = window, .milliseconds = {}});
  }
  for (std::size_t zoom = 0; zoom < g_zooms.size(); ++zoom) {
    const std::string name = "redraw/window_ns:" + std::to_string(g_zooms[zoom].window_ns);
    benchmark::RegisterBenchmark(name.c_str(), BM_Redraw, zoom)
        ->Iterations(kPans)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  const int status = vmlab::bench::run_benchmarks(argc, argv, print_summary);
  std::filesystem::remove(g_trace_path);
  return status;
}
