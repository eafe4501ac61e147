#include "vmlab/platform.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace vmlab {
namespace {

class PlatformTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = std::filesystem::temp_directory_path() /
           ("vmlab-platform-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(root / "module");
  }
  void TearDown() override { std::filesystem::remove_all(root); }
  std::filesystem::path root;
};

TEST_F(PlatformTest, DetectsEachBackend) {
  EXPECT_EQ(detect_backend((root / "module").string()), "unknown");
  std::filesystem::create_directories(root / "module" / "kvm_intel");
  EXPECT_EQ(detect_backend((root / "module").string()), "kvm_intel");
  std::filesystem::create_directories(root / "module" / "kvm_pvm");
  EXPECT_EQ(detect_backend((root / "module").string()), "kvm_pvm");
  std::filesystem::remove_all(root / "module");
  std::filesystem::create_directories(root / "module" / "kvm_amd");
  EXPECT_EQ(detect_backend((root / "module").string()), "kvm_amd");
}

TEST_F(PlatformTest, ReadsCpuModel) {
  std::ofstream(root / "cpuinfo") << "processor\t: 0\nvendor_id\t: GenuineIntel\n"
                                     "model name\t: Intel(R) Xeon(R) Test CPU @ 2.30GHz\n";
  EXPECT_EQ(detect_cpu_model((root / "cpuinfo").string()), "Intel(R) Xeon(R) Test CPU @ 2.30GHz");
  EXPECT_EQ(detect_cpu_model((root / "missing").string()), "unknown CPU");
}

TEST_F(PlatformTest, FindsCpuidFaultingAmongTheFlags) {
  // An AMD EPYC host (kvm_pvm) had no cpuid_fault; the Intel Xeon one had it.
  std::ofstream(root / "amd") << "processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                                 "flags\t\t: fpu vme de pse tsc msr cpuid_faulty cpuid\n";
  std::ofstream(root / "intel") << "processor\t: 0\nflags\t\t: fpu vme cpuid_fault pti\n"
                                   "processor\t: 1\nflags\t\t: fpu\n";
  EXPECT_FALSE(cpu_has_flag((root / "amd").string(), "cpuid_fault")) << "whole words only";
  EXPECT_TRUE(cpu_has_flag((root / "amd").string(), "cpuid"));
  EXPECT_TRUE(cpu_has_flag((root / "intel").string(), "cpuid_fault"));
  EXPECT_FALSE(cpu_has_flag((root / "missing").string(), "cpuid_fault"));
}

TEST_F(PlatformTest, SaysWhoAnswersCpuidAtUserLevel) {
  PlatformInfo info;
  info.backend = "kvm_pvm";
  info.cpuid_fault_flag = false;
  classify_cpuid_at_user_level(info);
  EXPECT_EQ(info.cpuid_at_user_level, CpuidAtUserLevel::HostAnswers);
  EXPECT_EQ(info.cpuid_interception_line().rfind("no: ", 0), 0u) << info.cpuid_interception_line();
  info.cpuid_fault_flag = true;
  classify_cpuid_at_user_level(info);
  EXPECT_EQ(info.cpuid_at_user_level, CpuidAtUserLevel::Intercepted);
  // Hardware virtualization intercepts CPUID whatever the flags say.
  for (const char* hardware : {"kvm_intel", "kvm_amd"}) {
    info.backend = hardware;
    info.cpuid_fault_flag = false;
    classify_cpuid_at_user_level(info);
    EXPECT_EQ(info.cpuid_at_user_level, CpuidAtUserLevel::Intercepted) << hardware;
  }
  info.backend = "unknown";
  classify_cpuid_at_user_level(info);
  EXPECT_EQ(info.cpuid_at_user_level, CpuidAtUserLevel::Unknown);
}

TEST_F(PlatformTest, MissingKvmDeviceIsExplained) {
  auto info = detect_platform((root / "no-kvm").string(), (root / "module").string(),
                              (root / "missing").string());
  EXPECT_EQ(info.api_version, 0);
  EXPECT_NE(info.kvm_error.find("does not exist"), std::string::npos) << info.kvm_error;
  EXPECT_NE(info.one_line().find("unknown"), std::string::npos);
}

}  // namespace
}  // namespace vmlab
