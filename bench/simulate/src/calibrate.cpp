// Calibration: the benchmark workloads at two sizes under each technique,
// recorded, and the per-class costs that explain their VMM and monitor time;
// then validation on runs the fit never saw.
#include "vmlab/simulate/calibrate.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "vmlab/compare.hpp"
#include "vmlab/platform.hpp"
#include "vmlab/runner.hpp"

namespace vmlab::simulate {

namespace {

constexpr const char* kRunCost = "run";
constexpr const char* kSource = "vmlab-calibrate";
constexpr const char* kGuestPrefix = "guest:";
constexpr const char* kVmmPrefix = "vmm:";
constexpr const char* kMonitorPrefix = "monitor:";
// The most events of a class some calibration run must have for the class
// to get a cost of its own.
constexpr double kFittedClassMinimum = 50;

struct CalibrationWorkload {
  const char* name;
  std::uint64_t small_count;
  std::uint64_t large_count;
};

// Each kind of event the techniques make, at sizes unlike `vmlab compare`'s
// (validation replays those). Where a technique refuses a workload (the
// guest's WorkloadScope) it is left out.
constexpr CalibrationWorkload kWorkloads[] = {
    {"hello", 1, 1},           {"pio", 200, 1000},       {"pio-out", 200, 1000},
    {"syscalls", 200, 1000},   {"pagefaults", 100, 400}, {"cli-sti", 200, 1000},
    {"cr8-write", 200, 1000},  {"pte-update", 100, 400}, {"divide-error", 100, 400},
    {"interrupts", 5, 15},     {"hypercall", 200, 1000}, {"kernel-smc", 20, 100},
    {"call-ret", 1000, 20000},
};

std::vector<std::string> techniques_of(const CalibrateOptions& options) {
  return options.techniques.empty() ? std::vector<std::string>{"hvm", "full", "bt", "para"}
                                    : options.techniques;
}

// One recorded run: its trace, read back.
Result<Trace> recorded_run(const std::string& cpu, const std::string& workload, std::uint64_t count,
                           const std::string& scratch) {
  RunOptions options;
  options.cpu = cpu;
  options.workload = workload;
  options.count = count;
  options.timeout_seconds = 120;
  options.trace_path = scratch;
  auto run = run_guest(options);
  if (!run) return run.error();
  if (run->report.outcome != RunOutcome::GuestExited || run->report.exit_value != 0) {
    return Error{SimulateError::kUnusableTrace,
                 cpu + " " + workload + ": the run did not end normally: " + run->report.message};
  }
  auto trace = read_trace_file(scratch);
  if (!trace) return trace.error();
  if (trace->dropped != 0) {
    return Error{SimulateError::kUnusableTrace,
                 cpu + " " + workload + ": the trace dropped events; use a smaller count"};
  }
  return trace;
}

std::string scratch_path(const char* purpose) {
  return (std::filesystem::temp_directory_path() /
          ("vmlab-" + std::string(purpose) + "-" + std::to_string(::getpid()) + ".tsv"))
      .string();
}

std::string profile_name_for(const PlatformInfo& platform) {
  std::string cpu = platform.cpu_model;
  std::string vendor = cpu.find("AMD") != std::string::npos     ? "amd-epyc"
                       : cpu.find("Intel") != std::string::npos ? "intel-xeon"
                                                                : "cpu";
  std::string backend = platform.backend;
  std::replace(backend.begin(), backend.end(), '_', '-');
  return backend + "-" + vendor;
}

}  // namespace

CalibrationRun calibration_run(const Trace& trace, std::string label) {
  CalibrationRun run;
  run.label = std::move(label);
  run.counts[kRunCost] = 1;
  for (const auto& event : trace.events) {
    const EventClass event_class = classify(event, trace.detail(event));
    if (event_class == EventClass::Halt || event_class == EventClass::DeviceWork) continue;
    run.counts[std::string(event_class_name(event_class))] += 1;
  }
  const LevelTimes times = levels_of(trace);
  run.guest_ns = times.guest();
  run.vmm_ns = times.at(PrivilegeLevel::Vmm);
  run.monitor_ns = times.at(PrivilegeLevel::Monitor);
  run.target_ns = times.transitions();
  return run;
}

std::map<std::string, double> fit_costs(const std::vector<CalibrationRun>& runs) {
  // A class that only boot makes (a few lgdt, wrmsr, mov cr3 in every run)
  // cannot be told apart from the run's fixed cost: it is folded into it.
  std::map<std::string, double> most;
  for (const auto& run : runs) {
    for (const auto& [name, count] : run.counts)
      most[name] = std::max(most[name], count);
  }
  std::vector<std::string> names;
  for (const auto& [name, count] : most) {
    if (name == kRunCost || count >= kFittedClassMinimum) names.push_back(name);
  }
  const std::size_t columns = names.size();
  // The normal equations, A^T A x = A^T y, solved by projected coordinate
  // descent: each cost in turn set to what minimizes the squared error with
  // the others held, and to 0 when that would be negative. Each step lowers
  // the error, which is convex, so the sweeps converge to the constrained
  // least-squares fit.
  std::vector<double> gram(columns * columns, 0), moment(columns, 0), cost(columns, 0);
  for (const auto& run : runs) {
    // Each run weighs by its relative error: a run of 1 ms matters as much
    // as one of a second.
    const double weight = 1 / std::max(run.target_ns, 1e4);
    std::vector<double> row(columns, 0);
    for (std::size_t column = 0; column < columns; ++column) {
      auto found = run.counts.find(names[column]);
      row[column] = (found == run.counts.end() ? 0 : found->second) * weight;
    }
    for (std::size_t i = 0; i < columns; ++i) {
      moment[i] += row[i] * run.target_ns * weight;
      for (std::size_t j = 0; j < columns; ++j)
        gram[i * columns + j] += row[i] * row[j];
    }
  }
  for (int sweep = 0; sweep < 20000; ++sweep) {
    double largest_change = 0;
    for (std::size_t i = 0; i < columns; ++i) {
      if (gram[i * columns + i] <= 0) continue;
      double residual = moment[i];
      for (std::size_t j = 0; j < columns; ++j) {
        if (j != i) residual -= gram[i * columns + j] * cost[j];
      }
      const double next = std::max(0.0, residual / gram[i * columns + i]);
      largest_change = std::max(largest_change, std::fabs(next - cost[i]));
      cost[i] = next;
    }
    if (largest_change < 1e-6) break;
  }
  std::map<std::string, double> fitted;
  for (std::size_t column = 0; column < columns; ++column)
    fitted[names[column]] = cost[column];
  return fitted;
}

Result<Profile> calibrate(const CalibrateOptions& options) {
  const PlatformInfo platform = detect_platform();
  if (!platform.kvm_error.empty()) {
    return Error{SimulateError::kUnusableTrace, "/dev/kvm: " + platform.kvm_error};
  }
  Profile profile;
  profile.name = profile_name_for(platform);
  profile.title = "this machine, calibrated: " + platform.one_line();
  profile.kind = PlatformKind::Calibrated;
  profile.cpu = platform.cpu_model;
  profile.backend = platform.backend;
  profile.sources[kSource] = "vmlab calibrate on " + platform.one_line() + ", " +
                             std::to_string(std::size(kWorkloads)) +
                             " workloads at two sizes per technique, a non-negative least-squares "
                             "fit of each run's VMM and monitor time";
  const auto techniques = techniques_of(options);
  const std::size_t total = techniques.size() * std::size(kWorkloads) * 2;
  std::size_t done = 0;
  ScratchFile scratch(scratch_path("calibrate"));
  for (const auto& technique : techniques) {
    std::vector<CalibrationRun> runs;
    for (const auto& workload : kWorkloads) {
      for (const std::uint64_t count : {workload.small_count, workload.large_count}) {
        const std::string label = technique + " " + workload.name + ":" + std::to_string(count);
        if (options.progress) options.progress(done, total, label);
        ++done;
        if (!workload_runs_under(workload.name, technique)) continue;
        auto trace = recorded_run(technique, workload.name, count, scratch.path());
        if (!trace) return with_context(label, trace.error());
        runs.push_back(calibration_run(*trace, label));
      }
    }
    // Three times: what each event costs the VMM, the monitor, and what it
    // adds at the guest's own level (KVM's switches and emulation inside
    // KVM_RUN, which the recorder cannot tell from the guest's work).
    auto fitted_for = [&](double CalibrationRun::*part) {
      std::vector<CalibrationRun> parts = runs;
      for (auto& run : parts)
        run.target_ns = run.*part;
      return fit_costs(parts);
    };
    for (const auto& [prefix, fitted] :
         {std::pair{std::string(kVmmPrefix), fitted_for(&CalibrationRun::vmm_ns)},
          std::pair{std::string(kMonitorPrefix), fitted_for(&CalibrationRun::monitor_ns)},
          std::pair{std::string(kGuestPrefix), fitted_for(&CalibrationRun::guest_ns)}}) {
      for (const auto& [name, ns] : fitted) {
        Cost cost;
        cost.ns = ns;
        cost.basis = "calibrated";
        cost.source = kSource;
        cost.note = name == kRunCost
                        ? "once per run (start, boot, end)"
                        : "fitted over " + std::to_string(runs.size()) +
                              " runs; classes that always come together (a fault and its "
                              "iretq) share their sum in no meaningful proportion";
        profile.calibrated[technique][prefix + name] = cost;
      }
    }
  }
  if (options.progress) options.progress(total, total, "");
  // The profile's clock (costs are in ns; cycles, where a reader wants
  // them, at the host's rate).
  profile.clock_ghz = 1;
  double tsc_khz = 0;
  if (std::FILE* cpuinfo = std::fopen("/proc/cpuinfo", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, cpuinfo) != nullptr) {
      double mhz = 0;
      if (std::sscanf(line, "cpu MHz : %lf", &mhz) == 1) {
        tsc_khz = mhz * 1000;
        break;
      }
    }
    std::fclose(cpuinfo);
  }
  if (tsc_khz > 0 && tsc_khz <= 20e6) profile.clock_ghz = tsc_khz / 1e6;
  return profile;
}

