// What vmlab runs on: the KVM backend module, the CPU, the capabilities it uses.
// Every report names the backend and CPU (PLATFORM.md).
#pragma once

#include <string>
#include <vector>

namespace vmlab {

struct Capability {
  const char* name;
  long id;
  int value;  // KVM_CHECK_EXTENSION result; 0 = absent
  const char* used_for;
};

// Who answers `cpuid` executed by guest code at CPL3, where a deprivileged
// kernel (full, para) runs (PLATFORM.md "Hosts differ").
enum class CpuidAtUserLevel {
  Intercepted,  // the VMM's leaves (KVM_SET_CPUID2), as at CPL0
  HostAnswers,  // the host CPU's own leaves: one more x86 hole
  Unknown,
};

struct PlatformInfo {
  std::string backend;  // kvm_intel, kvm_amd, kvm_pvm, or "unknown"
  std::string backend_description;
  std::string cpu_model;
  std::string host_kernel;
  int api_version = 0;    // 0 when /dev/kvm could not be opened
  std::string kvm_error;  // why /dev/kvm is unusable, empty if fine
  std::vector<Capability> capabilities;
  bool cpuid_fault_flag = false;  // "cpuid_fault" among /proc/cpuinfo's flags
  CpuidAtUserLevel cpuid_at_user_level = CpuidAtUserLevel::Unknown;
  std::string cpuid_at_user_level_reason;  // why, in a sentence

  // "yes: ..." / "no: ..." for `vmlab info` and the probe matrix.
  std::string cpuid_interception_line() const;

  // "kvm_pvm (software KVM backend, no VT-x/AMD-V) on Intel(R) Xeon(R) Processor"
  std::string one_line() const;
};

// Detects from /sys/module, /proc/cpuinfo, uname and /dev/kvm. `sysfs_root` and
// `cpuinfo_path` exist for tests.
PlatformInfo detect_platform(const std::string& kvm_path = "/dev/kvm",
                             const std::string& sysfs_module_root = "/sys/module",
                             const std::string& cpuinfo_path = "/proc/cpuinfo");

// The backend module name, from what is loaded under `sysfs_module_root`.
std::string detect_backend(const std::string& sysfs_module_root);
std::string detect_cpu_model(const std::string& cpuinfo_path);
// Whether the first CPU's "flags" line in `cpuinfo_path` has `flag`.
bool cpu_has_flag(const std::string& cpuinfo_path, const std::string& flag);
// From the backend and the host's CPUID faulting flag: VT-x and AMD-V always
// intercept CPUID; kvm_pvm runs CPL3 guest code on the host CPU and can
// intercept it only with CPUID faulting.
void classify_cpuid_at_user_level(PlatformInfo& info);

}  // namespace vmlab
