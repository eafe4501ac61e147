// vmlab: the command-line front end (DESIGN.md section 8).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/compare.hpp"
#include "vmlab/devices/exit_port.hpp"
#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/probe.hpp"
#include "vmlab/runner.hpp"
#include "vmlab/trace.hpp"

namespace {

using namespace vmlab;

// Exit statuses of vmlab itself (vmlab/runner.hpp); a guest that exits
// through the exit port makes vmlab exit with guest_exit_status() instead.
constexpr int kExitUsage = exit_status::kUsage;
constexpr int kExitUnavailable = exit_status::kUnavailable;
constexpr int kExitGuestCrashed = exit_status::kGuestCrashed;
constexpr int kExitVmmError = exit_status::kVmmError;
constexpr int kExitOutputError = exit_status::kOutputError;

constexpr const char* kUsage = R"(usage: vmlab <command> [options]

commands:
  compare  run the workloads in every configuration and compare them side by side
  probe    the x86 holes: what each mode shows a kernel for sensitive instructions
  run      boot the guest once and summarize what the VMM saw
  trace    summarize a trace, or export it for Perfetto or as CSV
  info     show the KVM backend, CPU and the capabilities vmlab uses
  disk     create a raw disk image, or show one's size
  help     show this text (also: vmlab <command> --help)

Run `vmlab <command> --help` for a command's options.
)";

constexpr const char* kRunUsage = R"(usage: vmlab run [options]

  --cpu MODE          CPU virtualization technique (default: hvm):
                        hvm   hardware-assisted: the guest kernel at CPL0
                        full  trap-and-emulate: the same kernel deprivileged
                              to CPL3, a monitor emulating what it may not do
                        para  paravirtualization: the kernel at CPL3 calls the
                              monitor (hypercalls) and validated page tables
  --workload W[:N]    workload of the built-in guest (default: hello); N, or
  -n, --count N       sets its count (each workload has a default)
  --guest ELF         boot this ELF64 guest instead of the built-in one (a
                      regular file of at most 64 MiB)
  --mem SIZE          guest RAM, 4M to 3G in 2M steps, e.g. 64M, 1G (default 64M)
  --timeout S         give up after S seconds, above 0 and at most 86400 (24 h);
                      rounded up to whole milliseconds (default 30)
  --umip              full: set CR4.UMIP, so sgdt/sidt/sldt/str/smsw fault and
                      are emulated instead of revealing the monitor's tables
  --irqchip vmm|kernel  who models the PIC/PIT: the VMM (default, interrupts
                      injected with KVM_INTERRUPT) or KVM in the kernel
  --trace FILE        write every event to FILE (vmlab-trace v2; see vmlab trace)
  --console FILE      send the guest's serial console to FILE, not the terminal
                      (both files appear when the run ends; an existing FILE is
                      replaced only if it is empty or an earlier such output,
                      never if it is the run's --disk or --guest, a disk image
                      or an image another vmlab is using)
  --quiet             do not echo the guest console
  --cmdline TEXT      extra key=value words for the guest command line (the
                      whole command line is at most 4095 bytes)
  --disk PATH         give the guest a disk backed by the raw image PATH
                      (make one with `vmlab disk create disk.img 64M`)
  --disk-readonly     open the image read-only: guest writes fail
  --disk-model ata|virtio|passthrough  the disk's interface (default virtio):
                      ATA PIO on ports 0x1F0/0x3F6 IRQ 14; virtio-blk over
                      virtio-mmio at 0xfeb00000 IRQ 5; or the passthrough
                      controller, registers at 0xfea00000 (memory: no exits),
                      IRQ 11, DMA through an IOMMU model. A passthrough disk
                      belongs to one VM, which cannot be migrated.
  --iommu on|off      passthrough: translate and check every DMA (on, the
                      default), or let the device DMA anywhere in guest RAM
                      (off: a teaching switch; the run is marked UNSAFE)
  --virtio-event-idx  offer VIRTIO_F_EVENT_IDX (notification suppression)
  --no-ioeventfd      hvm: let virtio notifications exit to the VMM instead of
                      signalling a KVM ioeventfd (the default where KVM has it)

