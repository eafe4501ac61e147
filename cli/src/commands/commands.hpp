// vmlab's commands, one file each (run.cpp, compare.cpp, probe.cpp,
// trace.cpp, info.cpp, disk.cpp). Each adds its subcommand to the one vmlab
// App (command_line.cpp), with options bound to its typed command, turns
// what CLI11 parsed into that command, and executes it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cli11_options.hpp"
#include "vmlab/command_line.hpp"

namespace vmlab::cli {

// A command's subcommand in the vmlab App, and what turns the parse into the
// command.
struct Subcommand {
  CLI::App* app = nullptr;
  // Called when the App parsed `app`: the command, its options checked
  // (check_run_options, check_compare_options, ...), or the usage error.
  std::function<Result<Command>()> finish;
};

// `command`, once nothing is left over on `app`'s command line.
Result<Command> finish_with(const CLI::App& app, Command command);

// A command (or action) whose options CLI11 stores in `parsed`: the command
// is `parsed` as the parse left it.
template <typename Parsed>
Subcommand parsed_into(CLI::App* app, std::shared_ptr<Parsed> parsed) {
  return {app, [app, parsed]() { return finish_with(*app, Command{*parsed}); }};
}

// A command that takes no options and no operands: `vmlab probe`, `vmlab info`.
template <typename Parsed>
Subcommand add_command_without_options(CLI::App& vmlab, const std::string& name,
                                       const std::string& description) {
  return parsed_into(add_command(vmlab, name, description), std::make_shared<Parsed>());
}

// A command made of `actions` (trace summary|export, disk create|info), its
// subcommands, added already: exactly one is parsed, and its command is the
// command's; its help lists them as actions.
Subcommand command_of_actions(CLI::App* command, std::vector<Subcommand> actions);

Subcommand add_run_command(CLI::App& vmlab);
Subcommand add_compare_command(CLI::App& vmlab);
Subcommand add_report_command(CLI::App& vmlab);
Subcommand add_scorecard_command(CLI::App& vmlab);
Subcommand add_simulate_command(CLI::App& vmlab);
Subcommand add_calibrate_command(CLI::App& vmlab);
Subcommand add_probe_command(CLI::App& vmlab);
Subcommand add_trace_command(CLI::App& vmlab);
Subcommand add_info_command(CLI::App& vmlab);
Subcommand add_disk_command(CLI::App& vmlab);

// Each returns vmlab's exit status (exit_status in runner.hpp).
int execute(const RunCommand& command);
int execute(const CompareCommand& command);
int execute(const ReportCommand& command);
int execute(const ScorecardCommand& command);
int execute(const SimulateCommand& command);
int execute(const CalibrateCommand& command);
int execute(const ProbeCommand& command);
int execute(const TraceSummaryCommand& command);
int execute(const TraceExportCommand& command);
int execute(const InfoCommand& command);
int execute(const DiskCreateCommand& command);
int execute(const DiskInfoCommand& command);

// A long command's progress on standard error, (done, total, what starts
// next): one line rewritten in place on a terminal, every 20th run
// otherwise, and "measured N runs in S s" when done == total.
using TerminalProgress = std::function<void(std::size_t, std::size_t, const std::string&)>;
TerminalProgress terminal_progress();

// "vmlab: MESSAGE" on standard error, for an error found while executing.
void report_error(const std::string& message);

}  // namespace vmlab::cli
