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

TEST_F(PlatformTest, MissingKvmDeviceIsExplained) {
  auto info = detect_platform((root / "no-kvm").string(), (root / "module").string(),
                              (root / "missing").string());
  EXPECT_EQ(info.api_version, 0);
  EXPECT_NE(info.kvm_error.find("does not exist"), std::string::npos) << info.kvm_error;
  EXPECT_NE(info.one_line().find("unknown"), std::string::npos);
}

}  // namespace
}  // namespace vmlab
