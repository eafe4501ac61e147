// `vmlab simulate TRACE --profile NAME...`: a recorded run replayed under
// other platforms' costs and features; `vmlab calibrate`: this machine's
// profile, and how well it predicts runs it was not fitted on.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "cli11_options.hpp"
#include "commands.hpp"
#include "vmlab/simulate/calibrate.hpp"
#include "vmlab/simulate/simulate.hpp"

namespace vmlab::cli {

namespace {

std::string profile_list() {
  std::string list;
  for (const auto& name : simulate::profile_names())
    list += (list.empty() ? "" : ", ") + name;
  return list.empty() ? "(none found)" : list;
}

Result<std::vector<std::string>> parse_calibration_techniques(std::string_view text) {
  std::vector<std::string> techniques;
  for (const auto item : split_list(text)) {
    if (item != "hvm" && item != "full" && item != "bt" && item != "para") {
      return Error{CliError::kInvalidValue,
                   single_quoted(item) + " is not one of hvm, full, bt, para"};
    }
    techniques.emplace_back(item);
  }
  if (techniques.empty()) return Error{CliError::kInvalidValue, "the list is empty"};
  return techniques;
}

}  // namespace

Subcommand add_simulate_command(CLI::App& vmlab) {
  CLI::App* simulate = add_command(
      vmlab, "simulate",
      "replay a recorded run under the costs and features of other virtualization hardware\n"
      "Classifies every event of TRACE (a `vmlab run --trace` file), decides what each becomes "
      "on each profile's platform (an exit, a translator's callout, or nothing: nested paging "
      "removes shadow-paging faults, posted interrupts remove injections) and prints the "
      "predicted time per level beside the measured run, with every class of event, its "
      "fate and its cost. Guest time is carried over as this machine ran it. A `full` run's "
      "trace shows every sensitive event.");
  auto command = std::make_shared<SimulateCommand>();
  add_operand(*simulate, "TRACE", command->trace_path, "a file written by `vmlab run --trace`");
  simulate
      ->add_option("--profile", command->profiles,
                   wrap("a profile's name, or a profile file's path; repeat it, or give a "
                        "comma-separated list (default: every profile in bench/profiles: " +
                        profile_list() + ")"))
      ->type_name("NAME")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  simulate
      ->add_option("--host-profile", command->host_profile,
                   wrap("the calibrated profile of the machine TRACE was recorded on, whose "
                        "in-guest cost of each event is taken out of the guest time the other "
                        "platforms carry over (default: the one in bench/profiles whose backend "
                        "and CPU the trace's platform line names; `none`: none)"))
      ->type_name("NAME");
  simulate
      ->add_option("--json", command->json_path,
                   wrap("also write the predictions as JSON (an existing FILE is replaced only "
                        "if it is empty or something vmlab wrote, never if it is TRACE)"))
      ->type_name("FILE");
  return parsed_into(simulate, command);
}

Subcommand add_calibrate_command(CLI::App& vmlab) {
  CLI::App* calibrate = add_command(
      vmlab, "calibrate",
      "measure this machine's cost of each kind of event and write it as a profile\n"
      "Records the benchmark workloads at two sizes under each technique, fits each class of "
      "event's cost in nanoseconds (non-negative least squares over the runs' VMM and monitor "
      "time) and writes the profile. Then replays `vmlab compare`'s workloads, recorded apart, "
      "under it, and prints each prediction's error. About half a minute on a kvm_pvm host; a "
      "progress line shows each run.");
  auto command = std::make_shared<CalibrateCommand>();
  calibrate
      ->add_option("-o,--output", command->output_path,
                   wrap("the profile file to write (default: NAME.json here, NAME from the "
                        "backend and CPU; replaced only if empty or written by vmlab)"))
      ->type_name("FILE");
  add_parsed_option(*calibrate, "--cpu", command->techniques, parse_calibration_techniques, "LIST",
                    "techniques to calibrate, any of hvm, full, bt, para (default: all)");
  calibrate->add_flag("--no-validate", command->no_validate,
                      wrap("write the profile without replaying compare's workloads under it"));
  return parsed_into(calibrate, command);
}

int execute(const SimulateCommand& command) {
  std::optional<OutputFile> json;
  if (!command.json_path.empty()) {
    auto created = OutputFile::create(command.json_path, "--json", OutputKind::Report,
                                      {{"the trace file", command.trace_path}});
    if (!created) {
      report_error(created.error().message);
      return exit_status::kUsage;
    }
    json.emplace(std::move(*created));
  }
  std::vector<simulate::Profile> profiles;
  const std::vector<std::string> names =
      command.profiles.empty() ? simulate::profile_names() : command.profiles;
  if (names.empty()) {
    report_error("no profile given and none in " + simulate::default_profile_directory());
    return exit_status::kUnavailable;
  }
  for (const auto& name : names) {
    auto profile = simulate::find_profile(name);
    if (!profile) {
      report_error("--profile: " + profile.error().message);
      return profile.error().kind == make_error_code(simulate::SimulateError::kUnknownProfile)
                 ? exit_status::kUsage
                 : exit_status::kUnavailable;
    }
    profiles.push_back(std::move(*profile));
  }
  auto trace = read_trace_file(command.trace_path);
  if (!trace) {
    report_error(trace.error().message);
    return exit_status::kUnavailable;
  }
  std::optional<simulate::Profile> host;
  if (command.host_profile.empty()) {
    host = simulate::find_host_profile(trace->platform_line);
  } else if (command.host_profile != "none") {
    auto found = simulate::find_profile(command.host_profile);
    if (!found) {
      report_error("--host-profile: " + found.error().message);
      return exit_status::kUsage;
    }
    if (found->kind != simulate::PlatformKind::Calibrated) {
      report_error("--host-profile: " + found->name +
                   " is not a calibrated profile (vmlab calibrate writes one)");
      return exit_status::kUsage;
    }
    host = std::move(*found);
  }
  auto simulation = simulate::simulate(*trace, profiles, host);
  if (!simulation) {
    report_error(command.trace_path + ": " + simulation.error().message);
    return exit_status::kUnavailable;
  }
  simulation->trace_path = command.trace_path;
  simulate::print_simulation(*simulation, std::cout);
  std::cout.flush();
  if (json) {
    simulate::write_simulation_json(*simulation, json->stream());
    if (auto committed = json->commit(); !committed) {
      report_error(committed.error().message);
      return exit_status::kOutputError;
    }
    std::printf("predictions written to %s\n", command.json_path.c_str());
  }
  return 0;
}

int execute(const CalibrateCommand& command) {
  simulate::CalibrateOptions options;
  options.techniques = command.techniques;
  options.progress = terminal_progress();
  // The output is checked before the long part, under the name it will have.
  std::optional<OutputFile> output;
  auto open_output = [&](const std::string& path) -> bool {
    auto created = OutputFile::create(path, "--output", OutputKind::Report);
    if (!created) {
      report_error(created.error().message);
      return false;
    }
    output.emplace(std::move(*created));
    return true;
  };
  if (!command.output_path.empty() && !open_output(command.output_path)) {
    return exit_status::kUsage;
  }
  auto profile = simulate::calibrate(options);
  if (!profile) {
    report_error(profile.error().message);
    return exit_status::kUnavailable;
  }
  if (!output && !open_output(profile->name + ".json")) return exit_status::kUsage;
  simulate::write_profile(*profile, output->stream());
  if (auto committed = output->commit(); !committed) {
    report_error(committed.error().message);
    return exit_status::kOutputError;
  }
  std::printf("profile %s written to %s\n", profile->name.c_str(), output->path().c_str());
  if (command.no_validate) return 0;
  auto rows = simulate::validate(*profile, options);
  if (!rows) {
    report_error(rows.error().message);
    return exit_status::kUnavailable;
  }
  std::printf(
      "\n`vmlab compare`'s workloads, recorded apart from the calibration runs, replayed "
      "under %s:\n",
      profile->name.c_str());
  simulate::print_validation(*rows, profile->title, std::cout);
  return 0;
}

}  // namespace vmlab::cli