workloads:
)";

constexpr const char* kExitStatusHelp = R"(
exit status: when the guest exits through port 0xF4, 0 for its status 0 (ok),
  its status for 1 to 62, and 63 for any status of 63 or more (the summary
  shows the full 32-bit value); otherwise 124 timeout, 70 guest crashed,
  71 VMM error, 69 KVM or guest unusable, 64 usage, 74 an output not written.
)";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "vmlab: %s\nTry 'vmlab help'.\n", message.c_str());
  return kExitUsage;
}

std::optional<std::uint64_t> parse_number(const std::string& text) {
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

void print_run_usage() {
  std::fputs(kRunUsage, stdout);
  for (const auto& workload : builtin_workloads()) {
    std::printf("  %-11s N=%-9llu %s\n", workload.name,
                static_cast<unsigned long long>(workload.default_count), workload.description);
  }
  std::fputs(kExitStatusHelp, stdout);
}

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
    case RunOutcome::VmmError:
      std::printf("guest status:  stopped by a VMM error\n");
      break;
  }
  if (run.result) std::printf("result:        %s\n", run.result->line.c_str());
  std::printf("wall time:     %.3f s\n", std::chrono::duration<double>(report.wall_time).count());
  std::uint64_t total = 0;
  for (const auto& [reason, count] : run.exits_by_reason)
    total += count;
  std::printf("VM exits the VMM handled: %llu\n", static_cast<unsigned long long>(total));
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
  std::printf("%s\n", run.platform_line.c_str());
}

// Whether `option` is one of a command's options that take a value: checked
// before the value is taken, so that an unknown word is named as unknown
// rather than as an option missing its value.
template <std::size_t Count>
bool is_one_of(const std::array<std::string_view, Count>& names, const std::string& option) {
  return std::find(names.begin(), names.end(), option) != names.end();
}

int unknown_argument(const std::string& argument, const std::string& command) {
  if (!argument.empty() && argument[0] == '-') {
    return usage_error("unknown option '" + argument + "' for " + command);
  }
  return usage_error(command + " takes options only, not '" + argument + "'");
}

