// The cost of tracing (issue: observability). Each sample boots the built-in
// guest once; the figure that matters is the guest's own cycles per
// operation, which include the VMM's exit handling and so any recording cost.
// Tracing on = every exit recorded into the ring and the trace file written.
//
// These machines are shared and noisy (the same run varies by tens of
// percent), so the runs with and without tracing are interleaved, their order
// alternating, and medians are compared.
//
//   build/bench/vmlab_bench_tracing
//   build/bench/vmlab_bench_tracing --benchmark_min_time=... (ignored: fixed sample count)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <vector>

#include "run_benchmarks.hpp"
#include "vmlab/runner.hpp"

namespace {

using namespace vmlab;

constexpr int kSamplesPerSetting = 21;

struct Medians {
  double off = 0;
  double on = 0;
};
std::map<std::string, Medians> g_medians;  // by workload, read by main

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void interleaved(benchmark::State& state, const char* workload, std::uint64_t count) {
  const auto trace_path = std::filesystem::temp_directory_path() / "vmlab-bench-trace.tsv";
  std::vector<double> off, on;
  std::uint64_t exits = 0;
  for (auto _ : state) {
    for (int sample = 0; sample < 2 * kSamplesPerSetting; ++sample) {
      // off, on, on, off, off, on, ...: neither setting always goes first.
      const bool tracing = ((sample + sample / 2) % 2) != 0;
      RunOptions options;
      options.workload = workload;
      options.count = count;
      options.timeout_seconds = 120;
      if (tracing) options.trace_path = trace_path.string();
      auto run = run_guest(options);
      if (!run || !run->result || run->result->field("status") != "ok") {
        state.SkipWithError("a guest run failed");
        return;
      }
      const double cycles_per_op =
          static_cast<double>(run->result->number("cycles")) / static_cast<double>(count);
      (tracing ? on : off).push_back(cycles_per_op);
      if (tracing) exits += run->vm_exits();
    }
  }
  const Medians medians{median(off), median(on)};
  g_medians[workload] = medians;
  state.counters["cycles_per_op_off"] = medians.off;
  state.counters["cycles_per_op_on"] = medians.on;
  state.counters["slowdown_percent"] = 100.0 * (medians.on - medians.off) / medians.off;
  state.counters["vm_exits_per_op"] =
      static_cast<double>(exits) / static_cast<double>(on.size()) / static_cast<double>(count);
  std::filesystem::remove(trace_path);
}

void BM_TracingCost_Syscalls(benchmark::State& state) {
  interleaved(state, "syscalls", 2000);
}
void BM_TracingCost_Pio(benchmark::State& state) {
  interleaved(state, "pio", 5000);
}

BENCHMARK(BM_TracingCost_Syscalls)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TracingCost_Pio)->Iterations(1)->Unit(benchmark::kMillisecond);

// What this binary measured, after Google Benchmark's own report.
void print_summary() {
  std::printf("\ntracing cost: median guest cycles per operation over %d interleaved runs each\n",
              kSamplesPerSetting);
  for (const auto& [workload, medians] : g_medians) {
    std::printf("  %-9s off %12.1f  on %12.1f  slowdown %+6.2f%% (goal: under 5%%)\n",
                workload.c_str(), medians.off, medians.on,
                100.0 * (medians.on - medians.off) / medians.off);
  }
}

}  // namespace

int main(int argc, char** argv) {
  return vmlab::bench::run_benchmarks(argc, argv, print_summary);
}
