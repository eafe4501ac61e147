#include "vmlab/compare.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/reference.hpp"

namespace vmlab {

namespace {

std::string format_rate(double value) {
  char text[32];
  if (value >= 100000) {
    std::snprintf(text, sizeof text, "%.0f", value);
  } else if (value >= 100) {
    std::snprintf(text, sizeof text, "%.1f", value);
  } else {
    std::snprintf(text, sizeof text, "%.2f", value);
  }
  return text;
}

std::string json_string(const std::string& text) {
  std::string quoted = "\"";
  for (char character : text) {
    if (character == '"' || character == '\\') quoted += '\\';
    if (static_cast<unsigned char>(character) >= 0x20) quoted += character;
  }
  return quoted + "\"";
}

CompareRow make_row(const WorkloadRequest& workload, const Configuration& configuration,
                    Result<GuestRun> run) {
  CompareRow row;
  row.workload = workload;
  row.configuration = configuration;
  if (!run) {
    row.failure = run.error().message;
    return row;
  }
  row.run = std::move(*run);
  const auto& report = row.run.report;
  if (report.outcome != RunOutcome::GuestExited) {
    row.failure = report.message;
    return row;
  }
  if (!row.run.result || row.run.result->field("status") != "ok" || report.exit_value != 0) {
    row.failure = row.run.result ? "guest reported " + row.run.result->line
                                 : "the guest printed no result line";
    return row;
  }
  row.ok = true;
  const auto& result = *row.run.result;
  const double operations = static_cast<double>(std::max<std::uint64_t>(1, result.number("n")));
  row.cycles = result.number("cycles");
  row.cycles_per_op = static_cast<double>(row.cycles) / operations;
  row.vm_exits_per_op = static_cast<double>(row.run.vm_exits()) / operations;
  row.kvm_exits_per_op = static_cast<double>(report.kvm_stats.value("exits")) / operations;
  row.monitor_traps_per_op = static_cast<double>(row.run.monitor_traps) / operations;
  row.hypercalls_per_op = static_cast<double>(row.run.hypercalls) / operations;
  row.has_monitor = configuration.cpu != "hvm";

  std::uint64_t total = row.run.halted_ns;
  for (auto time : row.run.level_time_ns)
    total += time;
  if (total != 0) {
    auto share = [&](PrivilegeLevel level) {
      return 100.0 * static_cast<double>(row.run.level_time_ns[static_cast<std::size_t>(level)]) /
             static_cast<double>(total);
    };
    row.user_share_at_exit = share(PrivilegeLevel::GuestUser);
    row.kernel_share_at_exit = share(PrivilegeLevel::GuestKernel);
    row.guest_share =
        row.user_share_at_exit + row.kernel_share_at_exit + share(PrivilegeLevel::Unknown);
    row.monitor_share = share(PrivilegeLevel::Monitor);
    row.vmm_share = share(PrivilegeLevel::Vmm);
    row.halted_share = 100.0 * static_cast<double>(row.run.halted_ns) / static_cast<double>(total);
  }
  return row;
}

// A QEMU TCG row: the guest image and command line a KVM run would get,
// booted by QEMU; its result line judged as a KVM run's is. QEMU has the ATA
// disk (-M pc) and virtio-blk (-M microvm, whose 8259 reaches no CPU: the
// guest polls, disk-irq=0, reference.hpp); run_comparison asks no other.
CompareRow run_qemu_row(const WorkloadRequest& workload, const Configuration& configuration,
                        const RunOptions& run_options) {
  CompareRow row;
  row.workload = workload;
  row.configuration = configuration;
  row.emulator = true;
  if (!reference_machine_available()) {
    row.failure = "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
    return row;
  }
  std::string command_line = command_line_for(run_options);
  std::optional<ReferenceDisk> disk;
  if (configuration.disk_model == "ata") {
    disk = ReferenceDisk{run_options.disk_path, ReferenceDiskModel::Ata};
  } else if (configuration.disk_model == "virtio") {
    disk = ReferenceDisk{run_options.disk_path, ReferenceDiskModel::Virtio};
    command_line += " disk-irq=0";
  }
  const auto started = std::chrono::steady_clock::now();
  auto reference =
      run_reference_machine(builtin_guest_image(), command_line, run_options.timeout_seconds, disk);
  if (!reference) {
    row.failure = reference.error().message;
    return row;
  }
  GuestRun& run = row.run;
  run.command_line = command_line;
  run.debug_lines = reference->debug_lines;
  for (const auto& line : run.debug_lines) {
    if (auto result = parse_result_line(line)) run.result = std::move(result);
  }
  run.report.wall_time = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now() - started);
  // isa-debug-exit makes QEMU's status (value << 1) | 1.
  if (reference->exit_status < 0 || (reference->exit_status & 1) == 0) {
    row.failure = "QEMU ended with status " + std::to_string(reference->exit_status) +
                  " without the guest's exit port";
    return row;
  }
  run.report.outcome = RunOutcome::GuestExited;
  run.report.exit_value = static_cast<std::uint32_t>(reference->exit_status >> 1);
  if (!run.result || run.result->field("status") != "ok" || run.report.exit_value != 0) {
    row.failure =
        run.result ? "guest reported " + run.result->line : "the guest printed no result line";
    return row;
  }
  row.ok = true;
  row.cycles = run.result->number("cycles");
  row.cycles_per_op = static_cast<double>(row.cycles) /
                      static_cast<double>(std::max<std::uint64_t>(1, run.result->number("n")));
  return row;
}

}  // namespace

