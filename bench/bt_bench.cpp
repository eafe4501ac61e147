// Binary translation (--cpu bt) against the other techniques and QEMU's TCG,
// on the same built-in guest image (issue: `--cpu bt`). What it prints:
//   - cli-sti: cycles per `cli; sti` pair under bt, full, hvm and QEMU TCG,
//     and bt's VM exits per pair once translated (the marginal count: the
//     difference between a long and a short run, so that the boot and the
//     first translation of the loop cancel out);
//   - kernel-compute (the integer mix in the kernel, translated) against
//     compute (the same mix in user mode, native) under bt, and QEMU TCG's
//     kernel-compute;
//   - pio, syscalls, pagefaults: marginal VM exits per operation under bt
//     and under full (bt must need no more);
//   - the TC's hit rate after warm-up for every workload (marginal: of the
//     blocks the VMM asked the cache for, the share it already had);
//   - translation cost per guest instruction: the translator alone, on the
//     blocks a real run made, from the guest image's own bytes.
// The machines are shared and noisy: the configurations of each benchmark
// are interleaved, their order rotating, and the summary takes medians over
// every repetition.
//
//   build/bench/vmlab_bench_bt --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "run_benchmarks.hpp"
#include "vmlab/bt/translation_cache.hpp"
#include "vmlab/elf_loader.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/reference.hpp"
#include "vmlab/runner.hpp"
#include "vmlab/trace.hpp"

