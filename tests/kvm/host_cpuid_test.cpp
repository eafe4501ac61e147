// Every host, every mode: nothing in the guest may depend on what `cpuid`
// returns at CPL3, because on a kvm_pvm host without CPUID faulting (the AMD
// EPYC hosts, PLATFORM.md "Hosts differ") a deprivileged kernel gets the
// host's leaves, not the VMM's. HypervisorLeaves::Host hands every mode the
// host's own hypervisor leaves, as such a host would show a CPL3 kernel, so
// this runs the AMD case on whichever host the suite has.
#include <gtest/gtest.h>

#include <string>

#include "../support/disk_runs.hpp"
#include "../support/kvm_available.hpp"
#include "vmlab/abi/cpuid.hpp"
#include "vmlab/probe.hpp"
#include "vmlab/runner.hpp"

namespace vmlab {
namespace {

using testing::TemporaryImage;

std::string line_starting(const GuestRun& run, const std::string& prefix) {
  for (const auto& line : run.debug_lines) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

class HostCpuid : public ::testing::TestWithParam<const char*> {};

// The kernel learns para from boot_info and the TSC rate for MB/s too.
TEST_P(HostCpuid, GuestBootsAndTimesItsDiskWhateverCpuidSays) {
  VMLAB_REQUIRE_KVM();
  const std::string cpu = GetParam();
  TemporaryImage image;
  RunOptions options;
  options.cpu = cpu;
  options.workload = "disk-write";
  options.count = 32;
  options.disk_path = image.path();
  options.hypervisor_leaves = HypervisorLeaves::Host;
  auto run = run_guest(options);
  ASSERT_TRUE(run.ok()) << run.error().message;
  ASSERT_EQ(run->report.outcome, RunOutcome::GuestExited) << run->report.message << "\n"
                                                          << run->report.registers;
  ASSERT_TRUE(run->result.has_value());
  EXPECT_EQ(run->result->field("status"), "ok") << run->result->line;
  const std::string boot = line_starting(*run, "VMLAB-BOOT ");
  EXPECT_NE(boot.find(cpu == "para" ? " pv=vmlab-para" : " pv=native"), std::string::npos) << boot;
  const std::string disk = line_starting(*run, "VMLAB-DISK ");
  ASSERT_FALSE(disk.empty());
  EXPECT_EQ(disk.find("mbps=unknown"), std::string::npos) << disk;
  if (cpu == "para") {
    EXPECT_GT(run->hypercalls, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryMode, HostCpuid, ::testing::Values("hvm", "full", "bt", "para"));

// The switch does what it says: even at CPL0 the kernel now reads the host's
// leaves, not vmlab's signature.
TEST(HostCpuid, HostLeavesReplaceVmlabsSignature) {
  VMLAB_REQUIRE_KVM();
  RunOptions options;
  options.workload = "probes";
  options.extra_command_line = "probes=no-segment-checks";
  for (const auto leaves : {HypervisorLeaves::Vmlab, HypervisorLeaves::Host}) {
    options.hypervisor_leaves = leaves;
    auto run = run_guest(options);
    ASSERT_TRUE(run.ok()) << run.error().message;
    const auto values = parse_probe_lines(run->debug_lines);
    ASSERT_EQ(values.count("cpuid-signature"), 1u);
    if (leaves == HypervisorLeaves::Vmlab) {
      EXPECT_EQ(values.at("cpuid-signature"), VMLAB_CPUID_SIGNATURE);
    } else {
      EXPECT_NE(values.at("cpuid-signature"), VMLAB_CPUID_SIGNATURE);
    }
  }
}

}  // namespace
}  // namespace vmlab