std::string Configuration::label() const {
  std::string text = irqchip == IrqchipModel::Kernel ? cpu + "+kirq" : cpu;
  return disk_model.empty() ? text : text + "/" + disk_model;
}

std::vector<WorkloadRequest> default_disk_workloads() {
  return {{"disk-write", 256}, {"disk-read", 256}, {"disk-verify", 128}};
}

namespace {

// A list of choices as CompareOptions holds it: the names, once each is known
// to be one of `choices`.
template <typename Value>
Result<std::vector<std::string>> parse_name_list(std::span<const Choice<Value>> choices,
                                                 const std::string& text) {
  if (auto values = parse_choice_list(choices, text); !values) return values.error();
  std::vector<std::string> names;
  for (const auto item : split_list(text))
    names.emplace_back(item);
  return names;
}

}  // namespace

Result<std::vector<std::string>> parse_disk_model_list(const std::string& text) {
  return parse_name_list(disk_model_choices(), text);
}

namespace {

// --cpu's choices for compare: the CPU modes, then QEMU.
std::span<const Choice<std::string_view>> compare_cpu_choices() {
  static const std::vector<Choice<std::string_view>> choices = [] {
    std::vector<Choice<std::string_view>> all(cpu_mode_choices().begin(), cpu_mode_choices().end());
    all.push_back(
        {kQemuTcg, kQemuTcg, "QEMU's software emulation (TCG) of the same image and command line"});
    return all;
  }();
  return choices;
}

}  // namespace

Result<std::vector<std::string>> parse_cpu_mode_list(const std::string& text) {
  return parse_name_list(compare_cpu_choices(), text);
}

std::vector<WorkloadRequest> default_compare_workloads() {
  // Sized to finish in well under two minutes on a kvm_pvm host for every
  // configuration together. compute and kernel-compute run the same rounds,
  // so their rows compare user code with kernel code at the same n; hvm on
  // kvm_pvm emulates kernel code, about 6 s for a million rounds.
  return {{"hello", 1},
          {"syscalls", 5000},
          {"pagefaults", 1000},
          {"compute", 1'000'000},
          {"kernel-compute", 1'000'000},
          {"cli-sti", 5000},
          {"pio", 5000},
          {"timer", 20}};
}

Result<std::vector<WorkloadRequest>> parse_workload_list(const std::string& text) {
  std::vector<WorkloadRequest> requests;
  for (const auto item : split_list(text)) {
    auto selection = parse_workload_selection(item);
    if (!selection) return selection.error();
    if (auto known = check_workload_name(selection->name); !known) return known.error();
    // The table divides by N.
    if (selection->count == std::uint64_t{0}) {
      return Error{CliError::kInvalidValue,
                   "bad count in '" + std::string(item) + "': use NAME:N with N > 0"};
    }
    requests.push_back({selection->name,
                        selection->count.value_or(find_workload(selection->name)->default_count)});
  }
  if (requests.empty()) return Error{CliError::kInvalidValue, "the workload list is empty"};
  return requests;
}

Status check_compare_options(const CompareOptions& options) {
  if (auto memory = check_memory_size(options.memory_size); !memory) {
    return with_context("--mem", memory.error());
  }
  if (auto timeout = timeout_duration(options.timeout_seconds); !timeout) {
    return with_context("--timeout", timeout.error());
  }
  for (const auto& cpu : options.cpus) {
    if (auto mode = parse_choice(compare_cpu_choices(), cpu); !mode) {
      return with_context("--cpu", mode.error());
    }
  }
  for (const auto& model : options.disk_models) {
    if (auto known = parse_choice(disk_model_choices(), model); !known) {
      return with_context("--disk-model", known.error());
    }
  }
  return {};
}

