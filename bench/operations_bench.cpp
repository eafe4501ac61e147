// The per-operation suite (bench/measure, issue "Measured side by side"):
// syscall, in, cr8wr, call/ret, pgfault, divzero, ptemod (Adams and Agesen's
// nanobenchmarks), out, cli/sti, hypercall, interrupt, kernel compute, and
// boot, under hvm, hvm with the in-kernel irqchip, full, bt, para and QEMU
// TCG. Each Google Benchmark repetition is one pass over every cell, in an
// order that rotates from one repetition to the next; the summary takes the
// medians over every repetition, with their spread, in guest cycles and ns,
// with VMM entries, KVM exits and monitor traps per operation. It is what
// `vmlab report` measures; --vmlab_json=FILE writes the samples for
// `vmlab report --input FILE`.
//
//   build/bench/vmlab_bench_operations --benchmark_repetitions=5 --vmlab_json=ops.json
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "run_benchmarks.hpp"
#include "vmlab/measure/report.hpp"

namespace {

using namespace vmlab;
using namespace vmlab::measure;

std::optional<Measurements> g_all;  // every repetition's samples, merged
std::string g_json_path;
int g_repetition = 0;

void merge(const Measurements& pass) {
  if (!g_all) {
    g_all = pass;
    return;
  }
  g_all->repetitions += pass.repetitions;
  if (g_all->tsc_khz == 0) g_all->tsc_khz = pass.tsc_khz;
  for (const auto& cell : pass.cells) {
    for (auto& into : g_all->cells) {
      if (into.operation != cell.operation || into.technique != cell.technique) continue;
      if (cell.status == CellStatus::Failed) {
        into.status = CellStatus::Failed;
        into.reason = cell.reason;
        into.figures.clear();
      } else if (into.status == CellStatus::Measured) {
        for (const auto& [figure, samples] : cell.figures) {
          auto& values = into.figures[figure].values;
          values.insert(values.end(), samples.values.begin(), samples.values.end());
        }
      }
    }
  }
  for (const auto& boot : pass.boot) {
    for (auto& into : g_all->boot) {
      if (into.technique != boot.technique || into.status != CellStatus::Measured) continue;
      auto append = [](Samples& to, const Samples& from) {
        to.values.insert(to.values.end(), from.values.begin(), from.values.end());
      };
      append(into.to_first_entry_ms, boot.to_first_entry_ms);
      append(into.to_result_line_ms, boot.to_result_line_ms);
    }
  }
}

void every_operation(benchmark::State& state) {
  for (auto _ : state) {
    MeasureOptions options;
    options.repetitions = 1;
    options.first_repetition = g_repetition++;
    auto pass = vmlab::measure::measure(options);
    if (!pass) {
      state.SkipWithError(pass.error().message.c_str());
      return;
    }
    for (const auto& cell : pass->cells) {
      if (const Samples* cycles = cell.figure(Figure::CyclesPerOp)) {
        state.counters[cell.operation + "/" + cell.technique] = cycles->median();
      }
    }
    merge(*pass);
  }
}

void print_summary() {
  if (!g_all) return;
  std::printf("\nmedians over %d interleaved repetitions (lowest-highest):\n", g_all->repetitions);
  for (const auto& name : g_all->operation_names) {
    std::printf("\n%s\n  %-9s %26s %12s %10s %10s %10s %10s\n", name.c_str(), "technique",
                "guest cycles/op", "ns/op", "VMM ent/op", "KVM ex/op", "traps/op", "KVM emul/op");
    for (const auto& technique : g_all->technique_labels) {
      const Cell* cell = g_all->cell(name, technique);
      if (cell == nullptr || cell->status != CellStatus::Measured) {
        std::printf(
            "  %-9s %s%s%s\n", technique.c_str(),
            cell == nullptr ? "not run" : std::string(cell_status_name(cell->status)).c_str(),
            cell != nullptr && !cell->reason.empty() ? ": " : "",
            cell != nullptr ? cell->reason.c_str() : "");
        continue;
      }
      auto median = [&](Figure figure) {
        const Samples* samples = cell->figure(figure);
        return samples != nullptr ? std::to_string(samples->median()).substr(0, 9)
                                  : std::string("-");
      };
      std::printf("  %-9s %26s %12s %10s %10s %10s %10s\n", technique.c_str(),
                  median_with_spread(*cell->figure(Figure::CyclesPerOp)).c_str(),
                  median(Figure::NsPerOp).c_str(), median(Figure::VmmEntriesPerOp).c_str(),
                  median(Figure::KvmExitsPerOp).c_str(), median(Figure::MonitorTrapsPerOp).c_str(),
                  median(Figure::KvmEmulatedPerOp).c_str());
    }
  }
  std::printf("\nboot, ms from the VMM's start (first guest instruction / result line):\n");
  for (const auto& boot : g_all->boot) {
    std::printf(
        "  %-9s %s / %s\n", boot.technique.c_str(),
        boot.to_first_entry_ms.empty() ? "-" : median_with_spread(boot.to_first_entry_ms).c_str(),
        boot.to_result_line_ms.empty() ? "-" : median_with_spread(boot.to_result_line_ms).c_str());
  }
  if (!g_json_path.empty()) {
    std::ofstream out(g_json_path);
    write_measurements_json(*g_all, out);
    std::printf("\nsamples written to %s (vmlab report --input %s)\n", g_json_path.c_str(),
                g_json_path.c_str());
    if (!out) std::printf("could not write %s\n", g_json_path.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  // --vmlab_json=FILE is the suite's own; Google Benchmark sees the rest.
  int kept = 1;
  for (int index = 1; index < argc; ++index) {
    constexpr const char* kJson = "--vmlab_json=";
    if (std::strncmp(argv[index], kJson, std::strlen(kJson)) == 0) {
      g_json_path = argv[index] + std::strlen(kJson);
    } else {
      argv[kept++] = argv[index];
    }
  }
  argc = kept;
  benchmark::RegisterBenchmark("Operations/every-technique", every_operation)
      ->Iterations(1)
      ->Unit(benchmark::kSecond);
  return vmlab::bench::run_benchmarks(argc, argv, print_summary);
}
