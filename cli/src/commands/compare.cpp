// `vmlab compare`: the workloads in every configuration, side by side.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "cli11_options.hpp"
#include "commands.hpp"

namespace vmlab::cli {

namespace {

std::string workload_list_text(const std::vector<WorkloadRequest>& workloads) {
  std::string text;
  for (const auto& workload : workloads) {
    if (!text.empty()) text += ", ";
    text += workload.name + ":" + std::to_string(workload.count);
  }
  return text;
}

}  // namespace

Subcommand add_compare_command(CLI::App& vmlab) {
  CLI::App* compare = add_command(
      vmlab, "compare",
      "run the workloads in every configuration and compare them side by side\n"
      "Runs the built-in guest's workloads in every available configuration and prints one "
      "table: guest cycles, VM exits and monitor traps per operation, the share of time at "
      "each privilege level, and the cost relative to hvm. A progress line shows each run.");
  auto command = std::make_shared<CompareCommand>();
  CompareOptions& options = command->options;
  const CompareOptions defaults;

  add_parsed_option(*compare, "--workloads", options.workloads, parse_workload_list, "LIST",
                    "comma-separated workloads, each NAME or NAME:N (default: " +
                        workload_list_text(default_compare_workloads()) + ")");
  add_parsed_option(
      *compare, "--cpu", options.cpus, parse_cpu_mode_list, "LIST",
      "CPU modes to compare, any of " + cpu_mode_list() + ", and " + kQemuTcg +
          ": the same image under QEMU's software emulation (default: every mode built)");
  add_parsed_option(
      *compare, "--irqchip", options.irqchips,
      [](std::string_view text) { return parse_choice_list(irqchip_choices(), text); }, "LIST",
      "who models the PIC and the PIT: " + choice_names(irqchip_choices()) +
          " or both (default: both; the software modes always use the VMM's)");
  add_parsed_option(*compare, "--disk-model", options.disk_models, parse_disk_model_list, "LIST",
                    "any of " + choice_names(disk_model_choices()) +
                        ": every configuration once per disk model, on a scratch image "
                        "(default workloads then: " +
                        workload_list_text(default_disk_workloads()) + ")");
  compare
      ->add_option("--json", command->json_path,
                   wrap("also write the results as JSON (checked before the first run, written "
                        "at the end; an existing FILE is replaced only if it is empty or "
                        "something vmlab wrote)"))
      ->type_name("FILE");
  add_parsed_option(*compare, "--mem", options.memory_size, parse_memory_size, "SIZE",
                    "guest RAM for every run, " + size_text(kMinimumGuestMemory) + " to " +
                        size_text(kMaximumGuestMemory) + " in " + size_text(kGuestMemoryStep) +
                        " steps (default " + size_text(defaults.memory_size) + ")");
  add_parsed_option(*compare, "--timeout", options.timeout_seconds, parse_timeout_seconds, "S",
                    "per-run timeout in seconds, above 0 and at most " +
                        seconds_text(kMaximumTimeoutSeconds) + " (default " +
                        seconds_text(defaults.timeout_seconds) + ")");

  return {compare, [compare, command]() -> Result<Command> {
            if (auto extra = refuse_unexpected_arguments(*compare); !extra) return extra.error();
            if (auto valid = check_compare_options(command->options); !valid) {
              return valid.error();
            }
            return Command{*command};
          }};
}

int execute(const CompareCommand& command) {
  // Checked (and its temporary file made) before the first run, so that a
  // bad path costs a message, not the whole comparison.
  std::optional<OutputFile> json;
  if (!command.json_path.empty()) {
    auto created = OutputFile::create(command.json_path, "--json", OutputKind::Report);
    if (!created) {
      report_error(created.error().message);
      return exit_status::kUsage;
    }
    json.emplace(std::move(*created));
  }
  const bool interactive = isatty(STDERR_FILENO) != 0;
  auto started = std::chrono::steady_clock::now();
  auto progress = [&](std::size_t done, std::size_t total, const CompareRow* finished,
                      const std::string& starting) {
    if (finished == nullptr) {
      started = std::chrono::steady_clock::now();
      if (interactive) {
        std::fprintf(stderr, "\r\033[K[%zu/%zu] %s ...", done + 1, total, starting.c_str());
      }
      return;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (interactive) std::fputs("\r\033[K", stderr);
    if (!interactive || !finished->ok) {
      std::fprintf(stderr, "[%zu/%zu] %s: %s n=%llu %s (%.2f s)\n", done, total,
                   finished->configuration.label().c_str(), finished->workload.name.c_str(),
                   static_cast<unsigned long long>(finished->workload.count),
                   finished->ok ? "ok" : ("failed: " + finished->failure).c_str(), seconds);
    }
  };
  auto comparison = run_comparison(command.options, progress);
  if (!comparison) {
    report_error(comparison.error().message);
    return exit_status::kUnavailable;
  }
  std::printf("\n");
  print_comparison(*comparison, std::cout);
  std::cout.flush();
  if (json) {
    write_comparison_json(*comparison, json->stream());
    if (auto committed = json->commit(); !committed) {
      report_error(committed.error().message);
      return exit_status::kOutputError;
    }
    std::printf("results written to %s\n", command.json_path.c_str());
  }
  for (const auto& row : comparison->rows) {
    if (!row.ok) return exit_status::kGuestCrashed;
  }
  return 0;
}

}  // namespace vmlab::cli