int command_run(const std::vector<std::string>& arguments) {
  static constexpr std::array<std::string_view, 14> kValueOptions = {
      "--cpu",     "--workload", "-n",        "--count",   "--guest", "--mem",        "--timeout",
      "--irqchip", "--trace",    "--console", "--cmdline", "--disk",  "--disk-model", "--iommu"};
  RunOptions options;
  bool quiet = false;
  bool disk_model_given = false;
  bool iommu_given = false;
  for (std::size_t index = 0; index < arguments.size(); ++index) {
    const std::string& option = arguments[index];
    if (option == "--help" || option == "-h") {
      print_run_usage();
      return 0;
    }
    if (option == "--quiet") {
      quiet = true;
      continue;
    }
    if (option == "--umip") {
      options.umip = true;
      continue;
    }
    if (option == "--disk-readonly") {
      options.disk_readonly = true;
      continue;
    }
    if (option == "--virtio-event-idx") {
      options.virtio_event_index = true;
      continue;
    }
    if (option == "--no-ioeventfd") {
      options.virtio_ioeventfd = false;
      continue;
    }
    if (!is_one_of(kValueOptions, option)) return unknown_argument(option, "run");
    if (index + 1 >= arguments.size()) return usage_error("option " + option + " needs a value");
    const std::string& argument = arguments[++index];
    if (option == "--cpu") {
      options.cpu = argument;
    } else if (option == "--workload") {
      auto separator = argument.find_first_of(": ");
      options.workload = argument.substr(0, separator);
      if (separator != std::string::npos) {
        auto count = parse_number(argument.substr(separator + 1));
        if (!count) return usage_error("bad count in --workload " + argument);
        options.count = count;
      }
    } else if (option == "-n" || option == "--count") {
      auto count = parse_number(argument);
      if (!count) return usage_error("--count needs a whole number, not '" + argument + "'");
      options.count = count;
    } else if (option == "--guest") {
      options.guest_path = argument;
    } else if (option == "--mem") {
      auto size = parse_memory_size(argument);
      if (!size) return usage_error(size.error().message);
      options.memory_size = *size;
    } else if (option == "--timeout") {
      auto seconds = parse_timeout_seconds(argument);
      if (!seconds) return usage_error(seconds.error().message);
      options.timeout_seconds = *seconds;
    } else if (option == "--irqchip") {
      if (argument == "vmm") {
        options.irqchip = IrqchipModel::Vmm;
      } else if (argument == "kernel") {
        options.irqchip = IrqchipModel::Kernel;
      } else {
        return usage_error("--irqchip is vmm or kernel, not '" + argument + "'");
      }
    } else if (option == "--trace") {
      options.trace_path = argument;
    } else if (option == "--console") {
      options.console_path = argument;
    } else if (option == "--cmdline") {
      options.extra_command_line = argument;
    } else if (option == "--disk") {
      options.disk_path = argument;
    } else if (option == "--disk-model") {
      if (argument != "ata" && argument != "virtio" && argument != "passthrough") {
        return usage_error("--disk-model is ata, virtio or passthrough, not '" + argument + "'");
      }
      options.disk_model = argument;
      disk_model_given = true;
    } else if (option == "--iommu") {
      if (argument != "on" && argument != "off") {
        return usage_error("--iommu is on or off, not '" + argument + "'");
      }
      options.iommu = argument == "on";
      iommu_given = true;
    }
  }

  // Names the options got wrong are usage errors (64), found before a VM exists.
  const auto modes = available_cpu_modes();
  if (std::find(modes.begin(), modes.end(), options.cpu) == modes.end()) {
    return usage_error("unknown --cpu '" + options.cpu + "': this build has " + cpu_mode_list());
  }
  if (options.guest_path.empty() && find_workload(options.workload) == nullptr) {
    return usage_error("unknown workload '" + options.workload +
                       "'; the built-in guest has: " + workload_list());
  }
  if (options.umip && options.cpu != "full") return usage_error("--umip applies to --cpu full");
  if (options.disk_path.empty()) {
    if (options.guest_path.empty() && workload_needs_disk(options.workload)) {
      return usage_error(options.workload +
                         " needs --disk PATH; make one with `vmlab disk create disk.img 64M`");
    }
    if (options.disk_readonly || disk_model_given || options.virtio_event_index) {
      return usage_error("--disk-readonly, --disk-model and --virtio-event-idx need --disk PATH");
    }
  }
  if (options.virtio_event_index && options.disk_model != "virtio") {
    return usage_error("--virtio-event-idx applies to --disk-model virtio");
  }
  if (iommu_given && options.disk_model != "passthrough") {
    return usage_error("--iommu applies to --disk-model passthrough");
  }
  if (options.guest_path.empty() && options.workload == "dma-attack" &&
      options.disk_model != "passthrough") {
    return usage_error(
        "dma-attack needs the passthrough disk: --disk PATH --disk-model passthrough");
  }
  // The rules run_guest applies (memory, timeout, command line length), here
  // so that they too are usage errors.
  if (auto valid = check_run_options(options); !valid) return usage_error(valid.error().message);
  // An output that cannot be written, or must not be replaced, is refused
  // before anything runs; nothing is written to it unless the run happens.
  auto outputs = open_run_outputs(options);
  if (!outputs) return usage_error(outputs.error().message);

  if (!quiet && options.console_path.empty()) {
    options.console_output = [](std::uint8_t byte) {
      std::fputc(byte, stdout);
      if (byte == '\n') std::fflush(stdout);
    };
  }
  auto run = run_guest(options, *outputs);
  std::fflush(stdout);
  if (!run) {
    std::fprintf(stderr, "vmlab: %s\n", run.error().message.c_str());
    return kExitUnavailable;  // the outputs are discarded: their files are as they were
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
      std::fprintf(stderr, "vmlab: %s\n", run->report.message.c_str());
      break;
  }
  if (!committed) {
    std::fprintf(stderr, "vmlab: %s\n", committed.error().message.c_str());
    return kExitOutputError;
  }
  return status;
}

