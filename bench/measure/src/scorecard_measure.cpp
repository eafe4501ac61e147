// The scorecard's runs: the probe matrix, the workloads under every
// technique and under QEMU, the instruction census, the hostile guest and the
// DMA attack. What each run showed is kept as evidence; scoring is
// elsewhere (scorecard.cpp).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/measure/operations.hpp"
#include "vmlab/measure/scorecard.hpp"
#include "vmlab/platform.hpp"
#include "vmlab/probe.hpp"
#include "vmlab/reference.hpp"
#include "vmlab/runner.hpp"

namespace vmlab::measure {

namespace {

constexpr const char* kQemu = "qemu-tcg";
constexpr double kTimeoutSeconds = 120;

// The probe matrix's column for a technique (the +umip columns are
// variants, not techniques).
const ProbeColumn* column_named(const ProbeMatrix& matrix, const std::string& name,
                                std::size_t& index) {
  for (index = 0; index < matrix.columns.size(); ++index) {
    if (matrix.columns[index].name == name) return &matrix.columns[index];
  }
  return nullptr;
}

std::string workload_label(const std::pair<std::string, std::uint64_t>& workload) {
  return workload.first + ":" + std::to_string(workload.second);
}

RunOptions options_for(const std::string& cpu, const std::pair<std::string, std::uint64_t>& load) {
  RunOptions options;
  options.cpu = cpu;
  options.workload = load.first;
  options.count = load.second;
  options.timeout_seconds = kTimeoutSeconds;
  return options;
}

// How a run ended, for a line that says why it counts for nothing.
std::string ending_of(const Result<GuestRun>& run) {
  if (!run) return run.error().message;
  if (run->report.outcome != RunOutcome::GuestExited) {
    return run->report.message.empty() ? "the guest did not exit" : run->report.message;
  }
  return "guest exit status " + std::to_string(run->report.exit_value);
}

// The result line as the scorecard compares it, or what stood in its place.
std::string compared_line(const std::vector<std::string>& debug_lines, const std::string& failure) {
  std::string line;
  for (const auto& each : debug_lines) {
    if (parse_result_line(each)) line = comparable_result_line(each);
  }
  return line.empty() ? "(no result line: " + failure + ")" : line;
}

std::string not_compared(const std::string& workload, const std::string& technique) {
  if (!workload_runs_under(workload, kQemu)) {
    return workload + " runs only under para: a native machine has no hypercalls";
  }
  if (!workload_runs_under(workload, technique)) {
    return workload + " runs natively but not under " + technique +
           ", whose kernel is written not to need it";
  }
  return {};
}

std::uint64_t hostile_attempts(const std::vector<std::string>& debug_lines) {
  return static_cast<std::uint64_t>(
      std::count_if(debug_lines.begin(), debug_lines.end(),
                    [](const std::string& line) { return line.rfind("VMLAB-HOSTILE ", 0) == 0; }));
}

class Progress {
 public:
  Progress(const ScorecardOptions& options, std::size_t total)
      : m_progress(options.progress), m_total(total) {}
  void step(const std::string& what) {
    if (m_progress) m_progress(m_done, m_total, what);
    ++m_done;
  }
  void finish() {
    if (m_progress) m_progress(m_total, m_total, "");
  }