namespace {

using namespace vmlab;

// QEMU TCG on this machine, per `cli; sti` pair (the measurement);
// printed beside the figure measured here, which is what the goal uses.
constexpr double kQemuCliStiQuoted = 164;
constexpr double kKernelComputeGoal = 0.9;  // of compute's speed
constexpr double kHitRateGoal = 0.99;

std::map<std::string, std::vector<double>> g_samples;  // by name, over all repetitions
std::string g_failure;

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double median_of(const std::string& name) {
  auto found = g_samples.find(name);
  return found == g_samples.end() ? 0 : median(found->second);
}

void record(benchmark::State& state, const std::string& name, double value) {
  g_samples[name].push_back(value);
  state.counters[name] = value;
}

std::optional<GuestRun> run(const std::string& cpu, const std::string& workload,
                            std::uint64_t count) {
  RunOptions options;
  options.cpu = cpu;
  options.workload = workload;
  options.count = count;
  options.timeout_seconds = 300;
  auto guest = run_guest(options);
  if (!guest) {
    g_failure = cpu + " " + workload + ": " + guest.error().message;
    return std::nullopt;
  }
  if (!guest->result || guest->result->field("status") != "ok") {
    g_failure = cpu + " " + workload + ": the guest run failed: " + guest->report.message;
    return std::nullopt;
  }
  return std::move(*guest);
}

double cycles_per_op(const GuestRun& guest) {
  const auto n = std::max<std::uint64_t>(1, guest.result->number("n"));
  return static_cast<double>(guest.result->number("cycles")) / static_cast<double>(n);
}

// The same workload under QEMU's TCG (the guest's own rdtsc around its loop).
std::optional<double> qemu_cycles_per_op(const std::string& workload, std::uint64_t count) {
  if (!reference_machine_available()) return std::nullopt;
  auto reference = run_reference_machine(
      builtin_guest_image(), "workload=" + workload + " n=" + std::to_string(count), 300);
  if (!reference) return std::nullopt;
  for (const auto& line : reference->debug_lines) {
    if (auto result = parse_result_line(line); result && result->field("status") == "ok") {
      return static_cast<double>(result->number("cycles")) /
             static_cast<double>(std::max<std::uint64_t>(1, result->number("n")));
    }
  }
  return std::nullopt;
}

// One workload's marginal counts between a short and a long run.
struct Marginal {
  double exits_per_op = 0;
  double hit_rate = 0;  // bt only
  double lookups = 0;   // bt: the VMM's requests for a block between the two runs
};

std::optional<Marginal> marginal(const std::string& cpu, const std::string& workload,
                                 std::uint64_t small, std::uint64_t large) {
  auto few = run(cpu, workload, small);
  auto many = run(cpu, workload, large);
  if (!few || !many) return std::nullopt;
  Marginal result;
  result.exits_per_op =
      (static_cast<double>(many->vm_exits()) - static_cast<double>(few->vm_exits())) /
      static_cast<double>(large - small);
  if (few->translation && many->translation) {
    const double lookups = static_cast<double>(many->translation->lookups) -
                           static_cast<double>(few->translation->lookups);
    const double hits = static_cast<double>(many->translation->lookup_hits) -
                        static_cast<double>(few->translation->lookup_hits);
    // No lookup after warm-up: every block the workload needs stayed in
    // the TC (chained, or found by the indirect-branch table inside it).
    result.hit_rate = lookups > 0 ? hits / lookups : 1.0;
    result.lookups = lookups;
  }
  return result;
}

// Runs `steps` in an order that rotates from one repetition to the next.
bool interleaved(benchmark::State& state, const std::vector<std::function<bool()>>& steps) {
  static std::size_t round = 0;
  for (std::size_t slot = 0; slot < steps.size(); ++slot) {
    if (!steps[(slot + round) % steps.size()]()) {
      state.SkipWithError(g_failure.c_str());
      return false;
    }
  }
  ++round;
  return true;
}

void cli_sti(benchmark::State& state) {
  for (auto _ : state) {
    const bool done =
        interleaved(state, {[&] {
                              auto guest = run("bt", "cli-sti", 200000);
                              if (guest) record(state, "bt_cycles", cycles_per_op(*guest));
                              return guest.has_value();
                            },
                            [&] {
                              auto guest = run("full", "cli-sti", 1000);
                              if (guest) record(state, "full_cycles", cycles_per_op(*guest));
                              return guest.has_value();
                            },
                            [&] {
                              auto guest = run("hvm", "cli-sti", 2000);
                              if (guest) record(state, "hvm_cycles", cycles_per_op(*guest));
                              return guest.has_value();
                            },
                            [&] {
                              if (auto qemu = qemu_cycles_per_op("cli-sti", 200000)) {
                                record(state, "qemu_tcg_cycles", *qemu);
                              }
                              return true;
                            },
                            [&] {
                              auto counts = marginal("bt", "cli-sti", 1000, 20000);
                              if (counts) {
                                record(state, "bt_exits_per_op", counts->exits_per_op);
                                record(state, "bt_hit_rate/cli-sti", counts->hit_rate);
                                record(state, "bt_lookups/cli-sti", counts->lookups);
                              }
                              return counts.has_value();
                            }});
    if (!done) return;
  }
}

void kernel_compute(benchmark::State& state) {
  for (auto _ : state) {
    const bool done =
        interleaved(state, {[&] {
                              auto guest = run("bt", "kernel-compute", 2000000);
                              if (guest) record(state, "bt_kernel_cycles", cycles_per_op(*guest));
                              return guest.has_value();
                            },
                            [&] {
                              auto guest = run("bt", "compute", 2000000);
                              if (guest) record(state, "bt_user_cycles", cycles_per_op(*guest));
                              return guest.has_value();
                            },
                            [&] {
                              if (auto qemu = qemu_cycles_per_op("kernel-compute", 2000000)) {
                                record(state, "qemu_tcg_kernel_cycles", *qemu);
                              }
                              return true;
                            },
                            [&] {
                              auto counts = marginal("bt", "kernel-compute", 100000, 2000000);
                              if (counts)
                                record(state, "bt_hit_rate/kernel-compute", counts->hit_rate);
                              record(state, "bt_lookups/kernel-compute", counts->lookups);
                              return counts.has_value();
                            }});
    if (!done) return;
  }
}

struct EntriesCase {
  const char* workload;
  std::uint64_t small, large;
};
constexpr EntriesCase kEntriesCases[] = {
    {"pio", 200, 2000}, {"syscalls", 200, 2000}, {"pagefaults", 64, 512}};

void vmm_entries(benchmark::State& state) {
  for (auto _ : state) {
    std::vector<std::function<bool()>> steps;
    for (const auto& [workload, small, large] : kEntriesCases) {
      for (const char* cpu : {"bt", "full"}) {
        steps.push_back([&state, workload = std::string(workload), cpu = std::string(cpu),
                         small = small, large = large] {
          auto counts = marginal(cpu, workload, small, large);
          if (counts) {
            record(state, cpu + "_exits/" + workload, counts->exits_per_op);
            if (cpu == "bt") {
              record(state, "bt_hit_rate/" + workload, counts->hit_rate);
              record(state, "bt_lookups/" + workload, counts->lookups);
            }
          }
          return counts.has_value();
        });
      }
    }
    if (!interleaved(state, steps)) return;
  }
}

// The translator alone: the blocks a bt run of every workload made, each
// translated again from the guest image's bytes into a cache in host memory.
class ImageReader final : public bt::CodeReader {
 public:
  explicit ImageReader(const GuestMemory& memory) : m_memory(memory) {}
  Result<bt::CodeBytes> read(GuestVirtAddr address, std::size_t length) override {
    bt::CodeBytes code;
    // The vmlab kernel's code is identity-mapped (guest/kernel/linker.ld).
    const std::uint64_t end = std::min<std::uint64_t>(address.value() + length, m_memory.size());
    if (address.value() >= end) return code;
    code.bytes.resize(end - address.value());
    if (auto status = m_memory.read(GuestPhysAddr(address.value()), code.bytes); !status) {
      return status.error();
    }
    for (std::uint64_t page = address.value() & ~(kPageSize - 1); page < end; page += kPageSize)
      code.pages.push_back({GuestVirtAddr(page), GuestPhysAddr(page)});
    return code;
  }

