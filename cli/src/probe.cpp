#include "vmlab/probe.hpp"

#include <algorithm>
#include <cstdio>

#include "vmlab/abi/boot_info.hpp"
#include "vmlab/abi/cpuid.hpp"

#include "vmlab/cli_error.hpp"
#include "vmlab/platform.hpp"
#include "vmlab/reference.hpp"
#include "vmlab/runner.hpp"

namespace vmlab {

namespace {

// kvm_pvm runs guest CPL0 code in KVM's instruction emulator, which has no
// lar, lsl, verr or verw (README.md): hvm leaves them out there.
constexpr const char* kSegmentChecks[] = {"lar-cs", "lsl-cs", "verr-cs", "verw-ss"};

// One mode's column, and why it could not run: the run's own error (its
// kind kept), or kWorkloadFailed for a run that ended without the probes.
struct ColumnRun {
  ProbeColumn column;
  std::optional<Error> failure;
};

ColumnRun run_column(const std::string& name, const RunOptions& options) {
  ColumnRun column_run;
  ProbeColumn& column = column_run.column;
  column.name = name;
  auto run = run_guest(options);
  if (!run) {
    column.unavailable = run.error().message;
    column_run.failure = run.error();
    return column_run;
  }
  if (run->report.outcome != RunOutcome::GuestExited || !run->result ||
      run->result->field("status") != "ok") {
    column.unavailable =
        run->report.message.empty() ? "the probes workload failed" : run->report.message;
    column_run.failure = Error{CliError::kWorkloadFailed, column.unavailable};
    return column_run;
  }
  column.values = parse_probe_lines(run->debug_lines);
  column.substitutes = parse_probe_lines(run->debug_lines, nullptr, "VMLAB-PROBE-PV ");
  return column_run;
}

}  // namespace

std::optional<std::string> vmm_defined_value(const std::string& probe) {
  if (probe == "cpuid-signature") return std::string(VMLAB_CPUID_SIGNATURE);
  if (probe == "cpuid-0x40000001") {
    char text[32];
    std::snprintf(text, sizeof text, "eax=0x%x", VMLAB_BOOT_VERSION);
    return std::string(text);
  }
  return std::nullopt;
}

std::optional<bool> saw_vmm_cpuid(const ProbeColumn& column) {
  std::optional<bool> saw;
  for (const char* probe : {"cpuid-signature", "cpuid-0x40000001"}) {
    const auto value = column.values.find(probe);
    if (value == column.values.end()) continue;
    const bool matches = value->second == vmm_defined_value(probe);
    saw = saw.value_or(true) && matches;
  }
  return saw;
}

bool umip_covers(const std::string& probe) {
  return probe == "sgdt" || probe == "sidt" || probe == "sldt" || probe == "str" || probe == "smsw";
}

std::map<std::string, std::string> parse_probe_lines(const std::vector<std::string>& lines,
                                                     std::vector<std::string>* order,
                                                     std::string_view prefix) {
  std::map<std::string, std::string> values;
  for (const auto& line : lines) {
    if (line.rfind(prefix, 0) != 0) continue;
    const std::size_t space = line.find(' ', prefix.size());
    if (space == std::string::npos) continue;
    const std::string name = line.substr(prefix.size(), space - prefix.size());
    if (order != nullptr && values.count(name) == 0) order->push_back(name);
    values[name] = line.substr(space + 1);
  }
  return values;
}

Result<ProbeMatrix> run_probe_matrix() {
  ProbeMatrix matrix;
  const PlatformInfo platform = detect_platform();
  matrix.platform_line = platform.one_line();
  matrix.cpuid_at_user_level = platform.cpuid_at_user_level;
  matrix.cpuid_interception_line = platform.cpuid_interception_line();
  const std::string command_line = "workload=probes";

  ProbeColumn native;
  native.name = "native (QEMU)";
  auto reference = run_reference_machine(builtin_guest_image(), command_line);
  if (reference) {
    native.values = parse_probe_lines(reference->debug_lines, &matrix.probes);
    if (native.values.empty()) native.unavailable = "QEMU printed no probe lines";
  } else {
    native.unavailable = reference.error().message;
  }
  matrix.columns.push_back(native);

  RunOptions options;
  options.workload = "probes";
  options.timeout_seconds = 60;
  options.cpu = "hvm";
  const bool segment_checks_unsupported = platform.backend == "kvm_pvm";
  if (segment_checks_unsupported) options.extra_command_line = "probes=no-segment-checks";
  ColumnRun hvm = run_column("hvm", options);
  if (hvm.failure) {
    return with_context("hvm could not run the probes", *hvm.failure);
  }
  if (segment_checks_unsupported) {
    for (const char* probe : kSegmentChecks) {
      hvm.column.notes[probe] = "n/a: kvm_pvm cannot emulate it at CPL0";
    }
  }
  matrix.columns.push_back(hvm.column);

  options.extra_command_line.clear();
  options.cpu = "full";
  matrix.columns.push_back(run_column("full", options).column);
  options.umip = true;
  matrix.columns.push_back(run_column("full+umip", options).column);
  // bt translates every one of the kernel's sensitive instructions: its
  // columns must match the native one everywhere, with UMIP or without.
  options.cpu = "bt";
  options.umip = false;
  matrix.columns.push_back(run_column("bt", options).column);
  options.umip = true;
  matrix.columns.push_back(run_column("bt+umip", options).column);
  options.umip = false;
  options.cpu = "para";
  ProbeColumn para = run_column("para", options).column;
  for (const char* probe : kSegmentChecks) {
    para.notes[probe] = "n/a: a paravirtualized kernel makes no segment checks";
  }
  for (const char* probe : {"cpuid-signature", "cpuid-0x40000001"}) {
    para.notes[probe] =
        "executed only to show what cpuid returns at CPL3; the kernel takes nothing from it "
        "(boot_info says it runs paravirtualized and gives the TSC rate)";
  }
  matrix.columns.push_back(para);

  if (matrix.probes.empty()) {
    // No reference run: take the order from the first column that ran.
    for (const auto& column : matrix.columns) {
      if (column.values.empty()) continue;
      for (const auto& [probe, value] : column.values)
        matrix.probes.push_back(probe);
      break;
    }
  }
  return matrix;
}

ProbeCell probe_cell(const ProbeMatrix& matrix, std::size_t column_index,
                     const std::string& probe) {
  const ProbeColumn& native = matrix.columns.front();
  // Without QEMU, hvm is the best reference there is.
  const std::size_t reference_index =
      native.unavailable.empty() || matrix.columns.size() < 2 ? 0 : 1;
  const ProbeColumn& reference = matrix.columns[reference_index];
  const ProbeColumn& column = matrix.columns.at(column_index);
  ProbeCell cell;
  const std::optional<std::string> vmm_value = vmm_defined_value(probe);
  if (vmm_value) {
    cell.expected = *vmm_value;
  } else if (auto expected = reference.values.find(probe); expected != reference.values.end()) {
    cell.expected = expected->second;
  }
  if (!column.unavailable.empty()) {
    cell.verdict = ProbeVerdict::NotRun;
    cell.note = column.unavailable;
    return cell;
  }
  if (auto value = column.values.find(probe); value != column.values.end()) {
    cell.value = value->second;
    const bool is_reference = column_index == (vmm_value ? 0 : reference_index);
    cell.verdict = is_reference                                            ? ProbeVerdict::Reference
                   : !cell.expected.empty() && cell.value == cell.expected ? ProbeVerdict::Matches
                                                                           : ProbeVerdict::Diverges;
    return cell;
  }
  if (auto note = column.notes.find(probe); note != column.notes.end()) {
    cell.verdict = ProbeVerdict::NotApplicable;
    cell.note = note->second;
    return cell;
  }
  cell.verdict = ProbeVerdict::Missing;
  return cell;
}

void print_probe_matrix(const ProbeMatrix& matrix, std::ostream& out) {
  const ProbeColumn& native = matrix.columns.front();
  std::size_t width = 14;
  for (const auto& column : matrix.columns) {
    for (const auto& [probe, value] : column.values)
      width = std::max(width, value.size() + 2);
  }
  char cell[256];
  std::snprintf(cell, sizeof cell, "%-16s", "probe");
  out << cell;
  for (const auto& column : matrix.columns) {
    std::snprintf(cell, sizeof cell, "  %-*s", static_cast<int>(width), column.name.c_str());
    out << cell;
  }
  out << "  UMIP\n";
  std::size_t divergences = 0, closed_by_umip = 0;
  std::map<std::string, std::size_t> divergences_by_column;
  for (const auto& probe : matrix.probes) {
    std::snprintf(cell, sizeof cell, "%-16s", probe.c_str());
    out << cell;
    for (std::size_t index = 0; index < matrix.columns.size(); ++index) {
      const ProbeColumn& column = matrix.columns[index];
      const ProbeCell judged = probe_cell(matrix, index, probe);
      std::string text;
      switch (judged.verdict) {
        case ProbeVerdict::NotRun:
          text = "-";
          break;
        case ProbeVerdict::Reference:
          text = judged.value;
          break;
        case ProbeVerdict::Matches:
          text = judged.value + " =";
          break;
        case ProbeVerdict::Diverges:
          text = judged.value + " X";
          ++divergences;
          ++divergences_by_column[column.name];
          if (column.name == "full" && umip_covers(probe)) ++closed_by_umip;
          break;
        case ProbeVerdict::NotApplicable:
          text = "n/a";
          break;
        case ProbeVerdict::Missing:
          text = "missing";
          break;
      }
      std::snprintf(cell, sizeof cell, "  %-*s", static_cast<int>(width), text.c_str());
      out << cell;
    }
    out << "  " << (umip_covers(probe) ? "closes" : "-") << "\n";
  }
  out << "\n= matches the native answer; X diverges (the guest kernel, deprivileged, sees the\n"
         "monitor's state: the x86 holes). UMIP: CR4.UMIP makes the instruction fault at CPL3,\n"
         "so the monitor can emulate it (--umip); the other holes stay open.\n";
  out << divergences << " divergent cells; " << closed_by_umip
      << " of full's divergences are ones UMIP closes.\n";
  for (const auto& column : matrix.columns) {
    if (column.name.rfind("bt", 0) != 0 || !column.unavailable.empty()) continue;
    out << column.name << ": " << divergences_by_column[column.name]
        << " divergent cells (the translator rewrites every sensitive instruction of the "
           "kernel).\n";
  }
  out << "cpuid-*: compared with the leaves vmlab's VMM published (" << VMLAB_CPUID_SIGNATURE
      << "), not with the native machine's own. CPUID intercepted at CPL3 on this host: "
      << matrix.cpuid_interception_line << ".\n";
  for (const auto& column : matrix.columns) {
    if (column.name != "full" && column.name != "para") continue;
    const auto saw = saw_vmm_cpuid(column);
    if (!saw) continue;
    out << column.name << "'s kernel at CPL3 saw " << (*saw ? "the VMM's" : "the host's")
        << " CPUID leaves";
    const bool predicted = matrix.cpuid_at_user_level == CpuidAtUserLevel::Intercepted;
    if (matrix.cpuid_at_user_level != CpuidAtUserLevel::Unknown && *saw != predicted) {
      out << ", which the platform check did not predict (please report it with `vmlab info`)";
    }
    out << (*saw ? "" : ": a deprivileged kernel cannot trust cpuid here") << ".\n";
  }
  for (const auto& column : matrix.columns) {
    if (!column.unavailable.empty())
      out << column.name << ": not run: " << column.unavailable << "\n";
    for (const auto& [probe, note] : column.notes) {
      out << column.name << " " << probe << ": " << note << "\n";
    }
    for (const auto& [probe, how] : column.substitutes) {
      out << column.name << " " << probe << ": not executed; instead " << how << "\n";
    }
  }
  if (!native.unavailable.empty()) out << "(no native column: hvm is the reference)\n";
  out << matrix.platform_line << "\n";
}

}  // namespace vmlab
