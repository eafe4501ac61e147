// `vmlab scorecard`: every technique against Popek and Goldberg's three
// requirements, measured on this machine, or scored from a scorecard's JSON.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "vmlab/measure/scorecard.hpp"

namespace vmlab::cli {

namespace {

Result<std::vector<std::string>> parse_scorecard_techniques(std::string_view text) {
  const auto known = measure::scorecard_techniques();
  std::vector<std::string> techniques;
  for (const auto item : split_list(text)) {
    if (std::find(known.begin(), known.end(), item) == known.end()) {
      return Error{CliError::kInvalidValue,
                   single_quoted(item) + " is not one of " + measure::scorecard_technique_list()};
    }
    if (std::find(techniques.begin(), techniques.end(), item) == techniques.end()) {
      techniques.emplace_back(item);
    }
  }
  if (techniques.empty()) return Error{CliError::kInvalidValue, "the list is empty"};
  return techniques;
}

}  // namespace

Subcommand add_scorecard_command(CLI::App& vmlab) {
  CLI::App* scorecard = add_command(
      vmlab, "scorecard",
      "score every technique against Popek and Goldberg's three requirements, measured here\n"
      "Equivalence: the probe answers and workload result lines identical to the native "
      "machine's (QEMU). Efficiency: the share of the guest's instructions the CPU ran "
      "directly, from a single-stepped count against what the monitor, the translator or "
      "KVM's emulator handled. Safety: the hostile guest's attempts and the passthrough disk's "
      "DMA attacks contained. One table, a line per cell saying what was counted. About a "
      "minute on a kvm_pvm host; a progress line shows each run.");
  auto command = std::make_shared<ScorecardCommand>();
  add_parsed_option(*scorecard, "--cpu", command->techniques, parse_scorecard_techniques, "LIST",
                    "techniques to score, any of " + measure::scorecard_technique_list() +
                        " (default: all; QEMU runs as the native reference whatever the list)");
  scorecard
      ->add_option("--json", command->json_path,
                   wrap("also write the evidence and the scores as JSON (checked before the "
                        "first run; an existing FILE is replaced only if it is empty or "
                        "something vmlab wrote)"))
      ->type_name("FILE");
  scorecard
      ->add_option("--input", command->input_path,
                   wrap("score a JSON file an earlier `vmlab scorecard --json` wrote, instead "
                        "of measuring"))
      ->type_name("FILE");
  return {scorecard, [scorecard, command]() -> Result<Command> {
            if (auto extra = refuse_unexpected_arguments(*scorecard); !extra) {
              return extra.error();
            }
            if (!command->input_path.empty() && !command->techniques.empty()) {
              return Error{CliError::kConflictingOptions,
                           "--input scores a file as it is: --cpu measures"};
            }
            return Command{*command};
          }};
}

int execute(const ScorecardCommand& command) {
  std::optional<OutputFile> json;
  if (!command.json_path.empty()) {
    std::vector<ProtectedFile> inputs;
    if (!command.input_path.empty()) inputs.push_back({"--input", command.input_path});
    auto created = OutputFile::create(command.json_path, "--json", OutputKind::Report, inputs);
    if (!created) {
      report_error(created.error().message);
      return exit_status::kUsage;
    }
    json.emplace(std::move(*created));
  }
  std::optional<measure::ScorecardEvidence> evidence;
  if (!command.input_path.empty()) {
    auto read = measure::read_scorecard_file(command.input_path);
    if (!read) {
      report_error(read.error().message);
      return exit_status::kUnavailable;
    }
    evidence = std::move(*read);
  } else {
    measure::ScorecardOptions options;
    options.techniques = command.techniques;
    options.progress = terminal_progress();
    auto measured = measure::measure_scorecard(options);
    if (!measured) {
      report_error(measured.error().message);
      return exit_status::kUnavailable;
    }
    evidence = std::move(*measured);
  }
  measure::print_scorecard(measure::score(*evidence), std::cout);
  std::cout.flush();
  if (json) {
    measure::write_scorecard_json(*evidence, json->stream());
    if (auto committed = json->commit(); !committed) {
      report_error(committed.error().message);
      return exit_status::kOutputError;
    }
    std::printf("scorecard written to %s\n", command.json_path.c_str());
  }
  return 0;
}

}  // namespace vmlab::cli
