// vmlab's command line (DESIGN.md section 8), decoded, then dispatched:
// parse_command_line turns the arguments, with one CLI11 App that has a
// subcommand per command, into the typed command they ask for, its options
// already checked; dispatch runs it. Parsing opens nothing and starts no VM,
// so every usage error is found, and tested, without /dev/kvm.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "vmlab/compare.hpp"
#include "vmlab/measure/operations.hpp"
#include "vmlab/result.hpp"
#include "vmlab/runner.hpp"

namespace vmlab::cli {

// `vmlab run`: one guest run and its summary.
struct RunCommand {
  RunOptions options;  // check_run_options accepted them
  bool quiet = false;  // do not echo the guest console
};

// `vmlab compare`: the workloads in every configuration, side by side.
struct CompareCommand {
  CompareOptions options;  // check_compare_options accepted them
  std::string json_path;   // empty: no JSON
};

// `vmlab report`: the per-operation suite under every technique, as a
// Markdown report with SVG charts in a folder.
struct ReportCommand {
  measure::MeasureOptions options;  // check_measure_options accepted them
  std::string output_folder = "vmlab-report";
  std::string input_path;  // a measurements.json to report instead of running
};

// `vmlab scorecard`: every technique against Popek and Goldberg's three
// requirements, measured (or read from a scorecard's JSON).
struct ScorecardCommand {
  std::vector<std::string> techniques;  // empty: all (measure::scorecard_techniques)
  std::string json_path;                // empty: no JSON
  std::string input_path;               // a scorecard JSON to score instead of measuring
};

// `vmlab simulate TRACE --profile NAME...`: a recorded run under other
// platforms' costs and features.
struct SimulateCommand {
  std::string trace_path;
  std::vector<std::string> profiles;  // names or files; empty: every profile in bench/profiles
  std::string json_path;
  // The recording machine's calibrated profile: empty finds it by the
  // trace's platform line; "none" uses none.
  std::string host_profile;
};

// `vmlab calibrate`: this machine's costs as a profile, then validated.
struct CalibrateCommand {
  std::string output_path;              // empty: NAME.json in the current folder
  std::vector<std::string> techniques;  // empty: hvm, full, bt, para
  bool no_validate = false;
};

// `vmlab probe`: the x86 holes, mode by mode.
struct ProbeCommand {};

// `vmlab trace summary TRACE`.
struct TraceSummaryCommand {
  std::string trace_path;
};

enum class TraceFormat { Perfetto, Csv };

// `vmlab trace export --format F TRACE [-o OUTPUT]`.
struct TraceExportCommand {
  std::string trace_path;
  TraceFormat format = TraceFormat::Perfetto;
  std::string output_path;  // empty: standard output
};

// `vmlab info`: the platform.
struct InfoCommand {
  // --choices: the values run's and compare's options take, one per line,
  // for programs that drive vmlab (vmlab-viz's run dialogs).
  bool choices = false;
};

// `vmlab disk create PATH SIZE [--force]`.
struct DiskCreateCommand {
  std::string path;
  std::uint64_t size_bytes = 0;  // parse_disk_size accepted it
  bool force = false;            // replace an existing file
};

// `vmlab disk info PATH`.
struct DiskInfoCommand {
  std::string path;
};

// Text to print instead of running anything: a --help, `vmlab help`,
// --version, or the overview when no command was given.
struct HelpText {
  std::string text;
  // No command given: the text goes to standard error and vmlab exits with
  // exit_status::kUsage, as for any other usage error.
  bool usage_error = false;
};

using Command = std::variant<HelpText, RunCommand, CompareCommand, ReportCommand, ScorecardCommand,
                             SimulateCommand, CalibrateCommand, ProbeCommand, TraceSummaryCommand,
                             TraceExportCommand, InfoCommand, DiskCreateCommand, DiskInfoCommand>;

// The command `arguments` (argv without argv[0]) ask for. An Error is a usage
// error (exit_status::kUsage): one line that names the problem, and the
// option or argument at fault, and ends by pointing to the command's --help.
// Its kind is CliError::kUsage (the command line's shape), kInvalidValue or
// kConflictingOptions.
Result<Command> parse_command_line(const std::vector<std::string>& arguments);

// Runs a parsed command and returns vmlab's exit status (runner.hpp).
int dispatch(const Command& command);

// What `vmlab` does with its arguments: parse, report a usage error on
// standard error, or execute.
int run_command_line(const std::vector<std::string>& arguments);

}  // namespace vmlab::cli
