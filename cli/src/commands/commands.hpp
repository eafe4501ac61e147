// vmlab's commands, one file each (run.cpp, compare.cpp, probe.cpp,
// trace.cpp, info.cpp, disk.cpp). Each adds its subcommand to the one vmlab
// App (command_line.cpp), with options bound to its typed command, turns
// what CLI11 parsed into that command, and executes it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

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

Subcommand add_run_command(CLI::App& vmlab);
Subcommand add_compare_command(CLI::App& vmlab);
Subcommand add_probe_command(CLI::App& vmlab);
Subcommand add_trace_command(CLI::App& vmlab);
Subcommand add_info_command(CLI::App& vmlab);
Subcommand add_disk_command(CLI::App& vmlab);

// Each returns vmlab's exit status (exit_status in runner.hpp).
int execute(const RunCommand& command);
int execute(const CompareCommand& command);
int execute(const ProbeCommand& command);
int execute(const TraceSummaryCommand& command);
int execute(const TraceExportCommand& command);
int execute(const InfoCommand& command);
int execute(const DiskCreateCommand& command);
int execute(const DiskInfoCommand& command);

// "vmlab: MESSAGE" on standard error, for an error found while executing.
void report_error(const std::string& message);

}  // namespace vmlab::cli
