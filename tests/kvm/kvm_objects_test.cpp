// The KVM owners and the stats reader against the real /dev/kvm.
#include <gtest/gtest.h>

#include <cerrno>

#include "../support/kvm_available.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/kvm_stats.hpp"

namespace vmlab {
namespace {

TEST(KvmObjects, OwnersMoveTheirDescriptors) {
  VMLAB_REQUIRE_KVM();
  auto kvm = Kvm::open();
  ASSERT_TRUE(kvm.ok());
  EXPECT_EQ(kvm->api_version(), KVM_API_VERSION);
  auto vm = kvm->create_vm();
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  const int vm_fd = vm->fd();
  Vm moved_vm = std::move(*vm);
  EXPECT_EQ(moved_vm.fd(), vm_fd);
  auto vcpu = moved_vm.create_vcpu(0);
  ASSERT_TRUE(vcpu.ok()) << vcpu.error().message;
  Vcpu moved = std::move(*vcpu);
  EXPECT_EQ(vcpu->fd(), -1);
  EXPECT_GE(moved.fd(), 0);
  auto special = moved.special_registers();
  ASSERT_TRUE(special.ok());
}

TEST(KvmObjects, MissingDeviceIsExplained) {
  auto kvm = Kvm::open("/nonexistent/kvm");
  ASSERT_FALSE(kvm.ok());
  EXPECT_EQ(kvm.error().kind, KvmError::kDeviceMissing);
  EXPECT_EQ(kvm.error().system_errno, ENOENT);
  EXPECT_NE(kvm.error().message.find("load the KVM module"), std::string::npos) << "says the fix";
}

TEST(KvmObjects, StatsReaderOnTheRealFd) {
  VMLAB_REQUIRE_KVM();
  auto kvm = Kvm::open();
  auto vm = kvm->create_vm();
  ASSERT_TRUE(vm.ok());
  auto vcpu = vm->create_vcpu(0);
  ASSERT_TRUE(vcpu.ok());
  auto fd = vcpu->stats_fd();
  if (!fd.ok() && kvm->check_extension(KVM_CAP_BINARY_STATS_FD) == 0) {
    GTEST_SKIP() << "this KVM has no binary stats (KVM_CAP_BINARY_STATS_FD)";
  }
  ASSERT_TRUE(fd.ok()) << fd.error().message;
  auto reader = StatsReader::open(fd->get());
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  bool has_exits = false;
  for (const auto& descriptor : reader->descriptors()) {
    EXPECT_FALSE(descriptor.name.empty());
    has_exits |= descriptor.name == "exits";
  }
  EXPECT_TRUE(has_exits) << "every x86 KVM counts vCPU exits";
  auto snapshot = reader->read();
  ASSERT_TRUE(snapshot.ok()) << snapshot.error().message;
  EXPECT_EQ(snapshot->values.size(), reader->descriptors().size());
}

}  // namespace
}  // namespace vmlab