double ValidationRow::error() const {
  return measured_ns > 0 ? predicted_ns / measured_ns - 1 : 0;
}

Result<std::vector<ValidationRow>> validate(const Profile& profile,
                                            const CalibrateOptions& options) {
  const auto techniques = techniques_of(options);
  const auto workloads = default_compare_workloads();
  std::vector<ValidationRow> rows;
  ScratchFile scratch(scratch_path("validate"));
  const std::size_t total = techniques.size() * workloads.size();
  std::size_t done = 0;
  for (const auto& technique : techniques) {
    for (const auto& workload : workloads) {
      ValidationRow row;
      row.technique = technique;
      row.workload = workload.name + ":" + std::to_string(workload.count);
      if (options.progress) options.progress(done, total, technique + " " + row.workload);
      ++done;
      auto trace = recorded_run(technique, workload.name, workload.count, scratch.path());
      if (!trace) {
        row.failure = trace.error().message;
        rows.push_back(row);
        continue;
      }
      auto simulation = simulate(*trace, {profile});
      if (!simulation) return simulation.error();
      row.measured_ns = simulation->measured.total();
      row.predicted_ns = simulation->predictions.front().predicted.total();
      row.measured_transitions_ns = simulation->measured.transitions();
      row.predicted_transitions_ns = simulation->predictions.front().predicted.transitions();
      rows.push_back(row);
    }
  }
  if (options.progress) options.progress(total, total, "");
  return rows;
}

