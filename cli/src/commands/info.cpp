// `vmlab info`: the KVM backend, the CPU and the capabilities vmlab uses.
#include <cstdio>

#include "commands.hpp"
#include "vmlab/platform.hpp"

namespace vmlab::cli {

Subcommand add_info_command(CLI::App& vmlab) {
  return add_command_without_options<InfoCommand>(
      vmlab, "info",
      "show the KVM backend, CPU and the capabilities vmlab uses\n"
      "Prints the KVM backend, the CPU, the host kernel, the KVM API version and the "
      "capabilities vmlab uses, and whether a deprivileged kernel's cpuid reaches the VMM.");
}

int execute(const InfoCommand& /*command*/) {
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
