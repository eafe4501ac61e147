// The per-operation measurements under every technique (issue: "Measured side
// by side"): what `vmlab report`, `vmlab scorecard` and the Google Benchmark
// suite bench/operations_bench.cpp share. Each operation is a guest workload
// (guest/README.md); each cell is one operation under one technique, run at
// two counts in every repetition so that the boot and the warm-up cancel out
// of the per-operation counts (the marginal: the difference between the two
// runs over the difference of their counts). The repetitions are
// interleaved, their order rotating, and every figure keeps all its samples:
// the median and the spread are taken where they are shown.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/result.hpp"

namespace vmlab::measure {

enum class MeasureError {
  kUnknownName = 1,  // an operation or technique the suite does not have
  kUnreadable,       // a results file that could not be read (system_errno)
  kMalformed,        // not the suite's JSON; the message names the field
};
constexpr const char* error_domain(MeasureError) {
  return "measure";
}
using vmlab::make_error_code;

struct Operation {
  std::string_view name;      // "syscall", "in", ...: the report's column
  std::string_view workload;  // the guest workload that does it N times
  std::uint64_t small_count;  // the two counts of every repetition
  std::uint64_t large_count;
  std::string_view what;  // one line for the report
  // Where it makes no sense: empty, "para" (only there), or "not para".
  std::string_view only;
};

// Adams and Agesen's seven first, in their order, then vmlab's own.
std::span<const Operation> operations();
const Operation* find_operation(std::string_view name);

struct Technique {
  std::string_view label;  // "hvm", "hvm+kirq", "full", "bt", "para", "qemu-tcg"
  std::string_view cpu;    // the --cpu value, or "qemu-tcg"
  bool kernel_irqchip;     // --irqchip kernel
  std::string_view what;
};
std::span<const Technique> techniques();
const Technique* find_technique(std::string_view label);
// "syscall, in, ..." and "hvm, hvm+kirq, ...": the choices, for messages and help.
std::string operation_list();
std::string technique_list();
inline constexpr std::string_view kQemuTcgLabel = "qemu-tcg";

// Whether `operation` is run under `technique`, and why not when it is not.
std::optional<std::string> not_applicable(const Operation& operation, const Technique& technique);

// One figure's samples, one per repetition.
struct Samples {
  std::vector<double> values;
  double median() const;  // of an even count, the mean of the middle two; 0 when empty
  double minimum() const;
  double maximum() const;
  bool empty() const { return values.empty(); }
};

// The figures of a cell. Per operation: cycles and ns from the large run's
// own rdtsc (the guest measures only its loop); the counts and times by level
// are marginal.
enum class Figure {
  CyclesPerOp,
  NsPerOp,
  VmmEntriesPerOp,    // VM exits the VMM handled
  KvmExitsPerOp,      // every exit, KVM's own included (vCPU stats)
  MonitorTrapsPerOp,  // software techniques
  HypercallsPerOp,    // para
  KvmEmulatedPerOp,   // instructions KVM's emulator ran (insn_emulation)
  GuestUserNsPerOp,   // wall time by level (the recorder's attribution)
  GuestKernelNsPerOp,
  MonitorNsPerOp,
  VmmNsPerOp,
  HaltedNsPerOp,
  Count,
};
std::string_view figure_key(Figure figure);  // its JSON name, "cycles_per_op"
std::optional<Figure> figure_of_key(std::string_view key);

enum class CellStatus { Measured, Failed, NotApplicable, NotRun };
std::string_view cell_status_name(CellStatus status);

struct Cell {
  std::string operation;
  std::string technique;
  CellStatus status = CellStatus::NotRun;
  std::string reason;  // why it failed, is not applicable or was not run
  std::map<Figure, Samples> figures;
  const Samples* figure(Figure which) const;  // null when the cell has none
};

// Boot: from run_guest's start to the first KVM_RUN and to the result line,
// the shortest workload (cli-sti n=1), milliseconds.
struct BootCell {
  std::string technique;
  CellStatus status = CellStatus::NotRun;
  std::string reason;
  Samples to_first_entry_ms;
  Samples to_result_line_ms;
};

struct Measurements {
  std::string platform_line;
  std::string date;  // UTC, ISO 8601
  std::uint32_t tsc_khz = 0;
  int repetitions = 0;
  std::vector<std::string> technique_labels;  // those asked for, in order
  std::vector<std::string> operation_names;
  std::vector<Cell> cells;
  std::vector<BootCell> boot;
  const Cell* cell(std::string_view operation, std::string_view technique) const;
  const BootCell* boot_of(std::string_view technique) const;
};

struct MeasureOptions {
  std::vector<std::string> techniques;  // labels; empty: every one
  std::vector<std::string> operations;  // names; empty: every one
  int repetitions = 5;
  // Where the rotation of the runs' order starts (a caller that measures one
  // repetition at a time, as the Google Benchmark suite does, counts it up).
  int first_repetition = 0;
  double timeout_seconds = 120;
  // Called before each run with (done, total, what is starting).
  std::function<void(std::size_t, std::size_t, const std::string&)> progress;
};

// The options' unknown names, before anything runs.
Status check_measure_options(const MeasureOptions& options);
// Runs every cell; a cell that fails is kept as failed, with why. Fails only
// when nothing can run (no /dev/kvm).
Result<Measurements> measure(const MeasureOptions& options);

// "2026-12-03T09:00:00Z": when a measurement was made, as its files say.
std::string utc_now();

// The suite's JSON ("vmlab-operations", version 1) and back; a file that is
// not one is an error naming the field.
void write_measurements_json(const Measurements& measurements, std::ostream& out);
Result<Measurements> parse_measurements_json(std::string_view text);
Result<Measurements> read_measurements_file(const std::string& path);

}  // namespace vmlab::measure

VMLAB_ERROR_KINDS(vmlab::measure::MeasureError);