 private:
  const GuestMemory& m_memory;
};

void translation_cost(benchmark::State& state) {
  static std::vector<std::uint64_t> block_starts;
  static std::optional<GuestMemory> image;
  if (block_starts.empty()) {
    // The blocks a real run translates, from its trace.
    const std::string trace_path = "/tmp/vmlab-bench-bt-" + std::to_string(::getpid()) + ".trace";
    RunOptions options;
    options.cpu = "bt";
    options.workload = "syscalls";
    options.count = 100;
    options.trace_path = trace_path;
    auto guest = run_guest(options);
    auto trace = read_trace_file(trace_path);
    std::remove(trace_path.c_str());
    if (!guest || !trace) {
      state.SkipWithError("the bt run that gives the blocks failed");
      return;
    }
    std::set<std::uint64_t> starts;
    for (const Event& event : trace->events) {
      if (event.kind == EventKind::Translation && event.reason == EventReason::BlockTranslated)
        starts.insert(event.address);
    }
    block_starts.assign(starts.begin(), starts.end());
    auto memory = GuestMemory::create(64 * MiB);
    if (!memory) {
      state.SkipWithError(memory.error().message.c_str());
      return;
    }
    image.emplace(std::move(*memory));
    if (auto loaded = load_elf(builtin_guest_image(), *image, {}); !loaded) {
      state.SkipWithError(loaded.error().message.c_str());
      return;
    }
  }
  bt::CacheLayout layout;
  std::vector<std::uint8_t> region(layout.size);
  auto cache = bt::TranslationCache::create(layout, region);
  if (!cache) {
    state.SkipWithError(cache.error().message.c_str());
    return;
  }
  ImageReader reader(*image);
  std::uint64_t instructions = 0;
  double seconds = 0;
  for (auto _ : state) {
    cache->flush();
    const std::uint64_t before = cache->statistics().guest_instructions_translated;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t block : block_starts)
      benchmark::DoNotOptimize(cache->lookup_or_translate(GuestVirtAddr(block), reader));
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    instructions += cache->statistics().guest_instructions_translated - before;
  }
  if (instructions == 0) {
    state.SkipWithError("nothing was translated");
    return;
  }
  const double per_instruction_ns = 1e9 * seconds / static_cast<double>(instructions);
  record(state, "translation_ns_per_guest_instruction", per_instruction_ns);
  state.counters["blocks"] = static_cast<double>(block_starts.size());
  state.counters["guest_instructions_per_pass"] =
      static_cast<double>(instructions) / static_cast<double>(state.iterations());
}

void print_summary() {
  std::printf(
      "\nbt, medians over every interleaved repetition (cycles: the guest's rdtsc per\n"
      "operation, from its result line):\n");
  const double bt = median_of("bt_cycles");
  const double qemu = median_of("qemu_tcg_cycles");
  std::printf("  cli-sti cycles/op   bt %.1f  full %.0f  hvm %.0f  QEMU TCG %s (quoted: %.0f)\n",
              bt, median_of("full_cycles"), median_of("hvm_cycles"),
              qemu > 0 ? std::to_string(qemu).c_str() : "not run", kQemuCliStiQuoted);
  const double reference = qemu > 0 ? qemu : kQemuCliStiQuoted;
  std::printf(
      "  cli-sti under bt: %.4f VM exits per op once translated (goal 0); %s than QEMU "
      "TCG (%.2fx)\n",
      median_of("bt_exits_per_op"), bt < reference ? "cheaper" : "NOT cheaper",
      reference / std::max(bt, 1e-9));
  const double kernel = median_of("bt_kernel_cycles");
  const double user = median_of("bt_user_cycles");
  const double qemu_kernel = median_of("qemu_tcg_kernel_cycles");
  const double speed = kernel > 0 ? user / kernel : 0;
  std::printf(
      "  kernel-compute under bt %.2f cycles/round, compute (user) %.2f: %.2fx compute's "
      "speed (goal %.1f: %s); QEMU TCG kernel-compute %s\n",
      kernel, user, speed, kKernelComputeGoal, speed >= kKernelComputeGoal ? "met" : "NOT met",
      qemu_kernel > 0 ? (std::to_string(qemu_kernel) + " cycles/round").c_str() : "not run");
  for (const auto& [workload, small, large] : kEntriesCases) {
    const double bt_exits = median_of(std::string("bt_exits/") + workload);
    const double full_exits = median_of(std::string("full_exits/") + workload);
    std::printf("  %-10s VM exits/op once translated: bt %.3f, full %.3f (%s)\n", workload,
                bt_exits, full_exits, bt_exits <= full_exits + 0.01 ? "bt needs no more" : "MORE");
  }
  std::printf(
      "  translation: %.0f ns per guest instruction translated (the translator alone, "
      "host side)\n",
      median_of("translation_ns_per_guest_instruction"));
  for (const auto& [name, values] : g_samples) {
    if (name.rfind("bt_hit_rate/", 0) != 0) continue;
    const double rate = median(values);
    const std::string workload = name.substr(12);
    std::printf("  TC hit rate after warm-up, %-16s %.4f over %.0f lookups (goal %.2f: %s)\n",
                workload.c_str(), rate, median_of("bt_lookups/" + workload), kHitRateGoal,
                rate >= kHitRateGoal ? "met" : "NOT met");
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("Bt/cli-sti", cli_sti)->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("Bt/kernel-compute", kernel_compute)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("Bt/vmm-entries", vmm_entries)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("Bt/translation", translation_cost)->Unit(benchmark::kMicrosecond);
  return vmlab::bench::run_benchmarks(argc, argv, print_summary);
}
