// `vmlab probe`: the equivalence matrix of the x86 holes. The guest's
// `probes` workload runs the sensitive-but-unprivileged instructions in kernel
// mode on the reference machine (QEMU) and in each mode; the matrix shows
// what each saw, whether it matches the native answer, and which divergences
// CR4.UMIP closes.
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/cli_error.hpp"
#include "vmlab/platform.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

struct ProbeColumn {
  std::string name;                           // "native (QEMU)", "hvm", "full", "full+umip"
  std::string unavailable;                    // why the column could not run; empty if it ran
  std::map<std::string, std::string> values;  // probe name -> what the guest saw
  std::map<std::string, std::string> notes;   // probe name -> why it has no value
  // para: probe name -> what the paravirtualized kernel does instead of the
  // instruction (its VMLAB-PROBE-PV lines).
  std::map<std::string, std::string> substitutes;
};

struct ProbeMatrix {
  std::vector<std::string> probes;   // in the order the guest ran them
  std::vector<ProbeColumn> columns;  // the first is the native reference
  std::string platform_line;
  // Who answers cpuid at CPL3 on this host, as the platform says
  // (PlatformInfo::cpuid_at_user_level), and the sentence that says why.
  CpuidAtUserLevel cpuid_at_user_level = CpuidAtUserLevel::Unknown;
  std::string cpuid_interception_line;
};

// The probes whose right answer is what vmlab's VMM published, not what the
// native machine (QEMU, with leaves of its own) says: the cpuid rows
// (abi/vmlab/cpuid.h). nullopt for every other probe.
std::optional<std::string> vmm_defined_value(const std::string& probe);

// One cell of the matrix judged against the right answer.
enum class ProbeVerdict {
  Reference,  // the column the others are compared with, for this probe
  Matches,
  Diverges,
  NotApplicable,  // the column has a note instead of a value
  Missing,        // the column ran and printed no value for the probe
  NotRun,         // the column could not run
};

struct ProbeCell {
  ProbeVerdict verdict = ProbeVerdict::Missing;
  std::string value;     // what the column saw (empty when it saw nothing)
  std::string expected;  // the right answer (empty when there is none)
  std::string note;      // NotApplicable: the column's note; NotRun: why it did not run
};

// The reference is the native column, or hvm's when QEMU could not run;
// the cpuid rows are judged against vmm_defined_value instead, and there
// the native column is the one not judged. What print_probe_matrix shows,
// and what `vmlab scorecard` counts.
ProbeCell probe_cell(const ProbeMatrix& matrix, std::size_t column, const std::string& probe);

// For a deprivileged column (full, para): whether its kernel saw the VMM's
// CPUID leaves (true), the host's (false), or ran no cpuid probe (nullopt).
std::optional<bool> saw_vmm_cpuid(const ProbeColumn& column);

// The probes CR4.UMIP makes fault at CPL > 0 (Intel SDM vol. 3A, 2.5).
bool umip_covers(const std::string& probe);

// "VMLAB-PROBE name value" -> {name, value}
std::map<std::string, std::string> parse_probe_lines(const std::vector<std::string>& lines,
                                                     std::vector<std::string>* order = nullptr,
                                                     std::string_view prefix = "VMLAB-PROBE ");

// A column that cannot run says why; the matrix fails only when hvm cannot
// run the probes, with the run's error (its kind kept) or kWorkloadFailed.
Result<ProbeMatrix> run_probe_matrix();
void print_probe_matrix(const ProbeMatrix& matrix, std::ostream& out);

}  // namespace vmlab