Result<Comparison> run_comparison(const CompareOptions& options, const CompareProgress& progress) {
  if (auto valid = check_compare_options(options); !valid) return valid.error();
  const auto workloads = !options.workloads.empty()     ? options.workloads
                         : !options.disk_models.empty() ? default_disk_workloads()
                                                        : default_compare_workloads();
  const auto cpus = options.cpus.empty() ? available_cpu_modes() : options.cpus;
  const auto irqchips = options.irqchips.empty()
                            ? std::vector<IrqchipModel>{IrqchipModel::Vmm, IrqchipModel::Kernel}
                            : options.irqchips;
  std::vector<Configuration> configurations;
  for (const auto& cpu : cpus) {
    for (auto irqchip : irqchips) {
      // The software modes deliver interrupts themselves, from the VMM's PIC;
      // QEMU has its own.
      if (cpu != "hvm" && irqchip == IrqchipModel::Kernel) continue;
      if (options.disk_models.empty()) {
        configurations.push_back({cpu, irqchip, ""});
      } else {
        for (const auto& model : options.disk_models) {
          // QEMU has no passthrough device of vmlab's: said under the table.
          if (cpu == kQemuTcg && model == "passthrough") continue;
          configurations.push_back({cpu, irqchip, model});
        }
      }
    }
  }

  // /dev/kvm itself unusable is not a failure of every row: stop and say so
  // (with the core's kind), before the first run.
  if (auto kvm = Kvm::open(); !kvm) return kvm.error();

  // One scratch image for every disk run: each disk workload writes before
  // it reads, or reads what the previous one wrote. Registered before it is
  // made, so no moment exists where a signal would leave it behind.
  std::optional<ScratchFile> scratch_image;
  if (!options.disk_models.empty()) {
    scratch_image.emplace((std::filesystem::temp_directory_path() /
                           ("vmlab-compare-" + std::to_string(::getpid()) + ".img"))
                              .string());
    if (auto created = devices::create_raw_image(scratch_image->path(), 64 * MiB, true); !created) {
      return created.error();
    }
  }

  Comparison comparison;
  comparison.platform_line = detect_platform().one_line();
  const std::size_t total = workloads.size() * configurations.size();
  for (const auto& workload : workloads) {
    for (const auto& configuration : configurations) {
      const std::size_t index = comparison.rows.size();
      if (progress) {
        progress(
            index, total, nullptr,
            configuration.label() + ": " + workload.name + " n=" + std::to_string(workload.count));
      }
      RunOptions run_options;
      run_options.cpu = configuration.cpu;
      run_options.irqchip = configuration.irqchip;
      run_options.workload = workload.name;
      run_options.count = workload.count;
      run_options.memory_size = options.memory_size;
      run_options.timeout_seconds = options.timeout_seconds;
      if (!configuration.disk_model.empty()) {
        run_options.disk_path = scratch_image->path();
        run_options.disk_model = configuration.disk_model;
      }
      if (configuration.cpu == kQemuTcg) {
        comparison.rows.push_back(run_qemu_row(workload, configuration, run_options));
      } else {
        comparison.rows.push_back(make_row(workload, configuration, run_guest(run_options)));
      }
      if (progress) progress(index + 1, total, &comparison.rows.back(), "");
    }
  }
  for (auto& row : comparison.rows) {
    if (!row.ok) continue;
    for (const auto& baseline : comparison.rows) {
      if (baseline.ok && baseline.workload.name == row.workload.name &&
          baseline.configuration.cpu == "hvm" &&
          baseline.configuration.irqchip == IrqchipModel::Vmm &&
          baseline.configuration.disk_model == row.configuration.disk_model &&
          baseline.cycles_per_op > 0) {
        row.relative_to_hvm = row.cycles_per_op / baseline.cycles_per_op;
      }
    }
  }
  return comparison;
}

