// `vmlab run`: boot the guest once and summarize what the VMM saw.
#include <cstdio>
#include <memory>
#include <optional>

#include "cli11_options.hpp"
#include "commands.hpp"
#include "vmlab/devices/exit_port.hpp"

namespace vmlab::cli {

namespace {

// What the parser fills: the command, and the two ways of giving the count,
// which only the whole command line can reconcile.
struct RunParse {
  RunCommand command;
  WorkloadSelection workload{RunOptions{}.workload, std::nullopt};
  std::optional<std::uint64_t> count;  // -n N
};

std::string workload_table() {
  std::string table = "workloads:";
  for (const auto& workload : builtin_workloads()) {
    char head[40];
    std::snprintf(head, sizeof head, "  %-11s N=%-9llu ", workload.name,
                  static_cast<unsigned long long>(workload.default_count));
    table += "\n" + std::string(head) +
             wrap_hanging(workload.description, kHelpWidth, std::string_view(head).size());
  }
  return table;
}

constexpr const char* kExitStatusHelp =
    "exit status: when the guest exits through port 0xF4, 0 for its status 0 (ok),\n"
    "  its status for 1 to 62, and 63 for any status of 63 or more (the summary\n"
    "  shows the full 32-bit value); otherwise 124 timeout, 70 guest crashed,\n"
    "  71 VMM error, 69 KVM or guest unusable, 64 usage, 74 an output not written,\n"
    "  130 stopped by Ctrl-C or SIGTERM (the run ends cleanly and its outputs are\n"
    "  written; a second signal abandons it).";

const char* status_meaning(std::uint32_t status) {
  switch (status) {
    case 0:
      return "ok";
    case 2:
      return "bad command line";
    case 3:
      return "guest kernel fault";
    case 4:
      return "user task segfault";
    default:
      return "guest-defined";
  }
}

// bt: what the translator did and how the cache served the guest kernel.
void print_translation(const bt::Statistics& statistics) {
  const auto number = [](std::uint64_t value) { return static_cast<unsigned long long>(value); };
  std::printf("translation cache (bt):\n");
  std::printf("  blocks translated %11llu (%llu guest instructions, %llu TC bytes, %llu ahead)\n",
              number(statistics.blocks_translated),
              number(statistics.guest_instructions_translated), number(statistics.tc_bytes_used),
              number(statistics.blocks_translated_ahead));
  std::printf("  TC hit rate       %s\n", bt::hit_rate(statistics).c_str());
  std::printf("  branches chained  %11llu (of %llu direct-branch exits)\n",
              number(statistics.chained_branches), number(statistics.branch_exits));
  std::printf("  indirect misses   %11llu (targets not in the lookup table)\n",
              number(statistics.lookup_misses));
  std::printf("  invalidations     %11llu blocks on %llu written pages, %llu flushes\n",
              number(statistics.blocks_invalidated), number(statistics.page_invalidations),
              number(statistics.flushes));
  if (!statistics.call_outs.empty()) {
    std::printf("  call-outs by instruction:\n");
    for (const auto& [mnemonic, count] : statistics.call_outs)
      std::printf("    %-20s %10llu\n", mnemonic.c_str(), number(count));
  }
}

// --census: the instructions the single steps counted.
void print_census(const InstructionCensus& census) {
  const auto number = [](std::uint64_t value) { return static_cast<unsigned long long>(value); };
  std::printf("instruction census (one single step per instruction that retired on the CPU):\n");
  std::printf("  kernel mode       %11llu\n", number(census.kernel_steps));
  if (census.user_mode_counted) {
    std::printf("  user mode         %11llu\n", number(census.user_steps));
  } else {
    std::printf("  user mode         not counted (this KVM backend does not single-step CPL3)\n");
  }
  if (census.translated_steps != 0) {
    std::printf("  translated (TC)   %11llu (the kernel's code, as the translator made it)\n",
                number(census.translated_steps));
  }
}

void print_summary(const RunOptions& options, const GuestRun& run) {
  const auto& report = run.report;
  std::printf("\n--- vmlab run: --cpu %s, guest command line \"%s\"\n", options.cpu.c_str(),
              run.command_line.c_str());
  switch (report.outcome) {
    case RunOutcome::GuestExited:
      std::printf(
          "guest status:  %u (0x%x, %s; vmlab exits with %d, QEMU's isa-debug-exit "
          "with %d)\n",
          report.exit_value, report.exit_value, status_meaning(report.exit_value),
          guest_exit_status(report.exit_value),
          devices::ExitPort::qemu_exit_status(report.exit_value));
      break;
    case RunOutcome::GuestCrashed:
      std::printf("guest status:  crashed\n");
      break;
    case RunOutcome::Timeout:
      std::printf("guest status:  timed out\n");
      break;
    case RunOutcome::Stopped:
      std::printf("guest status:  %s\n", report.message.c_str());
      break;
    case RunOutcome::VmmError:
      std::printf("guest status:  stopped by a VMM error\n");
      break;
  }
  if (run.result) std::printf("result:        %s\n", run.result->line.c_str());
  std::printf("wall time:     %.3f s\n", std::chrono::duration<double>(report.wall_time).count());
  std::printf("VM exits the VMM handled: %llu\n", static_cast<unsigned long long>(run.vm_exits()));
  for (const auto& [reason, count] : run.exits_by_reason) {
    std::printf("  %-18s %10llu\n", reason.c_str(), static_cast<unsigned long long>(count));
  }
  if (!run.traps_by_reason.empty()) {
    std::uint64_t traps = 0;
    for (const auto& [reason, count] : run.traps_by_reason)
      traps += count;
    std::printf("monitor traps: %llu (each is one of the VM exits above)\n",
                static_cast<unsigned long long>(traps));
    for (const auto& [reason, count] : run.traps_by_reason) {
      std::printf("  %-22s %10llu\n", reason.c_str(), static_cast<unsigned long long>(count));
    }
  }
  if (run.translation) print_translation(*run.translation);
  if (run.census) print_census(*run.census);
  std::printf("  interrupts injected %9llu, halts %llu\n",
              static_cast<unsigned long long>(run.interrupts_injected),
              static_cast<unsigned long long>(run.halts));
  if (report.unmapped_port_accesses != 0) {
    std::printf("  accesses to unclaimed ports: %llu\n",
                static_cast<unsigned long long>(report.unmapped_port_accesses));
  }
  if (report.unmapped_mmio_accesses != 0) {
    std::printf("  accesses to unclaimed MMIO: %llu (read as all ones)\n",
                static_cast<unsigned long long>(report.unmapped_mmio_accesses));
  }
  if (run.passthrough) {
    std::printf(
        "passthrough:   the VM owns the controller %s; a passed-through device "
        "cannot be migrated\n",
        passthrough_device_name(options.disk_path).c_str());
  }
  if (run.iommu_off) std::printf("%s\n", unsafe_iommu_note().c_str());
  if (!run.disk_statistics.empty()) {
    std::printf("disk (%s, %s%s):\n", options.disk_model.c_str(), options.disk_path.c_str(),
                options.disk_readonly ? ", read-only" : "");
    for (const auto& [name, value] : run.disk_statistics) {
      std::printf("  %-26s %12llu\n", name.c_str(), static_cast<unsigned long long>(value));
    }
  }
  for (const auto& problem : run.device_problems) {
    std::printf("DEVICE PROBLEM: %s\n", problem.c_str());
  }
  if (report.stats_available) {
    std::printf("KVM vCPU stats over the run (includes exits handled inside KVM):\n");
    for (const auto& [name, value] : report.kvm_stats.values) {
      if (value != 0)
        std::printf("  %-26s %12llu\n", name.c_str(), static_cast<unsigned long long>(value));
    }
  } else {
    std::printf("KVM vCPU stats: unavailable (%s)\n", report.stats_error.c_str());
  }
  if (report.integrity_violation) {
    std::printf("MONITOR REGION DAMAGED: %s\n", report.integrity_violation->c_str());
  }
  if (!options.live_path.empty()) {
    std::printf("live stream:   %llu events to %s",
                static_cast<unsigned long long>(run.live_streamed), options.live_path.c_str());
    if (run.live_dropped != 0) {
      std::printf(", %llu dropped (the reader fell behind)",
                  static_cast<unsigned long long>(run.live_dropped));
    }
    if (!run.live_error.empty()) std::printf("; it ended early: %s", run.live_error.c_str());
    std::printf("\n");
  }
  std::printf("%s\n", run.platform_line.c_str());
}

}  // namespace

Subcommand add_run_command(CLI::App& vmlab) {
  CLI::App* run = add_command(vmlab, "run", "boot the guest once and summarize what the VMM saw");
  auto parse = std::make_shared<RunParse>();
  RunOptions& options = parse->command.options;
  const RunOptions defaults;

  add_choice_option(*run, "--cpu", options.cpu, cpu_mode_choices(),
                    "CPU virtualization technique (default: " + defaults.cpu + "):");
  add_parsed_option(*run, "--workload", parse->workload, parse_workload_selection, "W[:N]",
                    "workload of the built-in guest (default: " + defaults.workload +
                        ", all listed below) and, after a colon, its count N");
  add_parsed_option(*run, "-n,--count", parse->count, parse_count, "N",
                    "the workload's count instead (each workload has a default)");
  run->add_option("--guest", options.guest_path,
                  wrap("boot this ELF64 guest instead of the built-in one (a regular file of at "
                       "most " +
                       size_text(kMaximumGuestFileSize) + "iB)"))
      ->type_name("ELF");
  add_parsed_option(*run, "--mem", options.memory_size, parse_memory_size, "SIZE",
                    "guest RAM, " + size_text(kMinimumGuestMemory) + " to " +
                        size_text(kMaximumGuestMemory) + " in " + size_text(kGuestMemoryStep) +
                        " steps, e.g. 64M, 64MiB, 1G (default " + size_text(defaults.memory_size) +
                        ")");
  add_parsed_option(*run, "--timeout", options.timeout_seconds, parse_timeout_seconds, "S",
                    "give up after S seconds, above 0 and at most " +
                        seconds_text(kMaximumTimeoutSeconds) +
                        " (24 hours), rounded up to whole milliseconds (default " +
                        seconds_text(defaults.timeout_seconds) + ")");
  run->add_flag("--umip", options.umip,
                wrap("full, bt: set CR4.UMIP, so sgdt/sidt/sldt/str/smsw fault and are "
                     "emulated instead of revealing the monitor's tables (bt translates the "
                     "kernel's own; UMIP then covers user code)"));
  run->add_flag("--census", options.instruction_census,
                wrap("count the guest's instructions by single-stepping every one (slow: an exit "
                     "each; for small runs): hvm through KVM, full, bt and para through the "
                     "monitor"));
  add_choice_option(*run, "--irqchip", options.irqchip, irqchip_choices(),
                    "who models the PIC and the PIT (default: " +
                        std::string(choice_name(irqchip_choices(), defaults.irqchip)) + "):");
  run->add_option("--trace", options.trace_path,
                  wrap("write every event to FILE (vmlab-trace v2; see vmlab trace)"))
      ->type_name("FILE");
  run->add_option("--live", options.live_path,
                  wrap("stream every event to FILE as it happens (vmlab-trace v2, its totals at "
                       "the end): a FIFO whose reader is already there, as vmlab-viz's live view "
                       "makes, or a file written as the run goes (tail -f it), replaced only as "
                       "--trace replaces one"))
      ->type_name("FILE");
  run->add_option("--translations", options.translations_path,
                  wrap("bt: write every translated block to FILE when the run ends: each guest "
                       "instruction's bytes and disassembly beside the translation-cache code "
                       "that carries it out"))
      ->type_name("FILE");
  run->add_option("--console", options.console_path,
                  wrap("send the guest's serial console to FILE, not the terminal (both files "
                       "appear when the run ends; an existing FILE is replaced only if it is "
                       "empty or an earlier such output, never if it is the run's --disk or "
                       "--guest, a disk image or an image another vmlab is using)"))
      ->type_name("FILE");
  run->add_flag("--quiet", parse->command.quiet, wrap("do not echo the guest console"));
  run->add_option("--cmdline", options.extra_command_line,
                  wrap("extra key=value words for the guest command line (the whole command "
                       "line is at most " +
                       std::to_string(kMaximumCommandLine) + " bytes)"))
      ->type_name("TEXT");
  run->add_option("--disk", options.disk_path,
                  wrap("give the guest a disk backed by the raw image PATH (make one with "
                       "`vmlab disk create disk.img 64M`)"))
      ->type_name("PATH");
  run->add_flag("--disk-readonly", options.disk_readonly,
                wrap("open the image read-only: guest writes fail"));
  add_choice_option(*run, "--disk-model", options.disk_model, disk_model_choices(),
                    "the disk's interface (default: " + defaults.disk_model + "):");
  add_choice_option(*run, "--iommu", options.iommu, iommu_choices(),
                    "passthrough: DMA through the IOMMU model (default: " +
                        std::string(choice_name(iommu_choices(), defaults.iommu)) + "):");
  run->add_flag("--virtio-event-idx", options.virtio_event_index,
                wrap("offer VIRTIO_F_EVENT_IDX (notification suppression)"));
  run->add_flag_function(
      "--no-ioeventfd", [&options](std::int64_t) { options.virtio_ioeventfd = false; },
      wrap("hvm: let virtio notifications exit to the VMM instead of signalling a KVM "
           "ioeventfd (the default where KVM has it)"));
  run->footer(workload_table() + "\n\n" + kExitStatusHelp);

  return {run, [run, parse]() -> Result<Command> {
            if (auto extra = refuse_unexpected_arguments(*run); !extra) return extra.error();
            RunCommand command = parse->command;
            command.options.workload = parse->workload.name;
            if (parse->workload.count && parse->count) {
              return Error{CliError::kConflictingOptions,
                           "the count is given twice, as --workload " + parse->workload.name + ":" +
                               std::to_string(*parse->workload.count) + " and as -n " +
                               std::to_string(*parse->count) + "; give it once"};
            }
            command.options.count = parse->count ? parse->count : parse->workload.count;
            if (auto valid = check_run_options(command.options); !valid) return valid.error();
            return Command{std::move(command)};
          }};
}

int execute(const RunCommand& command) {
  RunOptions options = command.options;
  // An output that cannot be written, or must not be replaced, is refused
  // before anything runs; nothing is written to it unless the run happens.
  auto outputs = open_run_outputs(options);
  if (!outputs) {
    report_error(outputs.error().message);
    return exit_status::kUsage;
  }
  if (!command.quiet && options.console_path.empty()) {
    options.console_output = [](std::uint8_t byte) {
      std::fputc(byte, stdout);
      if (byte == '\n') std::fflush(stdout);
    };
  }
  // The first Ctrl-C (or the SIGTERM vmlab-viz's Stop sends) ends the
  // guest cleanly: the summary and the outputs are still written.
  RunStopper stopper;
  options.stopper = &stopper;
  std::optional<StopOnSignals> stop_on_signals(std::in_place, stopper);
  auto run = run_guest(options, *outputs);
  stop_on_signals.reset();
  std::fflush(stdout);
  if (!run) {
    report_error(run.error().message);
    return exit_status::kUnavailable;  // the outputs are discarded: their files are as they were
  }
  print_summary(options, *run);
  std::fflush(stdout);
  const Status committed = outputs->commit();
  if (committed) {
    if (!options.console_path.empty()) {
      std::printf("console written to %s\n", options.console_path.c_str());
    }
    if (!options.trace_path.empty()) {
      std::printf("trace written to %s\n", options.trace_path.c_str());
    }
    if (!options.translations_path.empty()) {
      std::printf("translations written to %s\n", options.translations_path.c_str());
    }
    std::fflush(stdout);
  }
  const int status = run_exit_status(run->report);
  switch (run->report.outcome) {
    case RunOutcome::GuestExited:
      if (status != static_cast<int>(run->report.exit_value)) {
        std::fprintf(stderr,
                     "vmlab: the guest exited with status %u, which is %d or more: vmlab exits "
                     "with %d\n",
                     run->report.exit_value, exit_status::kGuestStatusCap, status);
      }
      break;
    case RunOutcome::GuestCrashed:
    case RunOutcome::VmmError:
      std::fprintf(stderr, "vmlab: %s\n%s\n", run->report.message.c_str(),
                   run->report.registers.c_str());
      break;
    case RunOutcome::Timeout:
      report_error(run->report.message);
      break;
    case RunOutcome::Stopped:
      break;  // the user asked for it: the summary says so
  }
  if (!committed) {
    report_error(committed.error().message);
    return exit_status::kOutputError;
  }
  return status;
}

}  // namespace vmlab::cli