int command_info(const std::vector<std::string>& arguments) {
  if (!arguments.empty()) {
    if (arguments[0] == "--help" || arguments[0] == "-h") {
      std::puts(
          "usage: vmlab info\n\nPrints the KVM backend, the CPU and the capabilities vmlab uses.");
      return 0;
    }
    return usage_error("info takes no options, not '" + arguments[0] + "'");
  }
  const PlatformInfo platform = detect_platform();
  std::printf("KVM backend:  %s (%s)\n", platform.backend.c_str(),
              platform.backend_description.c_str());
  std::printf("CPU:          %s\n", platform.cpu_model.c_str());
  std::printf("host kernel:  Linux %s\n", platform.host_kernel.c_str());
  if (!platform.kvm_error.empty()) {
    std::printf("/dev/kvm:     unusable: %s\n", platform.kvm_error.c_str());
    return kExitUnavailable;
  }
  std::printf("KVM API:      version %d\n", platform.api_version);
  std::printf("capabilities:\n");
  for (const auto& capability : platform.capabilities) {
    std::printf("  %-16s %-4s %s\n", capability.name, capability.value != 0 ? "yes" : "no",
                capability.used_for);
  }
  // Not a KVM_CHECK_EXTENSION: whether a deprivileged kernel's cpuid reaches
  // the VMM's leaves (PLATFORM.md "Hosts differ").
  const char* intercepted = platform.cpuid_at_user_level == CpuidAtUserLevel::Intercepted   ? "yes"
                            : platform.cpuid_at_user_level == CpuidAtUserLevel::HostAnswers ? "no"
                                                                                            : "?";
  std::printf("  %-16s %-4s cpuid at guest CPL3 returns the VMM's leaves: %s\n", "CPUID_AT_CPL3",
              intercepted, platform.cpuid_at_user_level_reason.c_str());
  if (platform.backend == "kvm_pvm") {
    std::puts(
        "\nnote: kvm_pvm emulates guest CPL0 code in software (hundreds of ns per\n"
        "instruction) and runs CPL3 code natively; figures from this host are\n"
        "figures of a kvm_pvm host, not of VT-x or AMD-V hardware.");
  }
  return 0;
}

constexpr const char* kCompareUsage = R"(usage: vmlab compare [options]

Runs the built-in guest's workloads in every available configuration and
prints one table: guest cycles, VM exits and monitor traps per operation, the
share of time at each privilege level, and the cost relative to hvm.

  --workloads LIST    comma-separated workloads, each NAME or NAME:N
                      (default: hello, syscalls:5000, pagefaults:1000,
                      compute:10000000, cli-sti:5000, pio:5000, timer:20)
  --cpu LIST          CPU modes to compare (default: every mode built: hvm,full,para)
  --irqchip LIST      vmm, kernel or both (default: vmm,kernel)
  --disk-model LIST   any of ata, virtio, passthrough: every configuration
                      once per disk model, on a scratch image (default workloads then:
                      disk-write:256, disk-read:256, disk-verify:128)
  --json FILE         also write the results as JSON (checked before the first
                      run, written at the end; an existing FILE is replaced only
                      if it is empty or something vmlab wrote)
  --mem SIZE          guest RAM for every run, 4M to 3G in 2M steps (default 64M)
  --timeout S         per-run timeout in seconds, above 0 and at most 86400
                      (default 60)
)";

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    if (end > start) items.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

