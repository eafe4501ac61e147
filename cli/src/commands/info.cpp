// `vmlab info`: the KVM backend, the CPU and the capabilities vmlab uses.
#include <cstdio>

#include "commands.hpp"
#include "vmlab/compare.hpp"
#include "vmlab/options.hpp"
#include "vmlab/platform.hpp"
#include "vmlab/runner.hpp"

namespace vmlab::cli {

namespace {

// One line per value: "# vmlab-choices 1", then OPTION TAB VALUE TAB MEANING,
// a workload with its default count between, and compare's default set of
// workloads as --compare-workload TAB NAME TAB N: what a front end offers
// without parsing --help, always this binary's own.
void print_choices() {
  std::printf("# vmlab-choices 1\n");
  const auto print = [](const char* option, const auto& choices) {
    for (const auto& choice : choices) {
      std::printf("%s\t%.*s\t%.*s\n", option, static_cast<int>(choice.name.size()),
                  choice.name.data(), static_cast<int>(choice.meaning.size()),
                  choice.meaning.data());
    }
  };
  print("--cpu", cpu_mode_choices());
  print("--disk-model", disk_model_choices());
  print("--irqchip", irqchip_choices());
  for (const auto& workload : builtin_workloads()) {
    std::printf("--workload\t%s\t%llu\t%s\n", workload.name,
                static_cast<unsigned long long>(workload.default_count), workload.description);
  }
  for (const auto& workload : default_compare_workloads()) {
    std::printf("--compare-workload\t%s\t%llu\n", workload.name.c_str(),
                static_cast<unsigned long long>(workload.count));
  }
}

}  // namespace

Subcommand add_info_command(CLI::App& vmlab) {
  CLI::App* info =
      add_command(vmlab, "info",
                  "show the KVM backend, CPU and the capabilities vmlab uses\n"
                  "Prints the KVM backend, the CPU, the host kernel, the KVM API version and the "
                  "capabilities vmlab uses, and whether a deprivileged kernel's cpuid reaches the "
                  "VMM.");
  auto command = std::make_shared<InfoCommand>();
  info->add_flag("--choices", command->choices,
                 wrap("instead, list the values of run's and compare's --cpu, --disk-model, "
                      "--irqchip and --workload, tab-separated, one per line (for programs "
                      "such as vmlab-viz)"));
  return parsed_into(info, command);
}

int execute(const InfoCommand& command) {
  if (command.choices) {
    print_choices();
    return 0;
  }
  const PlatformInfo platform = detect_platform();
  std::printf("KVM backend:  %s (%s)\n", platform.backend.c_str(),
              platform.backend_description.c_str());
  std::printf("CPU:          %s\n", platform.cpu_model.c_str());
  std::printf("host kernel:  Linux %s\n", platform.host_kernel.c_str());
  if (!platform.kvm_error.empty()) {
    std::printf("/dev/kvm:     unusable: %s\n", platform.kvm_error.c_str());
    return exit_status::kUnavailable;
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

}  // namespace vmlab::cli