void print_validation(const std::vector<ValidationRow>& rows, const std::string& platform_line,
                      std::ostream& out) {
  char line[200];
  std::snprintf(line, sizeof line, "%-6s %-22s %12s %12s %8s %14s %14s %8s\n", "cpu", "workload",
                "measured", "predicted", "error", "VMM+monitor", "predicted", "error");
  out << line;
  std::size_t within = 0, compared = 0;
  for (const auto& row : rows) {
    if (!row.failure.empty()) {
      out << row.technique << " " << row.workload << ": not run: " << row.failure << "\n";
      continue;
    }
    ++compared;
    if (std::fabs(row.error()) <= 0.15) ++within;
    const double transition_error =
        row.measured_transitions_ns > 0
            ? row.predicted_transitions_ns / row.measured_transitions_ns - 1
            : 0;
    std::snprintf(line, sizeof line,
                  "%-6s %-22s %10.2fms %10.2fms %+7.1f%% %12.2fms %12.2fms %+7.1f%%\n",
                  row.technique.c_str(), row.workload.c_str(), row.measured_ns / 1e6,
                  row.predicted_ns / 1e6, 100 * row.error(), row.measured_transitions_ns / 1e6,
                  row.predicted_transitions_ns / 1e6, 100 * transition_error);
    out << line;
  }
  out << within << " of " << compared
      << " predictions within 15% of the measured time. VMM+monitor: the part the profile "
         "predicts; guest and halted time are carried over from each run.\n"
      << platform_line << "\n";
}

}  // namespace vmlab::simulate
