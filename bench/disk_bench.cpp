// Disks three ways (issues 5 and 6): the same guest disk workloads through
// the emulated ATA disk, virtio-blk and the passthrough controller, in every
// CPU mode.
// Per run it reports MB/s, and how often the VMM had to run (VM exits it
// handled; in full and para every monitor trap and hypercall is one of them)
// per request and per KiB moved. The figure the design predicts: virtio needs
// at least 10x fewer VMM entries per KiB than ATA, because ATA costs an exit
// (or trap) per register access and per 512-byte `rep insw`, virtio one
// notification per batch of requests. The passthrough controller's
// registers are memory and its doorbell is polled by the device thread, so
// its transfers need the VMM only for the completion interrupts: near zero.
// "passthrough-polled" is the same device with a driver that polls the
// completion queue (disk-irq=0), as NVMe polled I/O does: no interrupts
// either. In full, what remains per KiB is the shadow page-table fills for
// the data buffer (traps/KiB), the CPU mode's cost whatever the disk.
//
//   build/bench/vmlab_bench_disk
//
// MB/s comes from the guest's own rdtsc interval and the TSC rate, measured
// here on the host (the guest's TSC runs at the host's rate under KVM).
#include <benchmark/benchmark.h>

#include <x86intrin.h>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "run_benchmarks.hpp"
#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/runner.hpp"

