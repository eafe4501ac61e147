#include "vmlab/platform.hpp"

#include <linux/kvm.h>
#include <sys/utsname.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "vmlab/kvm.hpp"

namespace vmlab {

std::string detect_backend(const std::string& sysfs_module_root) {
  // More than one may be loaded on odd hosts; a software backend wins because
  // it is what /dev/kvm is bound to when the hardware extensions are absent.
  for (const char* module : {"kvm_pvm", "kvm_intel", "kvm_amd"}) {
    if (std::filesystem::exists(std::filesystem::path(sysfs_module_root) / module)) return module;
  }
  return "unknown";
}

std::string detect_cpu_model(const std::string& cpuinfo_path) {
  std::ifstream cpuinfo(cpuinfo_path);
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) {
        auto value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        return value;
      }
    }
  }
  return "unknown CPU";
}

bool cpu_has_flag(const std::string& cpuinfo_path, const std::string& flag) {
  std::ifstream cpuinfo(cpuinfo_path);
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) return false;
    std::istringstream words(line.substr(colon + 1));
    std::string word;
    while (words >> word) {
      if (word == flag) return true;
    }
    return false;  // the first CPU's flags speak for all of them
  }
  return false;
}

void classify_cpuid_at_user_level(PlatformInfo& info) {
  if (info.backend == "kvm_intel" || info.backend == "kvm_amd") {
    info.cpuid_at_user_level = CpuidAtUserLevel::Intercepted;
    info.cpuid_at_user_level_reason = "VT-x and AMD-V make CPUID exit at every privilege level";
  } else if (info.backend == "kvm_pvm") {
    info.cpuid_at_user_level =
        info.cpuid_fault_flag ? CpuidAtUserLevel::Intercepted : CpuidAtUserLevel::HostAnswers;
    info.cpuid_at_user_level_reason =
        info.cpuid_fault_flag
            ? "kvm_pvm runs CPL3 guest code on the host CPU, and this host has CPUID "
              "faulting (cpuid_fault)"
            : "kvm_pvm runs CPL3 guest code on the host CPU, and this host has no CPUID "
              "faulting (no cpuid_fault in /proc/cpuinfo): a deprivileged kernel's cpuid "
              "returns the host's leaves";
  } else {
    info.cpuid_at_user_level = CpuidAtUserLevel::Unknown;
    info.cpuid_at_user_level_reason = "unrecognized KVM backend";
  }
}

std::string PlatformInfo::cpuid_interception_line() const {
  switch (cpuid_at_user_level) {
    case CpuidAtUserLevel::Intercepted:
      return "yes: " + cpuid_at_user_level_reason;
    case CpuidAtUserLevel::HostAnswers:
      return "no: " + cpuid_at_user_level_reason;
    case CpuidAtUserLevel::Unknown:
      break;
  }
  return "unknown: " + cpuid_at_user_level_reason;
}

namespace {
std::string describe_backend(const std::string& backend) {
  if (backend == "kvm_pvm") return "software KVM backend (PVM), no VT-x/AMD-V";
  if (backend == "kvm_intel") return "Intel VT-x";
  if (backend == "kvm_amd") return "AMD-V (SVM)";
  return "unrecognized KVM backend";
}
}  // namespace

std::string PlatformInfo::one_line() const {
  return "platform: " + backend + " (" + backend_description + ") on " + cpu_model + ", Linux " +
         host_kernel;
}

PlatformInfo detect_platform(const std::string& kvm_path, const std::string& sysfs_module_root,
                             const std::string& cpuinfo_path) {
  PlatformInfo info;
  info.backend = detect_backend(sysfs_module_root);
  info.backend_description = describe_backend(info.backend);
  info.cpu_model = detect_cpu_model(cpuinfo_path);
  info.cpuid_fault_flag = cpu_has_flag(cpuinfo_path, "cpuid_fault");
  classify_cpuid_at_user_level(info);
  utsname names{};
  info.host_kernel = uname(&names) == 0 ? names.release : "unknown";

  auto kvm = Kvm::open(kvm_path);
  if (!kvm) {
    info.kvm_error = kvm.error().message;
    return info;
  }
  info.api_version = kvm->api_version();
  const Capability wanted[] = {
      {"IRQCHIP", KVM_CAP_IRQCHIP, 0, "--irqchip kernel (in-kernel PIC/IOAPIC/LAPIC)"},
      {"PIT2", KVM_CAP_PIT2, 0, "--irqchip kernel (in-kernel 8254)"},
      {"IRQFD", KVM_CAP_IRQFD, 0, "device interrupts without a VMM exit"},
      {"IOEVENTFD", KVM_CAP_IOEVENTFD, 0, "device notifications without a VMM exit"},
      {"IMMEDIATE_EXIT", KVM_CAP_IMMEDIATE_EXIT, 0, "kicking a vCPU out of KVM_RUN"},
      {"SET_TSS_ADDR", KVM_CAP_SET_TSS_ADDR, 0, "VT-x real-mode TSS"},
      {"BINARY_STATS_FD", KVM_CAP_BINARY_STATS_FD, 0, "exit counts handled inside KVM"},
      {"SET_GUEST_DEBUG", KVM_CAP_SET_GUEST_DEBUG, 0, "single-stepping"},
      {"USER_MEMORY", KVM_CAP_USER_MEMORY, 0, "guest RAM and device windows"},
      {"NR_MEMSLOTS", KVM_CAP_NR_MEMSLOTS, 0, "memory slots"},
      {"SYNC_REGS", KVM_CAP_SYNC_REGS, 0, "guest RIP in trace events without an ioctl"},
  };
  for (auto capability : wanted) {
    capability.value = kvm->check_extension(capability.id);
    info.capabilities.push_back(capability);
  }
  return info;
}

}  // namespace vmlab
