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

struct PlatformInfo {
  std::string backend;  // kvm_intel, kvm_amd, kvm_pvm, or "unknown"
  std::string backend_description;
  std::string cpu_model;
  std::string host_kernel;
  int api_version = 0;    // 0 when /dev/kvm could not be opened
  std::string kvm_error;  // why /dev/kvm is unusable, empty if fine
  std::vector<Capability> capabilities;

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

}  // namespace vmlab