int command_compare(const std::vector<std::string>& arguments) {
  static constexpr std::array<std::string_view, 7> kValueOptions = {
      "--workloads", "--cpu", "--disk-model", "--irqchip", "--json", "--mem", "--timeout"};
  CompareOptions options;
  std::string json_path;
  for (std::size_t index = 0; index < arguments.size(); ++index) {
    const std::string& option = arguments[index];
    if (option == "--help" || option == "-h") {
      std::fputs(kCompareUsage, stdout);
      return 0;
    }
    if (!is_one_of(kValueOptions, option)) return unknown_argument(option, "compare");
    if (index + 1 >= arguments.size()) return usage_error("option " + option + " needs a value");
    const std::string& argument = arguments[++index];
    if (option == "--workloads") {
      auto workloads = parse_workload_list(argument);
      if (!workloads) return usage_error(workloads.error().message);
      options.workloads = *workloads;
    } else if (option == "--cpu") {
      options.cpus = split_list(argument);
    } else if (option == "--disk-model") {
      auto models = parse_disk_model_list(argument);
      if (!models) return usage_error(models.error().message);
      options.disk_models = *models;
    } else if (option == "--irqchip") {
      for (const auto& item : split_list(argument)) {
        if (item == "vmm") {
          options.irqchips.push_back(IrqchipModel::Vmm);
        } else if (item == "kernel") {
          options.irqchips.push_back(IrqchipModel::Kernel);
        } else {
          return usage_error("--irqchip takes vmm and/or kernel, not '" + item + "'");
        }
      }
    } else if (option == "--json") {
      json_path = argument;
    } else if (option == "--mem") {
      auto size = parse_memory_size(argument);
      if (!size) return usage_error(size.error().message);
      options.memory_size = *size;
    } else if (option == "--timeout") {
      auto seconds = parse_timeout_seconds(argument);
      if (!seconds) return usage_error(seconds.error().message);
      options.timeout_seconds = *seconds;
    }
  }
  if (auto valid = check_compare_options(options); !valid) {
    return usage_error(valid.error().message);
  }
  // Checked (and its temporary file made) before the first run, so that a
  // bad path costs a message, not the whole comparison.
  std::optional<OutputFile> json;
  if (!json_path.empty()) {
    auto created = OutputFile::create(json_path, "--json", OutputKind::Report);
    if (!created) return usage_error(created.error().message);
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
  auto comparison = run_comparison(options, progress);
  if (!comparison) {
    std::fprintf(stderr, "vmlab: %s\n", comparison.error().message.c_str());
    return kExitUnavailable;
  }
  std::printf("\n");
  print_comparison(*comparison, std::cout);
  std::cout.flush();
  if (json) {
    write_comparison_json(*comparison, json->stream());
    if (auto committed = json->commit(); !committed) {
      std::fprintf(stderr, "vmlab: %s\n", committed.error().message.c_str());
      return kExitOutputError;
    }
    std::printf("results written to %s\n", json_path.c_str());
  }
  for (const auto& row : comparison->rows) {
    if (!row.ok) return kExitGuestCrashed;
  }
  return 0;
}

constexpr const char* kTraceUsage = R"(usage: vmlab trace summary TRACE
       vmlab trace export --format perfetto|csv TRACE [-o OUTPUT]

TRACE is a file written by `vmlab run --trace`. `summary` prints counts by kind
and reason, time per privilege level and the guest RIPs that cost most.
`export --format perfetto` writes Chrome/Perfetto JSON (open it at
ui.perfetto.dev or chrome://tracing); `--format csv` writes one row per event.
Without -o the export goes to standard output.
)";

int command_trace(const std::vector<std::string>& arguments) {
  if (arguments.empty() || arguments[0] == "--help" || arguments[0] == "-h") {
    std::fputs(kTraceUsage, arguments.empty() ? stderr : stdout);
    return arguments.empty() ? kExitUsage : 0;
  }
  const std::string& action = arguments[0];
  std::string format, input, output;
  for (std::size_t index = 1; index < arguments.size(); ++index) {
    const std::string& argument = arguments[index];
    if (argument == "--format" || argument == "-o") {
      if (index + 1 >= arguments.size())
        return usage_error("option " + argument + " needs a value");
      (argument == "--format" ? format : output) = arguments[++index];
    } else if (!argument.empty() && argument[0] == '-') {
      std::string message = "unknown option '";
      message += argument;
      message += "' for trace ";
      message += action;
      return usage_error(message);
    } else if (input.empty()) {
      input = argument;
    } else {
      return usage_error("trace takes one trace file, not also '" + argument + "'");
    }
  }
  if (input.empty()) return usage_error("trace " + action + " needs a trace file");
  if (action != "summary" && action != "export") {
    return usage_error("unknown trace action '" + action + "': summary or export");
  }
  if (action == "export" && format != "perfetto" && format != "csv") {
    return usage_error("trace export needs --format perfetto or --format csv");
  }
  if (action == "summary" && (!format.empty() || !output.empty())) {
    return usage_error("--format and -o apply to trace export");
  }
  // The export never replaces its own input, a disk image, or anything else
  // vmlab did not write.
  std::optional<OutputFile> file;
  if (!output.empty()) {
    auto created =
        OutputFile::create(output, "-o", OutputKind::Report, {{"the trace file", input}});
    if (!created) return usage_error(created.error().message);
    file.emplace(std::move(*created));
  }
  auto trace = read_trace_file(input);
  if (!trace) {
    std::fprintf(stderr, "vmlab: %s\n", trace.error().message.c_str());
    return kExitUnavailable;
  }
  if (action == "export" && trace->truncated()) {
    std::fprintf(stderr, "vmlab: warning: %s\n", truncation_message(*trace).c_str());
  }
  if (action == "summary") {
    print_summary(*trace, summarize(*trace), std::cout);
    return 0;
  }
  std::ostream& out = file ? file->stream() : std::cout;
  if (format == "perfetto") {
    export_perfetto(*trace, out);
  } else {
    export_csv(*trace, out);
  }
  if (file) {
    if (auto committed = file->commit(); !committed) {
      std::fprintf(stderr, "vmlab: %s\n", committed.error().message.c_str());
      return kExitOutputError;
    }
  } else if (!out.flush()) {
    std::fprintf(stderr, "vmlab: writing the export to standard output failed\n");
    return kExitOutputError;
  }
  if (!output.empty()) {
    std::fprintf(stderr, "%zu events exported to %s\n", trace->events.size(), output.c_str());
  }
  return 0;
}

int command_probe(const std::vector<std::string>& arguments) {
  if (!arguments.empty()) {
    if (arguments[0] == "--help" || arguments[0] == "-h") {
      std::puts(
          "usage: vmlab probe\n\n"
          "Runs the guest's `probes` workload (pushf after cli, popf clearing IF, sgdt,\n"
          "sidt, sldt, str, smsw, mov from cs and ss, lar, lsl, verr, verw, in kernel\n"
          "mode) on QEMU (the native answer), hvm, full and full with CR4.UMIP, and\n"
          "prints what each saw, whether it matches native, and what UMIP closes.");
      return 0;
    }
    return usage_error("probe takes no options, not '" + arguments[0] + "'");
  }
  std::fprintf(stderr, "running the probes on QEMU, hvm, full, full+umip and para ...\n");
  auto matrix = run_probe_matrix();
  if (!matrix) {
    std::fprintf(stderr, "vmlab: %s\n", matrix.error().message.c_str());
    return kExitUnavailable;
  }
  print_probe_matrix(*matrix, std::cout);
  return 0;
}

constexpr const char* kDiskUsage = R"(usage: vmlab disk create PATH SIZE [--force]
       vmlab disk info PATH

`create` makes PATH a sparse raw disk image of SIZE bytes that reads as zeros
and takes no host space until written. SIZE is a whole number of 512-byte
sectors, in bytes or binary units: 512, 64K, 16M, 2G (at most 1T). An existing
file is replaced only with --force, and never while a VM is using it.
`info` opens PATH read-only and prints its size.
)";

