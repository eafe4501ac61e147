// `vmlab report`: the per-operation suite (bench/measure) run, or read from
// its JSON, and written as a Markdown report with SVG charts into a folder.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>

#include "commands.hpp"
#include "vmlab/measure/report.hpp"

namespace vmlab::cli {

namespace {

// "full,bt" -> the labels, each one the suite has.
Result<std::vector<std::string>> parse_technique_list(std::string_view text) {
  std::vector<std::string> labels;
  for (const auto item : split_list(text)) {
    if (measure::find_technique(item) == nullptr) {
      return Error{CliError::kInvalidValue,
                   single_quoted(item) + " is not one of " + measure::technique_list()};
    }
    labels.emplace_back(item);
  }
  if (labels.empty()) return Error{CliError::kInvalidValue, "the list is empty"};
  return labels;
}

Result<std::vector<std::string>> parse_operation_list(std::string_view text) {
  std::vector<std::string> names;
  for (const auto item : split_list(text)) {
    if (measure::find_operation(item) == nullptr) {
      return Error{CliError::kInvalidValue,
                   single_quoted(item) + " is not one of " + measure::operation_list()};
    }
    names.emplace_back(item);
  }
  if (names.empty()) return Error{CliError::kInvalidValue, "the list is empty"};
  return names;
}

Result<int> parse_repetitions(std::string_view text) {
  int value = 0;
  for (char digit : text) {
    if (digit < '0' || digit > '9' || value > 1000) {
      return Error{CliError::kInvalidValue, single_quoted(text) + " is not a count from 1 to 100"};
    }
    value = value * 10 + (digit - '0');
  }
  if (text.empty() || value < 1 || value > 100) {
    return Error{CliError::kInvalidValue, single_quoted(text) + " is not a count from 1 to 100"};
  }
  return value;
}

// The folder, made if it is not there (its parent must be); whether it was.
Result<bool> prepare_folder(const std::string& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) == 0) {
    if (!S_ISDIR(status.st_mode)) {
      return Error{CliError::kOutputNotAFile,
                   "--output " + single_quoted(path) + ": exists and is not a folder"};
    }
    return false;
  }
  if (::mkdir(path.c_str(), 0777) != 0) {
    return Error{
        CliError::kOutputUnwritable,
        "--output " + single_quoted(path) + ": cannot make the folder: " + std::strerror(errno)};
  }
  return true;
}

}  // namespace

TerminalProgress terminal_progress() {
  const bool interactive = isatty(STDERR_FILENO) != 0;
  const auto started = std::chrono::steady_clock::now();
  return [interactive, started](std::size_t done, std::size_t total, const std::string& what) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (done == total) {
      if (interactive) std::fputs("\r\033[K", stderr);
      std::fprintf(stderr, "measured %zu runs in %.0f s\n", total, seconds);
      return;
    }
    const double left =
        done == 0 ? 0 : seconds / static_cast<double>(done) * static_cast<double>(total - done);
    if (interactive) {
      std::fprintf(stderr, "\r\033[K[%zu/%zu] %s (%.0f s, about %.0f s left)", done + 1, total,
                   what.c_str(), seconds, left);
    } else if (done % 20 == 0) {
      std::fprintf(stderr, "[%zu/%zu] %s (%.0f s)\n", done + 1, total, what.c_str(), seconds);
    }
  };
}

Subcommand add_report_command(CLI::App& vmlab) {
  CLI::App* report = add_command(
      vmlab, "report",
      "measure every operation under every technique and write a report with charts\n"
      "Runs the per-operation suite (syscall, in, cr8wr, call/ret, pgfault, divzero, ptemod as "
      "Adams and Agesen measured them, then out, cli/sti, hypercall, interrupt, kernel compute "
      "and boot) under hvm, hvm+kirq, full, bt, para and QEMU TCG, each figure the median of "
      "interleaved repetitions, and writes report.md (their published figures beside vmlab's, "
      "a relative-performance chart after the Xen paper's Figure 3, each operation's time by "
      "level), its SVG charts and measurements.json into the --output folder. About two "
      "minutes on a kvm_pvm host; a progress line shows each run.");
  auto command = std::make_shared<ReportCommand>();
  report
      ->add_option("-o,--output", command->output_folder,
                   wrap("the folder to write into (default vmlab-report; made if missing; a "
                        "file in it is replaced only if vmlab wrote it)"))
      ->type_name("DIR");
  report
      ->add_option("--input", command->input_path,
                   wrap("report a measurements.json an earlier report (or the benchmark "
                        "suite) wrote, instead of measuring"))
      ->type_name("FILE");
  add_parsed_option(
      *report, "--cpu", command->options.techniques, parse_technique_list, "LIST",
      "techniques to measure, any of " + measure::technique_list() + " (default: all)");
  add_parsed_option(
      *report, "--operations", command->options.operations, parse_operation_list, "LIST",
      "operations to measure, any of " + measure::operation_list() + " (default: all)");
  add_parsed_option(*report, "--repetitions", command->options.repetitions, parse_repetitions, "N",
                    "interleaved repetitions of every run, 1 to 100 (default " +
                        std::to_string(measure::MeasureOptions{}.repetitions) + ")");
  return {report, [report, command]() -> Result<Command> {
            if (auto extra = refuse_unexpected_arguments(*report); !extra) return extra.error();
            if (!command->input_path.empty() &&
                (!command->options.techniques.empty() || !command->options.operations.empty())) {
              return Error{CliError::kConflictingOptions,
                           "--input reports a file as it is: --cpu and --operations measure"};
            }
            return Command{*command};
          }};
}

int execute(const ReportCommand& command) {
  std::optional<measure::Measurements> measurements;
  if (!command.input_path.empty()) {
    auto read = measure::read_measurements_file(command.input_path);
    if (!read) {
      report_error(read.error().message);
      return exit_status::kUnavailable;
    }
    measurements = std::move(*read);
  }
  auto made = prepare_folder(command.output_folder);
  if (!made) {
    report_error(made.error().message);
    return exit_status::kUsage;
  }
  // Every output checked before the long part: a folder holding someone's
  // report.md costs a message, not the measurements.
  std::vector<OutputFile> outputs;
  for (const auto& name : measure::report_file_names()) {
    ProtectedFile input{"--input", command.input_path};
    auto output =
        OutputFile::create(command.output_folder + "/" + name, "--output", OutputKind::Report,
                           command.input_path.empty() ? std::vector<ProtectedFile>{}
                                                      : std::vector<ProtectedFile>{input});
    if (!output) {
      if (*made) ::rmdir(command.output_folder.c_str());
      report_error(output.error().message);
      return exit_status::kUsage;
    }
    outputs.push_back(std::move(*output));
  }
  if (!measurements) {
    measure::MeasureOptions options = command.options;
    options.progress = terminal_progress();
    auto measured = measure::measure(options);
    if (!measured) {
      outputs.clear();
      if (*made) ::rmdir(command.output_folder.c_str());
      report_error(measured.error().message);
      return exit_status::kUnavailable;
    }
    measurements = std::move(*measured);
  }
  const auto files = measure::make_report(*measurements);
  for (std::size_t index = 0; index < files.size(); ++index) {
    outputs[index].stream() << files[index].content;
    if (auto committed = outputs[index].commit(); !committed) {
      report_error(committed.error().message);
      return exit_status::kOutputError;
    }
  }
  std::printf("report written to %s/report.md (charts beside it)\n%s\n",
              command.output_folder.c_str(), measurements->platform_line.c_str());
  return 0;
}

}  // namespace vmlab::cli