namespace {

// bt rows: what the translator did over the whole run (boot included).
void print_translation_table(const Comparison& comparison, std::ostream& out) {
  const bool any =
      std::any_of(comparison.rows.begin(), comparison.rows.end(),
                  [](const CompareRow& row) { return row.run.translation.has_value(); });
  if (!any) return;
  char line[256];
  out << "\ntranslation (bt rows, whole run):\n";
  std::snprintf(line, sizeof line, "%-14s %-15s %8s %9s %9s %8s %8s %8s %10s\n", "workload",
                "config", "blocks", "insns", "TC bytes", "chained", "misses", "invalid",
                "call-outs");
  out << line;
  for (const auto& row : comparison.rows) {
    if (!row.ok || !row.run.translation) continue;
    const bt::Statistics& statistics = *row.run.translation;
    std::uint64_t call_outs = 0;
    for (const auto& [mnemonic, count] : statistics.call_outs)
      call_outs += count;
    std::snprintf(line, sizeof line, "%-14s %-15s %8llu %9llu %9llu %8llu %8llu %8llu %10llu\n",
                  row.workload.name.c_str(), row.configuration.label().c_str(),
                  static_cast<unsigned long long>(statistics.blocks_translated),
                  static_cast<unsigned long long>(statistics.guest_instructions_translated),
                  static_cast<unsigned long long>(statistics.tc_bytes_used),
                  static_cast<unsigned long long>(statistics.chained_branches),
                  static_cast<unsigned long long>(statistics.lookup_misses),
                  static_cast<unsigned long long>(statistics.blocks_invalidated),
                  static_cast<unsigned long long>(call_outs));
    out << line;
  }
  out << "blocks/insns/TC bytes: what the translator produced; chained: direct branches patched\n"
         "to jump block to block; misses: indirect branches whose target was not in the TC's\n"
         "lookup table; invalid: blocks dropped because the guest wrote their code; call-outs:\n"
         "instructions the monitor carried out (each is one of the traps above).\n";
}

void write_translation_json(const bt::Statistics& statistics, std::ostream& out) {
  out << ", \"translation\": {\"blocks\": " << statistics.blocks_translated
      << ", \"guest_instructions\": " << statistics.guest_instructions_translated
      << ", \"tc_bytes\": " << statistics.tc_bytes_used
      << ", \"branch_exits\": " << statistics.branch_exits
      << ", \"chained\": " << statistics.chained_branches
      << ", \"lookup_misses\": " << statistics.lookup_misses
      << ", \"blocks_invalidated\": " << statistics.blocks_invalidated
      << ", \"flushes\": " << statistics.flushes << ", \"call_outs\": {";
  bool first = true;
  for (const auto& [mnemonic, count] : statistics.call_outs) {
    out << (first ? "" : ", ") << json_string(mnemonic) << ": " << count;
    first = false;
  }
  out << "}}";
}

}  // namespace