int command_disk(const std::vector<std::string>& arguments) {
  if (arguments.empty() || arguments[0] == "--help" || arguments[0] == "-h") {
    std::fputs(kDiskUsage, arguments.empty() ? stderr : stdout);
    return arguments.empty() ? kExitUsage : 0;
  }
  const std::string& action = arguments[0];
  if (action != "create" && action != "info") {
    return usage_error("unknown disk action '" + action + "': create or info");
  }
  std::vector<std::string> operands;
  bool force = false;
  for (std::size_t index = 1; index < arguments.size(); ++index) {
    const std::string& argument = arguments[index];
    if (argument == "--force" && action == "create") {
      force = true;
    } else if (argument.size() > 1 && argument[0] == '-') {
      std::string message = "unknown option '";
      message += argument;
      message += "' for disk ";
      message += action;
      return usage_error(message);
    } else {
      operands.push_back(argument);
    }
  }

  if (action == "info") {
    if (operands.size() != 1) return usage_error("disk info takes one image path");
    auto image = devices::RawImageFile::open(operands[0], devices::DiskAccess::ReadOnly);
    if (!image) {
      std::fprintf(stderr, "vmlab: %s\n", image.error().message.c_str());
      return kExitUnavailable;
    }
    std::printf("%s: %llu bytes (%llu sectors of 512 bytes), raw image, serial \"%s\"\n",
                operands[0].c_str(), static_cast<unsigned long long>((*image)->size_bytes()),
                static_cast<unsigned long long>((*image)->sector_count()),
                (*image)->serial().c_str());
    return 0;
  }

  if (operands.size() != 2) {
    return usage_error("disk create needs PATH and SIZE, e.g. vmlab disk create disk.img 64M");
  }
  const std::string& path = operands[0];
  auto size = devices::parse_size(operands[1]);
  if (!size) return usage_error(size.error().message);
  if (*size % devices::kSectorSize != 0 || *size > devices::kMaximumImageSize) {
    return usage_error("disk size " + operands[1] +
                       " is not a whole number of 512-byte sectors between 512 and 1T");
  }
  if (auto created = devices::create_raw_image(path, *size, force); !created) {
    std::fprintf(stderr, "vmlab: %s\n", created.error().message.c_str());
    return kExitUnavailable;
  }
  std::printf("created %s: %llu bytes (%llu sectors), sparse raw image\n", path.c_str(),
              static_cast<unsigned long long>(*size),
              static_cast<unsigned long long>(*size / devices::kSectorSize));
  return 0;
}

int dispatch(std::vector<std::string> arguments) {
  if (arguments.empty()) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  const std::string command = arguments.front();
  arguments.erase(arguments.begin());
  if (command == "help" || command == "--help" || command == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command == "--version") {
    std::puts("vmlab 0.1.0");
    return 0;
  }
  if (command == "run") return command_run(arguments);
  if (command == "compare") return command_compare(arguments);
  if (command == "probe") return command_probe(arguments);
  if (command == "trace") return command_trace(arguments);
  if (command == "info") return command_info(arguments);
  if (command == "disk") return command_disk(arguments);
  return usage_error("unknown command '" + command + "'");
}

}  // namespace

int main(int argc, char** argv) {
  // Library code reports errors as values; what can still throw is the
  // standard library running out of memory. Say so instead of aborting.
  remove_temporary_outputs_on_signals();
  try {
    return dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "vmlab: internal error: %s\n", error.what());
    return kExitVmmError;
  }
}
