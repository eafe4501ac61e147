// `vmlab trace summary|export`: what a `vmlab run --trace` file holds.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "cli11_options.hpp"
#include "commands.hpp"
#include "vmlab/trace.hpp"
#include "vmlab/viz/aggregates.hpp"

namespace vmlab::cli {

namespace {

constexpr Choice<TraceFormat> kTraceFormats[] = {
    {"perfetto", TraceFormat::Perfetto,
     "Chrome/Perfetto JSON: open it at ui.perfetto.dev or chrome://tracing"},
    {"csv", TraceFormat::Csv, "one row per event"},
};

constexpr const char* kTraceOperand = "a file written by `vmlab run --trace`";

}  // namespace

Subcommand add_trace_command(CLI::App& vmlab) {
  CLI::App* trace = add_command(vmlab, "trace",
                                "summarize a trace, or export it for Perfetto or as CSV\n"
                                "TRACE is a file written by `vmlab run --trace`.");

  CLI::App* summary = add_command(
      *trace, "summary",
      "counts by kind and reason, time per privilege level, the guest RIPs that cost most\n"
      "Prints the counts and VMM time by kind and reason, the time by privilege level, and the "
      "guest RIPs whose exits cost the VMM most.");
  auto summarize_command = std::make_shared<TraceSummaryCommand>();
  add_operand(*summary, "TRACE", summarize_command->trace_path, kTraceOperand);

  CLI::App* exporter = add_command(
      *trace, "export",
      "write the trace as Chrome/Perfetto JSON or as CSV\n"
      "Writes the trace in another format, to OUTPUT or, without -o, to standard output. "
      "Perfetto shows one track per privilege level, each exit a slice on the vmm track, guest "
      "execution between exits a slice on the level the guest exited from, interrupt "
      "injections as instants, and a counter track of VM exits.");
  auto export_command = std::make_shared<TraceExportCommand>();
  add_choice_option(*exporter, "--format", export_command->format,
                    std::span<const Choice<TraceFormat>>(kTraceFormats), "the format:")
      ->required();
  add_operand(*exporter, "TRACE", export_command->trace_path, kTraceOperand);
  exporter
      ->add_option("-o", export_command->output_path,
                   wrap("write the export to OUTPUT (made when the export is complete; an "
                        "existing OUTPUT is replaced only if it is empty or something vmlab "
                        "wrote, and never if it is TRACE)"))
      ->type_name("OUTPUT");

  return command_of_actions(
      trace, {parsed_into(summary, summarize_command), parsed_into(exporter, export_command)});
}

int execute(const TraceSummaryCommand& command) {
  // The visualizer's engine (STYLE.md 8): the same figures its views show.
  auto model = viz::TraceModel::load_file(command.trace_path);
  if (!model) {
    report_error(model.error().message);
    return exit_status::kUnavailable;
  }
  viz::print_summary(*model, viz::aggregate(*model), std::cout);
  return 0;
}

int execute(const TraceExportCommand& command) {
  // The export never replaces its own input, a disk image, or anything else
  // vmlab did not write.
  std::optional<OutputFile> file;
  if (!command.output_path.empty()) {
    auto created = OutputFile::create(command.output_path, "-o", OutputKind::Report,
                                      {{"the trace file", command.trace_path}});
    if (!created) {
      report_error(created.error().message);
      return exit_status::kUsage;
    }
    file.emplace(std::move(*created));
  }
  auto trace = read_trace_file(command.trace_path);
  if (!trace) {
    report_error(trace.error().message);
    return exit_status::kUnavailable;
  }
  if (trace->truncated()) report_error("warning: " + truncation_message(*trace));
  std::ostream& out = file ? file->stream() : std::cout;
  switch (command.format) {
    case TraceFormat::Perfetto:
      export_perfetto(*trace, out);
      break;
    case TraceFormat::Csv:
      export_csv(*trace, out);
      break;
  }
  if (file) {
    if (auto committed = file->commit(); !committed) {
      report_error(committed.error().message);
      return exit_status::kOutputError;
    }
    std::fprintf(stderr, "%zu events exported to %s\n", trace->events.size(),
                 command.output_path.c_str());
  } else if (!out.flush()) {
    report_error("writing the export to standard output failed");
    return exit_status::kOutputError;
  }
  return 0;
}

}  // namespace vmlab::cli
