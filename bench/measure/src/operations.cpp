#include "vmlab/measure/operations.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>

#include "vmlab/kvm.hpp"
#include "vmlab/platform.hpp"
#include "vmlab/reference.hpp"
#include "vmlab/runner.hpp"

namespace vmlab::measure {

namespace {

// Counts sized so that the slowest technique here (hvm on kvm_pvm, whose
// kernel code KVM emulates at about a microsecond an instruction, or a
// software technique's trap at tens of microseconds) spends well under a
// second on the large run, and the whole suite stays within minutes.
constexpr Operation kOperations[] = {
    {"syscall", "syscalls", 50, 200, "a null system call from user mode and back (syscall, iretq)",
     ""},
    {"in", "pio", 100, 400, "an inb from the 16550's scratch register", ""},
    {"cr8wr", "cr8-write", 100, 400, "a write to CR8, the task-priority register", "not para"},
    {"call/ret", "call-ret", 500, 2000, "a call to a function that returns at once", ""},
    {"pgfault", "page-fault", 50, 200,
     "a page fault in the kernel, resumed past the load: no mapping changes (as Adams and "
     "Agesen's)",
     ""},
    {"divzero", "divide-error", 50, 200, "a divide error delivered to the kernel's own handler",
     ""},
    {"ptemod", "pte-write", 50, 200,
     "a store to a present PTE of the kernel's, no invlpg (as Adams and Agesen's)", ""},
    {"out", "pio-out", 100, 400, "an outb to the 16550's scratch register", ""},
    {"cli/sti", "cli-sti", 100, 400, "a cli; sti pair in the kernel (para: the shared-page mask)",
     ""},
    {"hypercall", "hypercall", 100, 400, "a null hypercall", "para"},
    {"interrupt", "interrupts", 10, 40,
     "a timer interrupt delivered to the kernel, handled and returned from", ""},
    {"kernel compute", "kernel-compute", 2000, 8000,
     "one round of the integer mix in the kernel (user mode runs it natively everywhere)", ""},
};

constexpr Technique kTechniques[] = {
    {"hvm", "hvm", false, "hardware-assisted: the kernel at CPL0, the VMM's PIC and PIT"},
    {"hvm+kirq", "hvm", true, "hvm with KVM's in-kernel PIC and PIT"},
    {"full", "full", false, "trap-and-emulate: the kernel deprivileged, a monitor emulating"},
    {"bt", "bt", false, "binary translation of the kernel's code"},
    {"para", "para", false, "paravirtualization: hypercalls, validated page tables"},
    {kQemuTcgLabel, kQemuTcgLabel, false, "QEMU's software emulation (TCG): no VM at all"},
};

constexpr std::string_view kFigureKeys[] = {
    "cycles_per_op",          "ns_per_op",         "vmm_entries_per_op",  "kvm_exits_per_op",
    "monitor_traps_per_op",   "hypercalls_per_op", "kvm_emulated_per_op", "guest_user_ns_per_op",
    "guest_kernel_ns_per_op", "monitor_ns_per_op", "vmm_ns_per_op",       "halted_ns_per_op",
};
static_assert(std::size(kFigureKeys) == static_cast<std::size_t>(Figure::Count));

constexpr std::string_view kStatusNames[] = {"measured", "failed", "not-applicable", "not-run"};

constexpr const char* kBootWorkload = "cli-sti";

double milliseconds(std::chrono::nanoseconds time) {
  return std::chrono::duration<double, std::milli>(time).count();
}

// Why a run gave no figures, or nothing.
std::optional<std::string> failure_of(const Result<GuestRun>& run) {
  if (!run) return run.error().message;
  if (run->report.outcome != RunOutcome::GuestExited) return run->report.message;
  if (!run->result) return std::string("the guest printed no result line");
  if (run->result->field("status") != "ok" || run->report.exit_value != 0) {
    return "the guest reported " + run->result->line;
  }
  return std::nullopt;
}

RunOptions run_options_for(const Technique& technique, std::string_view workload,
                           std::uint64_t count, double timeout_seconds) {
  RunOptions options;
  options.cpu = std::string(technique.cpu);
  options.irqchip = technique.kernel_irqchip ? IrqchipModel::Kernel : IrqchipModel::Vmm;
  options.workload = std::string(workload);
  options.count = count;
  options.timeout_seconds = timeout_seconds;
  options.measurement_window = true;
  return options;
}

void add(Cell& cell, Figure figure, double value) {
  cell.figures[figure].values.push_back(value);
}

// One repetition of a KVM cell: the two runs, their figures added.
void measure_kvm_cell(Cell& cell, const Operation& operation, const Technique& technique,
                      double timeout_seconds, std::uint32_t& tsc_khz) {
  auto small = run_guest(
      run_options_for(technique, operation.workload, operation.small_count, timeout_seconds));
  auto large = run_guest(
      run_options_for(technique, operation.workload, operation.large_count, timeout_seconds));
  auto failure = failure_of(small);
  if (!failure) failure = failure_of(large);
  if (failure) {
    cell.status = CellStatus::Failed;
    cell.reason = *failure;
    cell.figures.clear();
    return;
  }
  if (tsc_khz == 0) tsc_khz = large->report.tsc_khz;
  const double count = static_cast<double>(std::max<std::uint64_t>(1, large->result->number("n")));
  const double cycles = static_cast<double>(large->result->number("cycles")) / count;
  add(cell, Figure::CyclesPerOp, cycles);
  if (large->report.tsc_khz != 0) {
    add(cell, Figure::NsPerOp, cycles * 1e6 / static_cast<double>(large->report.tsc_khz));
  }
  // KVM's counters are read at the ends of a run: the marginal between the
  // two runs.
  const double extra = static_cast<double>(operation.large_count - operation.small_count);
  auto marginal = [&](Figure figure, std::uint64_t few, std::uint64_t many) {
    add(cell, figure, (static_cast<double>(many) - static_cast<double>(few)) / extra);
  };
  if (small->report.stats_available && large->report.stats_available) {
    marginal(Figure::KvmExitsPerOp, small->report.kvm_stats.value("exits"),
             large->report.kvm_stats.value("exits"));
    marginal(Figure::KvmEmulatedPerOp, small->report.kvm_stats.value("insn_emulation"),
             large->report.kvm_stats.value("insn_emulation"));
  }
  // The VMM's own counts and times inside the guest's measured loop (its
  // window), over its N: no boot in them, and no noise from it.
  if (!large->window) {
    cell.status = CellStatus::Failed;
    cell.reason = "the guest marked no measurement window (an older guest image?)";
    cell.figures.clear();
    return;
  }
  const MeasurementWindow& window = *large->window;
  auto per_op = [&](Figure figure, std::uint64_t value) {
    add(cell, figure, static_cast<double>(value) / count);
  };
  auto level = [&](PrivilegeLevel which) {
    return window.level_time_ns[static_cast<std::size_t>(which)];
  };
  per_op(Figure::VmmEntriesPerOp, window.vm_exits);
  if (technique.cpu != "hvm") per_op(Figure::MonitorTrapsPerOp, window.monitor_traps);
  if (technique.cpu == "para") per_op(Figure::HypercallsPerOp, window.hypercalls);
  per_op(Figure::GuestUserNsPerOp, level(PrivilegeLevel::GuestUser));
  per_op(Figure::GuestKernelNsPerOp,
         level(PrivilegeLevel::GuestKernel) + level(PrivilegeLevel::Unknown));
  per_op(Figure::MonitorNsPerOp, level(PrivilegeLevel::Monitor));
  per_op(Figure::VmmNsPerOp, level(PrivilegeLevel::Vmm));
  per_op(Figure::HaltedNsPerOp, window.halted_ns);
  cell.status = CellStatus::Measured;
}

// QEMU: the large run only (it counts no exits), its result line judged as
// a KVM run's is.
void measure_qemu_cell(Cell& cell, const Operation& operation, double timeout_seconds,
                       std::uint32_t tsc_khz) {
  const Technique& hvm = kTechniques[0];
  const std::string command_line = command_line_for(
      run_options_for(hvm, operation.workload, operation.large_count, timeout_seconds));
  auto reference = run_reference_machine(builtin_guest_image(), command_line, timeout_seconds);
  std::optional<WorkloadResult> result;
  if (reference) {
    for (const auto& line : reference->debug_lines) {
      if (auto parsed = parse_result_line(line)) result = std::move(parsed);
    }
  }
  if (!reference || !result || result->field("status") != "ok") {
    cell.status = CellStatus::Failed;
    cell.reason = !reference ? reference.error().message
                  : result   ? "the guest reported " + result->line
                             : std::string("the guest printed no result line");
    cell.figures.clear();
    return;
  }
  const double count = static_cast<double>(std::max<std::uint64_t>(1, result->number("n")));
  const double cycles = static_cast<double>(result->number("cycles")) / count;
  add(cell, Figure::CyclesPerOp, cycles);
  // QEMU's TCG reads the host's TSC for the guest's rdtsc.
  if (tsc_khz != 0) add(cell, Figure::NsPerOp, cycles * 1e6 / static_cast<double>(tsc_khz));
  cell.status = CellStatus::Measured;
}

// The boot workload's options: no window lines to print on the way.
RunOptions boot_options(const Technique& technique, double timeout_seconds) {
  RunOptions options = run_options_for(technique, kBootWorkload, 1, timeout_seconds);
  options.measurement_window = false;
  return options;
}

void measure_boot(BootCell& boot, const Technique& technique, double timeout_seconds) {
  if (technique.label == kQemuTcgLabel) {
    // A separate process: timed from its start to its exit, an upper bound
    // on its time to the result line; its first instruction is not seen.
    const auto started = std::chrono::steady_clock::now();
    auto reference = run_reference_machine(
        builtin_guest_image(), command_line_for(boot_options(kTechniques[0], timeout_seconds)),
        timeout_seconds);
    if (!reference) {
      boot.status = CellStatus::Failed;
      boot.reason = reference.error().message;
      return;
    }
    boot.to_result_line_ms.values.push_back(
        milliseconds(std::chrono::steady_clock::now() - started));
    boot.status = CellStatus::Measured;
    return;
  }
  auto run = run_guest(boot_options(technique, timeout_seconds));
  if (auto failure = failure_of(run)) {
    boot.status = CellStatus::Failed;
    boot.reason = *failure;
    return;
  }
  boot.to_first_entry_ms.values.push_back(milliseconds(run->to_first_entry));
  boot.to_result_line_ms.values.push_back(milliseconds(run->to_result_line));
  boot.status = CellStatus::Measured;
}

}  // namespace

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

std::span<const Operation> operations() {
  return kOperations;
}

const Operation* find_operation(std::string_view name) {
  for (const auto& operation : kOperations) {
    if (operation.name == name) return &operation;
  }
  return nullptr;
}

std::span<const Technique> techniques() {
  return kTechniques;
}

const Technique* find_technique(std::string_view label) {
  for (const auto& technique : kTechniques) {
    if (technique.label == label) return &technique;
  }
  return nullptr;
}

std::string operation_list() {
  std::string text;
  for (const auto& operation : kOperations)
    text += (text.empty() ? "" : ", ") + std::string(operation.name);
  return text;
}

std::string technique_list() {
  std::string text;
  for (const auto& technique : kTechniques)
    text += (text.empty() ? "" : ", ") + std::string(technique.label);
  return text;
}

std::optional<std::string> not_applicable(const Operation& operation, const Technique& technique) {
  const bool para = technique.cpu == "para";
  if (operation.only == "para" && !para) {
    return "a hypercall is paravirtualization's: " + std::string(technique.label) +
           "'s kernel makes none";
  }
  if (operation.only == "not para" && para) {
    return "the paravirtual kernel has no TPR to write (its event mask is in the shared page)";
  }
  return std::nullopt;
}

double Samples::median() const {
  if (values.empty()) return 0;
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t middle = sorted.size() / 2;
  return sorted.size() % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

double Samples::minimum() const {
  return values.empty() ? 0 : *std::min_element(values.begin(), values.end());
}

double Samples::maximum() const {
  return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}

std::string_view figure_key(Figure figure) {
  return kFigureKeys[static_cast<std::size_t>(figure)];
}

std::optional<Figure> figure_of_key(std::string_view key) {
  for (std::size_t index = 0; index < std::size(kFigureKeys); ++index) {
    if (kFigureKeys[index] == key) return static_cast<Figure>(index);
  }
  return std::nullopt;
}

std::string_view cell_status_name(CellStatus status) {
  return kStatusNames[static_cast<std::size_t>(status)];
}

const Samples* Cell::figure(Figure which) const {
  auto found = figures.find(which);
  return found == figures.end() || found->second.empty() ? nullptr : &found->second;
}

const Cell* Measurements::cell(std::string_view operation, std::string_view technique) const {
  for (const auto& cell : cells) {
    if (cell.operation == operation && cell.technique == technique) return &cell;
  }
  return nullptr;
}

const BootCell* Measurements::boot_of(std::string_view technique) const {
  for (const auto& cell : boot) {
    if (cell.technique == technique) return &cell;
  }
  return nullptr;
}

Status check_measure_options(const MeasureOptions& options) {
  for (const auto& label : options.techniques) {
    if (find_technique(label) == nullptr) {
      return Error{MeasureError::kUnknownName,
                   "unknown technique '" + label + "'; the suite has " + technique_list()};
    }
  }
  for (const auto& name : options.operations) {
    if (find_operation(name) == nullptr) {
      return Error{MeasureError::kUnknownName,
                   "unknown operation '" + name + "'; the suite has " + operation_list()};
    }
  }
  if (options.repetitions < 1) {
    return Error{MeasureError::kUnknownName, "the repetitions must be at least 1"};
  }
  return {};
}

Result<Measurements> measure(const MeasureOptions& options) {
  if (auto valid = check_measure_options(options); !valid) return valid.error();
  if (auto kvm = Kvm::open(); !kvm) return kvm.error();
  Measurements measurements;
  measurements.platform_line = detect_platform().one_line();
  measurements.date = utc_now();
  measurements.repetitions = options.repetitions;
  for (const auto& technique : kTechniques) {
    if (options.techniques.empty() ||
        std::find(options.techniques.begin(), options.techniques.end(), technique.label) !=
            options.techniques.end()) {
      measurements.technique_labels.emplace_back(technique.label);
    }
  }
  for (const auto& operation : kOperations) {
    if (options.operations.empty() ||
        std::find(options.operations.begin(), options.operations.end(), operation.name) !=
            options.operations.end()) {
      measurements.operation_names.emplace_back(operation.name);
    }
  }
  const bool qemu = reference_machine_available();
  for (const auto& name : measurements.operation_names) {
    const Operation& operation = *find_operation(name);
    for (const auto& label : measurements.technique_labels) {
      const Technique& technique = *find_technique(label);
      Cell cell;
      cell.operation = name;
      cell.technique = label;
      if (auto why = not_applicable(operation, technique)) {
        cell.status = CellStatus::NotApplicable;
        cell.reason = *why;
      } else if (label == kQemuTcgLabel && !qemu) {
        cell.reason = "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
      }
      measurements.cells.push_back(std::move(cell));
    }
  }
  for (const auto& label : measurements.technique_labels) {
    BootCell boot;
    boot.technique = label;
    if (label == kQemuTcgLabel && !qemu) boot.reason = "qemu-system-x86_64 is not installed";
    measurements.boot.push_back(std::move(boot));
  }

  // Every step is one repetition of one cell; the KVM cells first so that
  // the TSC rate is known when QEMU's cycles are turned into time.
  struct Step {
    Cell* cell;
    BootCell* boot;
  };
  std::vector<Step> steps;
  for (auto& cell : measurements.cells) {
    if (cell.status == CellStatus::NotRun && cell.reason.empty()) steps.push_back({&cell, nullptr});
  }
  for (auto& boot : measurements.boot) {
    if (boot.reason.empty()) steps.push_back({nullptr, &boot});
  }
  std::stable_partition(steps.begin(), steps.end(), [](const Step& step) {
    return step.cell == nullptr || step.cell->technique != kQemuTcgLabel;
  });
  const std::size_t total = steps.size() * static_cast<std::size_t>(options.repetitions);
  std::size_t done = 0;
  for (int repetition = 0; repetition < options.repetitions; ++repetition) {
    for (std::size_t slot = 0; slot < steps.size(); ++slot) {
      // The order rotates from one repetition to the next, so that no cell
      // always runs after the same neighbour (these machines are shared).
      const auto rotation = static_cast<std::size_t>(repetition + options.first_repetition) * 7;
      const Step& step = steps[(slot + rotation) % steps.size()];
      if (step.cell != nullptr) {
        Cell& cell = *step.cell;
        if (options.progress) {
          options.progress(done, total, cell.operation + " under " + cell.technique);
        }
        if (cell.status != CellStatus::Failed) {
          const Operation& operation = *find_operation(cell.operation);
          if (cell.technique == kQemuTcgLabel) {
            measure_qemu_cell(cell, operation, options.timeout_seconds, measurements.tsc_khz);
          } else {
            measure_kvm_cell(cell, operation, *find_technique(cell.technique),
                             options.timeout_seconds, measurements.tsc_khz);
          }
        }
      } else {
        BootCell& boot = *step.boot;
        if (options.progress) options.progress(done, total, "boot under " + boot.technique);
        if (boot.status != CellStatus::Failed) {
          measure_boot(boot, *find_technique(boot.technique), options.timeout_seconds);
        }
      }
      ++done;
    }
  }
  if (options.progress) options.progress(total, total, "");
  return measurements;
}

}  // namespace vmlab::measure