namespace {

using namespace vmlab;

constexpr std::uint64_t kSectors = 256;  // 128 KiB, and 512 KiB, per workload
constexpr std::uint64_t kImageSize = 16 * MiB;

struct Figures {
  double megabytes_per_second = 0;
  double entries_per_request = 0;
  double entries_per_kib = 0;
  double traps_per_kib = 0;
  double hypercalls_per_kib = 0;
};
std::map<std::string, Figures> g_figures;  // "cpu model workload" -> figures

double tsc_hertz() {
  static const double rate = [] {
    const auto start = std::chrono::steady_clock::now();
    const std::uint64_t first = __rdtsc();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const std::uint64_t last = __rdtsc();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return static_cast<double>(last - first) / seconds;
  }();
  return rate;
}

std::uint64_t disk_field(const GuestRun& run, const std::string& name) {
  for (const auto& line : run.debug_lines) {
    if (line.rfind("VMLAB-DISK ", 0) != 0) continue;
    const std::string key = " " + name + "=";
    const auto at = line.find(key);
    if (at == std::string::npos) return 0;
    return std::strtoull(line.c_str() + at + key.size(), nullptr, 10);
  }
  return 0;
}

void disk_run(benchmark::State& state, const char* cpu, const char* model, const char* workload) {
  const auto image = std::filesystem::temp_directory_path() /
                     ("vmlab-bench-disk-" + std::string(cpu) + "-" + model + ".img");
  std::filesystem::remove(image);
  if (auto created = devices::create_raw_image(image.string(), kImageSize, true); !created) {
    state.SkipWithError(created.error().message.c_str());
    return;
  }
  // Two sizes: the difference is what the transfers cost, without the boot
  // and the console output every run has.
  GuestRun runs[2];
  const std::uint64_t sizes[2] = {kSectors, 4 * kSectors};
  for (auto _ : state) {
    for (int which = 0; which < 2; ++which) {
      RunOptions options;
      options.cpu = cpu;
      options.disk_path = image.string();
      options.disk_model = model;
      if (std::string(model) == "passthrough-polled") {
        options.disk_model = "passthrough";
        options.extra_command_line = "disk-irq=0";
      }
      options.timeout_seconds = 300;
      // disk-read reads what a disk-write put there first.
      if (std::string(workload) == "disk-read") {
        options.workload = "disk-write";
        options.count = sizes[which];
        if (auto run = run_guest(options); !run || !run->result) {
          state.SkipWithError("the disk-write before disk-read failed");
          return;
        }
      }
      options.workload = workload;
      options.count = sizes[which];
      auto run = run_guest(options);
      if (!run || !run->result || run->result->field("status") != "ok") {
        state.SkipWithError(run ? ("the guest run failed: " + run->report.message).c_str()
                                : run.error().message.c_str());
        return;
      }
      runs[which] = std::move(*run);
    }
  }
  std::filesystem::remove(image);
  auto exits_of = [](const GuestRun& run) { return static_cast<double>(run.vm_exits()); };
  auto difference = [&](auto value) { return value(runs[1]) - value(runs[0]); };
  const double bytes =
      difference([](const GuestRun& run) { return static_cast<double>(disk_field(run, "bytes")); });
  const double requests = difference(
      [](const GuestRun& run) { return static_cast<double>(disk_field(run, "requests")); });
  const double kib = bytes / 1024.0;
  const double exits = difference(exits_of);
  const double traps =
      difference([](const GuestRun& run) { return static_cast<double>(run.monitor_traps); });
  const double hypercalls =
      difference([](const GuestRun& run) { return static_cast<double>(run.hypercalls); });
  const GuestRun& large = runs[1];
  Figures figures;
  const double seconds = static_cast<double>(large.result->number("cycles")) / tsc_hertz();
  figures.megabytes_per_second =
      seconds > 0 ? static_cast<double>(disk_field(large, "bytes")) / seconds / 1e6 : 0;
  figures.entries_per_request = requests > 0 ? exits / requests : 0;
  figures.entries_per_kib = kib > 0 ? exits / kib : 0;
  figures.traps_per_kib = kib > 0 ? traps / kib : 0;
  figures.hypercalls_per_kib = kib > 0 ? hypercalls / kib : 0;
  g_figures[std::string(cpu) + " " + model + " " + workload] = figures;
  state.counters["MB_per_s"] = figures.megabytes_per_second;
  state.counters["vmm_entries_per_request"] = figures.entries_per_request;
  state.counters["vmm_entries_per_KiB"] = figures.entries_per_kib;
}

void register_all() {
  for (const char* cpu : {"hvm", "full", "para"}) {
    for (const char* model : {"ata", "virtio", "passthrough", "passthrough-polled"}) {
      for (const char* workload : {"disk-write", "disk-read"}) {
        const std::string name = std::string("Disk/") + cpu + "/" + model + "/" + workload;
        benchmark::RegisterBenchmark(
            name.c_str(), [=](benchmark::State& state) { disk_run(state, cpu, model, workload); })
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
}

// What this binary measured, after Google Benchmark's own report.
void print_summary() {
  std::printf(
      "\ndisks: per request and per KiB = the difference between runs of %lu and %lu "
      "sectors (boot and console cancel out);\nVMM entries = VM exits the VMM handled "
      "(monitor traps and hypercalls included); MB/s from the larger run\n",
      static_cast<unsigned long>(kSectors), static_cast<unsigned long>(4 * kSectors));
  std::printf("%-5s %-18s %-11s %9s %14s %12s %10s %12s\n", "cpu", "model", "workload", "MB/s",
              "entries/req", "entries/KiB", "traps/KiB", "hcalls/KiB");
  for (const char* cpu : {"hvm", "full", "para"}) {
    for (const char* workload : {"disk-write", "disk-read"}) {
      for (const char* model : {"ata", "virtio", "passthrough", "passthrough-polled"}) {
        const auto found = g_figures.find(std::string(cpu) + " " + model + " " + workload);
        if (found == g_figures.end()) continue;
        const Figures& f = found->second;
        std::printf("%-5s %-18s %-11s %9.2f %14.2f %12.3f %10.3f %12.3f\n", cpu, model, workload,
                    f.megabytes_per_second, f.entries_per_request, f.entries_per_kib,
                    f.traps_per_kib, f.hypercalls_per_kib);
      }
      const auto ata = g_figures.find(std::string(cpu) + " ata " + workload);
      const auto virtio = g_figures.find(std::string(cpu) + " virtio " + workload);
      if (ata != g_figures.end() && virtio != g_figures.end() &&
          virtio->second.entries_per_kib > 0) {
        std::printf(
            "      %s: virtio needs %.1fx fewer VMM entries per KiB than ATA "
            "(goal: at least 10x)\n",
            workload, ata->second.entries_per_kib / virtio->second.entries_per_kib);
      }
      const auto passthrough = g_figures.find(std::string(cpu) + " passthrough " + workload);
      const auto polled = g_figures.find(std::string(cpu) + " passthrough-polled " + workload);
      if (passthrough != g_figures.end() && polled != g_figures.end()) {
        std::printf(
            "      %s: passthrough %.4f VMM entries per KiB, %.4f polled (goal: near zero)\n",
            workload, passthrough->second.entries_per_kib, polled->second.entries_per_kib);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  return vmlab::bench::run_benchmarks(argc, argv, print_summary);
}
