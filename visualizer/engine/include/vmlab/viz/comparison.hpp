// A `vmlab compare --json` file read back (written by cli/src/compare.cpp,
// write_comparison_json): one row per workload and configuration, for the
// visualizer's comparison view. Checked as it is read: an error names the
// row and field at fault ("rows[3].share_percent.vmm: ...").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vmlab/result.hpp"

namespace vmlab::viz {

enum class ComparisonError {
  kUnreadable = 1,  // the file could not be opened or read (system_errno)
  kMalformedJson,   // not JSON at all; the message says where
  kMissingField,    // a field the format has is absent
  kWrongType,       // a field of another type (a string for a number...)
  kInvalidValue,    // the right type, a value the format does not allow
};
constexpr const char* error_domain(ComparisonError) {
  return "comparison";
}
using vmlab::make_error_code;

// Percent of the run's wall time (`share_percent`).
struct ComparisonShares {
  double guest = 0;
  // The guest's time split by the level it was at when it exited: an
  // attribution in hvm, which does not see kernel/user switches.
  double guest_user_at_exit = 0;
  double guest_kernel_at_exit = 0;
  double monitor = 0;
  double vmm = 0;
  double halted = 0;
};

// bt's translator and translation cache at the end of the run.
struct TranslationFigures {
  std::uint64_t blocks = 0;
  std::uint64_t guest_instructions = 0;
  std::uint64_t tc_bytes = 0;
  std::uint64_t branch_exits = 0;
  std::uint64_t chained = 0;
  std::uint64_t lookup_misses = 0;
  std::uint64_t blocks_invalidated = 0;
  std::uint64_t flushes = 0;
  std::vector<std::pair<std::string, std::uint64_t>> call_outs;  // by mnemonic, as in the file
};

struct ComparisonRow {
  std::string workload;
  std::uint64_t n = 0;
  std::string cpu;
  std::string irqchip;     // "vmm" or "kernel"
  std::string disk_model;  // empty: no disk
  bool ok = false;
  bool emulator = false;  // a QEMU TCG row ("emulator": true): no VM, no exits, no shares
  std::string failure;    // why the run failed (ok false); the figures below are then 0
  std::uint64_t cycles = 0;
  double cycles_per_op = 0;
  double vm_exits_per_op = 0;
  double kvm_exits_per_op = 0;
  double monitor_traps_per_op = 0;
  double hypercalls_per_op = 0;
  ComparisonShares shares;
  std::optional<double> relative_to_hvm;  // none where there was no hvm row (null)
  std::optional<TranslationFigures> translation;
  std::string result;  // the guest's result line
};

struct ComparisonResults {
  std::string platform_line;
  std::vector<ComparisonRow> rows;
  // A `vmlab simulate --json` file read as a comparison: its recorded run
  // and each platform's prediction are the rows (cpu "measured full",
  // "vtx-2006"); relative_to_hvm is then each row's time against the
  // measured run's, cycles_per_op the whole run's nanoseconds over n, VM exits the
  // events that are exits on that platform, monitor traps a translator's.
  bool simulated = false;
  std::string simulated_trace;  // the trace the simulation replayed
  // What relative_to_hvm is relative to: "hvm", or "measured" (simulated).
  std::string reference() const { return simulated ? "measured" : "hvm"; }
};

// A `vmlab compare --json` file, or a `vmlab simulate --json` one (format
// "vmlab-simulation": simulated set).
Result<ComparisonResults> parse_comparison_json(std::string_view text);
Result<ComparisonResults> read_comparison_file(const std::string& path);

}  // namespace vmlab::viz

VMLAB_ERROR_KINDS(vmlab::viz::ComparisonError);