 private:
  const std::function<void(std::size_t, std::size_t, const std::string&)>& m_progress;
  std::size_t m_total;
  std::size_t m_done = 0;
};

void measure_probes(const Result<ProbeMatrix>& matrix, TechniqueEvidence& evidence) {
  if (!matrix) {
    evidence.equivalence_missing = "the probes did not run: " + matrix.error().message;
    return;
  }
  if (!matrix->columns.front().unavailable.empty()) {
    evidence.equivalence_missing =
        "no native reference: QEMU could not run (" + matrix->columns.front().unavailable + ")";
    return;
  }
  std::size_t index = 0;
  const ProbeColumn* column = column_named(*matrix, evidence.technique, index);
  if (column == nullptr) {
    evidence.equivalence_missing = "the probe matrix has no " + evidence.technique + " column";
    return;
  }
  if (!column->unavailable.empty()) {
    evidence.equivalence_missing = "the probes did not run: " + column->unavailable;
    return;
  }
  for (const auto& probe : matrix->probes) {
    const ProbeCell cell = probe_cell(*matrix, index, probe);
    Comparison comparison{probe, cell.value, cell.expected, {}, {}};
    if (cell.verdict == ProbeVerdict::NotApplicable) comparison.not_applicable = cell.note;
    if (auto substitute = column->substitutes.find(probe);
        substitute != column->substitutes.end()) {
      comparison.substitute = substitute->second;
    }
    evidence.probes.push_back(std::move(comparison));
  }
}

CensusRun measure_census(const std::string& cpu,
                         const std::pair<std::string, std::uint64_t>& workload,
                         std::string& missing) {
  CensusRun census;
  census.workload = workload_label(workload);
  RunOptions options = options_for(cpu, workload);
  options.instruction_census = true;
  auto stepped = run_guest(options);
  if (!stepped || stepped->report.outcome != RunOutcome::GuestExited || !stepped->census) {
    missing = "the census run of " + census.workload + " failed: " + ending_of(stepped);
    return census;
  }
  census.census = *stepped->census;
  options.instruction_census = false;
  auto plain = run_guest(options);
  if (!plain || plain->report.outcome != RunOutcome::GuestExited) {
    missing = "the unstepped run of " + census.workload + " failed: " + ending_of(plain);
    return census;
  }
  census.traps = plain->traps_by_reason;
  census.hypercalls = plain->hypercalls;
  if (cpu == "hvm" && plain->report.kvm_stats.values.count("insn_emulation") == 0) {
    missing =
        "KVM gave no insn_emulation statistic (its binary stats), so what its "
        "emulator ran is unknown";
    return census;
  }
  census.insn_emulation = plain->report.kvm_stats.value("insn_emulation");
  if (plain->translation) {
    for (const auto& [mnemonic, count] : plain->translation->call_outs)
      census.call_outs += count;
  }
  return census;
}

HostileRun measure_hostile(const std::string& technique) {
  HostileRun hostile;
  const std::pair<std::string, std::uint64_t> workload{"hostile", 1};
  if (technique == kQemu) {
    auto reference = run_reference_machine(
        builtin_guest_image(), command_line_for(options_for("hvm", workload)), kTimeoutSeconds);
    if (!reference) {
      hostile.failure = reference.error().message;
      return hostile;
    }
    hostile.attempts = hostile_attempts(reference->debug_lines);
    for (const auto& line : reference->debug_lines) {
      if (auto result = parse_result_line(line)) hostile.as_expected = result->number("check");
    }
    // isa-debug-exit: (guest status << 1) | 1; the guest exits 0 when it survived.
    hostile.survived = reference->exit_status == 1;
    if (!hostile.survived) {
      hostile.failure = "QEMU exit status " + std::to_string(reference->exit_status);
    }
    return hostile;
  }
  auto run = run_guest(options_for(technique, workload));
  if (!run) {
    hostile.failure = run.error().message;
    return hostile;
  }
  hostile.attempts = hostile_attempts(run->debug_lines);
  hostile.survived = run->report.outcome == RunOutcome::GuestExited && run->report.exit_value == 0;
  if (!hostile.survived) hostile.failure = ending_of(run);
  if (run->result) hostile.as_expected = run->result->number("check");
  if (run->report.integrity_violation)
    hostile.integrity_violation = *run->report.integrity_violation;
  return hostile;
}

DmaRun measure_dma(const std::string& technique, const std::string& image) {
  DmaRun dma;
  RunOptions options = options_for(technique, {"dma-attack", 1});
  options.disk_path = image;
  options.disk_model = "passthrough";
  auto run = run_guest(options);
  if (!run) {
    dma.failure = run.error().message;
    return dma;
  }
  for (const auto& line : run->debug_lines) {
    if (auto fields = parse_debug_line_fields(line, "VMLAB-DMA ")) {
      dma.outcomes[(*fields)["target"]] = (*fields)["outcome"];
    }
  }
  dma.survived = run->report.outcome == RunOutcome::GuestExited && run->report.exit_value == 0;
  if (!dma.survived) dma.failure = ending_of(run);
  return dma;
}

}  // namespace

std::vector<std::pair<std::string, std::uint64_t>> default_scorecard_workloads() {
  // Every built-in workload that needs no disk, sized to take well under a
  // second under each technique on a kvm_pvm host (hvm emulates kernel code
  // there). probes and hostile have their own parts of the scorecard.
  return {{"hello", 1},
          {"syscalls", 100},
          {"pagefaults", 40},
          {"compute", 100000},
          {"kernel-compute", 20000},
          {"kernel-smc", 50},
          {"cli-sti", 100},
          {"pio", 100},
          {"pio-out", 100},
          {"cr8-write", 100},
          {"call-ret", 20000},
          {"divide-error", 50},
          {"pte-update", 50},
          {"page-fault", 50},
          {"pte-write", 50},
          {"hypercall", 100},
          {"timer", 3},
          {"interrupts", 5},
          {"rtc", 3},
          {"fault", 1},
          {"segfault", 1}};
}

std::vector<std::pair<std::string, std::uint64_t>> census_workloads() {
  // One run the kernel dominates (system calls) and one user code dominates:
  // efficiency depends on the mix, and the two bracket it.
  return {{"syscalls", 20}, {"compute", 2000}};
}

Result<ScorecardEvidence> measure_scorecard(const ScorecardOptions& options) {
  if (auto kvm = Kvm::open(); !kvm) return kvm.error();
  const std::vector<std::string> techniques =
      options.techniques.empty() ? scorecard_techniques() : options.techniques;
  const auto workloads =
      options.workloads.empty() ? default_scorecard_workloads() : options.workloads;
  const auto census = census_workloads();
  const PlatformInfo platform = detect_platform();

  ScorecardEvidence evidence;
  evidence.platform_line = platform.one_line();
  evidence.backend = platform.backend;
  evidence.date = utc_now();
  const bool qemu_available = reference_machine_available();
  std::size_t vmm_techniques = 0;
  for (const auto& technique : techniques)
    vmm_techniques += technique == kQemu ? 0u : 1u;
  Progress progress(options, 1 + workloads.size() * (1 + vmm_techniques) +
                                 vmm_techniques * (census.size() * 2 + 2) + 1);

  progress.step("the probes, under QEMU and every technique");
  const Result<ProbeMatrix> matrix = run_probe_matrix();

  // The native result lines, once each.
  std::vector<std::string> reference_lines;
  for (const auto& workload : workloads) {
    progress.step("qemu-tcg: " + workload_label(workload));
    if (!qemu_available) {
      reference_lines.emplace_back();
      continue;
    }
    auto reference = run_reference_machine(
        builtin_guest_image(), command_line_for(options_for("hvm", workload)), kTimeoutSeconds);
    reference_lines.push_back(reference ? compared_line(reference->debug_lines, "QEMU printed none")
                                        : std::string());
  }

  // Each technique's census runs of a workload, made once.
  std::map<std::string, CensusRun> censuses;
  auto census_of = [&](const std::string& cpu,
                       const std::pair<std::string, std::uint64_t>& workload,
                       std::string& missing) {
    const std::string key = cpu + " " + workload_label(workload);
    if (auto known = censuses.find(key); known != censuses.end()) return known->second;
    CensusRun counted = measure_census(cpu, workload, missing);
    if (missing.empty()) censuses.emplace(key, counted);
    return counted;
  };

  std::optional<ScratchFile> image;
  std::string image_error;
  for (const auto& technique : techniques) {
    TechniqueEvidence row;
    row.technique = technique;
    if (technique == kQemu) {
      if (!qemu_available) {
        row.missing = "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
      } else {
        progress.step("qemu-tcg: hostile");
        row.hostile = measure_hostile(technique);
      }
      evidence.techniques.push_back(std::move(row));
      continue;
    }
    measure_probes(matrix, row);
    for (std::size_t index = 0; index < workloads.size(); ++index) {
      progress.step(technique + ": " + workload_label(workloads[index]));
      if (!row.equivalence_missing.empty()) continue;
      if (reference_lines[index].empty()) {
        row.equivalence_missing =
            "QEMU printed no result line for " + workload_label(workloads[index]);
        continue;
      }
      auto run = run_guest(options_for(technique, workloads[index]));
      Comparison comparison;
      comparison.name = workload_label(workloads[index]);
      comparison.expected = reference_lines[index];
      comparison.value = run ? compared_line(run->debug_lines, ending_of(run))
                             : "(did not run: " + run.error().message + ")";
      comparison.not_applicable = not_compared(workloads[index].first, technique);
      row.workloads.push_back(std::move(comparison));
    }
    for (const auto& workload : census) {
      progress.step(technique + ": census of " + workload_label(workload));
      progress.step(technique + ": " + workload_label(workload) + " unstepped");
      if (!row.efficiency_missing.empty()) continue;
      CensusRun counted = census_of(technique, workload, row.efficiency_missing);
      if (!row.efficiency_missing.empty()) continue;
      if (!counted.census.user_mode_counted) {
        // The same guest code at CPL3 under full, which steps it (measured
        // once: full's own row takes the same runs).
        std::string full_missing;
        const CensusRun full = census_of("full", workload, full_missing);
        if (full_missing.empty()) counted.user_steps_from_full = full.census.user_steps;
      }
      row.census.push_back(std::move(counted));
    }
    progress.step(technique + ": hostile");
    row.hostile = measure_hostile(technique);
    progress.step(technique + ": dma-attack");
    if (!image && image_error.empty()) {
      image.emplace((std::filesystem::temp_directory_path() /
                     ("vmlab-scorecard-" + std::to_string(::getpid()) + ".img"))
                        .string());
      if (auto created = devices::create_raw_image(image->path(), 1 * MiB, true); !created) {
        image_error = created.error().message;
      }
    }
    if (image_error.empty()) {
      row.dma = measure_dma(technique, image->path());
    } else {
      row.dma_missing = "no scratch image for it: " + image_error;
    }
    evidence.techniques.push_back(std::move(row));
  }
  progress.finish();
  return evidence;
}

}  // namespace vmlab::measure