void print_comparison(const Comparison& comparison, std::ostream& out) {
  // The workload column fits the longest built-in name, kernel-compute.
  char line[256];
  std::snprintf(line, sizeof line, "%-14s %9s %-15s %13s %9s %9s %8s %8s %7s %6s %6s %6s %7s\n",
                "workload", "n", "config", "cycles/op", "exits/op", "kvm ex/op", "traps/op",
                "hcalls/op", "guest%", "mon%", "vmm%", "halt%", "vs hvm");
  out << line;
  std::string previous;
  for (const auto& row : comparison.rows) {
    const std::string workload = row.workload.name == previous ? "" : row.workload.name;
    const std::string count =
        row.workload.name == previous ? "" : std::to_string(row.workload.count);
    previous = row.workload.name;
    if (!row.ok) {
      std::snprintf(line, sizeof line, "%-14s %9s %-15s failed: %s\n", workload.c_str(),
                    count.c_str(), row.configuration.label().c_str(), row.failure.c_str());
      out << line;
      continue;
    }
    char relative[16] = "-";
    if (row.relative_to_hvm) {
      // Two significant digits below 0.1 (QEMU's system calls are 0.003x hvm's here).
      std::snprintf(relative, sizeof relative, *row.relative_to_hvm < 0.1 ? "%.2gx" : "%.2fx",
                    *row.relative_to_hvm);
    }
    if (row.emulator) {
      // No VM: nothing exits, and QEMU's time is not split by level.
      std::snprintf(line, sizeof line, "%-14s %9s %-15s %13s %9s %9s %8s %8s %7s %6s %6s %6s %7s\n",
                    workload.c_str(), count.c_str(), row.configuration.label().c_str(),
                    format_rate(row.cycles_per_op).c_str(), "-", "-", "-", "-", "-", "-", "-", "-",
                    relative);
      out << line;
      continue;
    }
    const std::string traps = row.has_monitor ? format_rate(row.monitor_traps_per_op) : "-";
    const std::string hypercalls =
        row.configuration.cpu == "para" ? format_rate(row.hypercalls_per_op) : "-";
    std::snprintf(line, sizeof line,
                  "%-14s %9s %-15s %13s %9s %9s %8s %8s %7.1f %6.1f %6.1f %6.1f %7s\n",
                  workload.c_str(), count.c_str(), row.configuration.label().c_str(),
                  format_rate(row.cycles_per_op).c_str(), format_rate(row.vm_exits_per_op).c_str(),
                  format_rate(row.kvm_exits_per_op).c_str(), traps.c_str(), hypercalls.c_str(),
                  row.guest_share, row.monitor_share, row.vmm_share, row.halted_share, relative);
    out << line;
  }
  out << "\ncycles/op: guest rdtsc per operation. exits/op: VM exits the VMM handled. kvm ex/op:\n"
         "all exits, including those KVM handled in the kernel (vCPU stats). traps/op: monitor\n"
         "traps (software modes only). hcalls/op: para's hypercalls (each is also a VM exit\n"
         "of the monitor's stub, so exits/op = traps + hypercalls + device exits there).\n"
         "guest/mon/vmm/halt: share of wall time with the guest\n"
         "running, in the monitor, in the VMM, halted in hlt (with the in-kernel irqchip KVM\n"
         "sleeps inside KVM_RUN, so halts count as guest time). vs hvm: cycles/op against hvm.\n"
         "hvm+kirq: hvm with KVM's in-kernel PIC/PIT (--irqchip kernel).\n";
  const bool qemu = std::any_of(comparison.rows.begin(), comparison.rows.end(),
                                [](const CompareRow& row) { return row.emulator; });
  if (qemu) {
    out << "qemu-tcg: the same image and command line under QEMU's software emulation (no VM,\n"
           "no exits: every guest instruction is translated, none runs directly); it has no\n"
           "passthrough disk, and its virtio disk is polled (disk-irq=0: microvm's 8259\n"
           "reaches no CPU).\n";
  }
  print_translation_table(comparison, out);
  const bool passthrough = std::any_of(comparison.rows.begin(), comparison.rows.end(),
                                       [](const CompareRow& row) { return row.run.passthrough; });
  if (passthrough) {
    out << "/passthrough: the VM owned the passed-through controller (its registers are memory,\n"
           "its DMA goes through the IOMMU model); such a VM cannot be migrated.\n";
  }
  out << comparison.platform_line << "\n";
}

void write_comparison_json(const Comparison& comparison, std::ostream& out) {
  out << "{\n  \"platform\": " << json_string(comparison.platform_line) << ",\n  \"rows\": [";
  bool first = true;
  for (const auto& row : comparison.rows) {
    out << (first ? "\n" : ",\n") << "    {\"workload\": " << json_string(row.workload.name)
        << ", \"n\": " << row.workload.count << ", \"cpu\": " << json_string(row.configuration.cpu)
        << ", \"irqchip\": "
        << json_string(row.configuration.irqchip == IrqchipModel::Kernel ? "kernel" : "vmm")
        << ", \"disk_model\": " << json_string(row.configuration.disk_model)
        << ", \"ok\": " << (row.ok ? "true" : "false");
    if (row.emulator) out << ", \"emulator\": true";
    first = false;
    if (!row.ok) {
      out << ", \"failure\": " << json_string(row.failure) << "}";
      continue;
    }
    out << ", \"cycles\": " << row.cycles << ", \"cycles_per_op\": " << row.cycles_per_op
        << ", \"vm_exits_per_op\": " << row.vm_exits_per_op
        << ", \"kvm_exits_per_op\": " << row.kvm_exits_per_op
        << ", \"monitor_traps_per_op\": " << row.monitor_traps_per_op
        << ", \"hypercalls_per_op\": " << row.hypercalls_per_op
        << ", \"share_percent\": {\"guest\": " << row.guest_share
        << ", \"guest_user_at_exit\": " << row.user_share_at_exit
        << ", \"guest_kernel_at_exit\": " << row.kernel_share_at_exit
        << ", \"monitor\": " << row.monitor_share << ", \"vmm\": " << row.vmm_share
        << ", \"halted\": " << row.halted_share << "}"
        << ", \"relative_to_hvm\": ";
    if (row.relative_to_hvm) {
      out << *row.relative_to_hvm;
    } else {
      out << "null";
    }
    if (row.run.translation) write_translation_json(*row.run.translation, out);
    out << ", \"result\": " << json_string(row.run.result ? row.run.result->line : "") << "}";
  }
  out << "\n  ]\n}\n";
}

}  // namespace vmlab
