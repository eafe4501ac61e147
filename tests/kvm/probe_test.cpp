// vmlab probe: the x86 holes must show where they exist and nowhere else.
#include "vmlab/probe.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "../support/kvm_available.hpp"
#include "vmlab/cli_error.hpp"
#include "vmlab/reference.hpp"

namespace vmlab {
namespace {

TEST(ProbeLines, Parse) {
  std::vector<std::string> order;
  auto values = parse_probe_lines({"VMLAB-BOOT entry=pvh", "VMLAB-PROBE sgdt base=0x1,limit=0x7",
                                   "VMLAB-PROBE pushf-after-cli if=0", "VMLAB-PROBE broken"},
                                  &order);
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(values["sgdt"], "base=0x1,limit=0x7");
  EXPECT_EQ(values["pushf-after-cli"], "if=0");
  EXPECT_EQ(order, (std::vector<std::string>{"sgdt", "pushf-after-cli"}));
  EXPECT_TRUE(umip_covers("smsw"));
  EXPECT_FALSE(umip_covers("mov-from-cs"));
}

const ProbeColumn& column(const ProbeMatrix& matrix, const std::string& name) {
  for (const auto& candidate : matrix.columns) {
    if (candidate.name == name) return candidate;
  }
  throw std::runtime_error("no column " + name);
}

TEST(ProbeMatrix, HolesShowInFullOnlyAndUmipClosesItsShare) {
  VMLAB_REQUIRE_KVM();
  auto matrix = run_probe_matrix();
  ASSERT_TRUE(matrix.ok()) << matrix.error().message;
  ASSERT_EQ(matrix->columns.size(), 7u) << "QEMU, hvm, full, full+umip, bt, bt+umip, para";
  const auto& para = column(*matrix, "para");
  ASSERT_TRUE(para.unavailable.empty()) << para.unavailable;
  for (const auto& [probe, value] : para.values) {
    if (vmm_defined_value(probe)) continue;  // cpuid runs for real, to show the hole
    EXPECT_EQ(para.substitutes.count(probe), 1u) << "para states what replaces " << probe;
  }
  const auto& hvm = column(*matrix, "hvm");
  const auto& full = column(*matrix, "full");
  const auto& umip = column(*matrix, "full+umip");
  ASSERT_TRUE(full.unavailable.empty()) << full.unavailable;
  ASSERT_TRUE(umip.unavailable.empty()) << umip.unavailable;
  const auto& native = column(*matrix, "native (QEMU)");
  // The reference: QEMU where installed (the suite's setup installs it).
  const auto& reference = native.unavailable.empty() ? native : hvm;
  if (native.unavailable.empty()) {
    for (const auto& [probe, value] : hvm.values) {
      if (vmm_defined_value(probe)) continue;  // QEMU's CPUID leaves are its own
      EXPECT_EQ(value, native.values.at(probe)) << "hvm runs the kernel at CPL0: " << probe;
    }
  }
  // Deprivileged, the kernel sees the real IF and the monitor's tables.
  for (const char* hole :
       {"pushf-after-cli", "popf-clears-if", "sgdt", "sidt", "mov-from-cs", "mov-from-ss"}) {
    EXPECT_NE(full.values.at(hole), reference.values.at(hole)) << hole << " should diverge in full";
  }
  EXPECT_EQ(reference.values.at("pushf-after-cli"), "if=0");
  EXPECT_EQ(full.values.at("pushf-after-cli"), "if=1");
  // UMIP makes sgdt/sidt/str fault, and the monitor answers from the virtual CPU.
  for (const char* closed : {"sgdt", "sidt", "str", "sldt", "smsw"}) {
    EXPECT_EQ(umip.values.at(closed), reference.values.at(closed)) << closed;
  }
  for (const char* open : {"pushf-after-cli", "popf-clears-if", "mov-from-cs"}) {
    EXPECT_NE(umip.values.at(open), reference.values.at(open)) << open << " is not UMIP's";
  }
}

// bt translates every sensitive instruction of the kernel: pushf/popf, the
// segment reads, sgdt and the rest, lar/lsl/verr/verw and cpuid all give the
// native answer, with CR4.UMIP or without, on every host (cpuid is a call-out
// answered from the VMM's leaves, whether or not this host intercepts it).
TEST(ProbeMatrix, BtClosesEveryHoleWithAndWithoutUmip) {
  VMLAB_REQUIRE_KVM();
  auto matrix = run_probe_matrix();
  ASSERT_TRUE(matrix.ok()) << matrix.error().message;
  const auto& native = column(*matrix, "native (QEMU)");
  const auto& hvm = column(*matrix, "hvm");
  const auto& reference = native.unavailable.empty() ? native : hvm;
  for (const char* name : {"bt", "bt+umip"}) {
    const auto& bt = column(*matrix, name);
    ASSERT_TRUE(bt.unavailable.empty()) << name << ": " << bt.unavailable;
    EXPECT_EQ(bt.values.size(), reference.values.size() + reference.notes.size())
        << name << " runs every probe";
    for (const auto& [probe, value] : bt.values) {
      if (auto vmm = vmm_defined_value(probe)) {
        EXPECT_EQ(value, *vmm) << name << ": " << probe;
      } else if (auto expected = reference.values.find(probe); expected != reference.values.end()) {
        EXPECT_EQ(value, expected->second) << name << ": " << probe;
      } else {
        EXPECT_EQ(reference.notes.count(probe), 1u) << "the reference has no " << probe;
      }
    }
  }
  std::ostringstream printed;
  print_probe_matrix(*matrix, printed);
  EXPECT_NE(printed.str().find("bt: 0 divergent cells"), std::string::npos) << printed.str();
}

// CPUID at the kernel's level: at CPL0 the VM's leaves; at CPL3 the VM's only
// where the host intercepts it (PLATFORM.md "Hosts differ"), which the
// matrix measures and prints beside what the platform check predicts.
TEST(ProbeMatrix, CpuidAtCpl3ShowsWhatThisHostDoes) {
  VMLAB_REQUIRE_KVM();
  auto matrix = run_probe_matrix();
  ASSERT_TRUE(matrix.ok()) << matrix.error().message;
  const auto& hvm = column(*matrix, "hvm");
  for (const char* probe : {"cpuid-signature", "cpuid-0x40000001"}) {
    ASSERT_EQ(hvm.values.count(probe), 1u) << probe;
    EXPECT_EQ(hvm.values.at(probe), vmm_defined_value(probe)) << "CPL0 sees the VMM's " << probe;
  }
  // What a CPL3 kernel sees is measured, not assumed: the platform's
  // prediction (PlatformTest.SaysWhoAnswersCpuidAtUserLevel) is printed
  // beside it, so a host of a new kind fails no test: the output says so.
  for (const char* name : {"full", "para"}) {
    const auto& deprivileged = column(*matrix, name);
    ASSERT_TRUE(deprivileged.unavailable.empty()) << name << ": " << deprivileged.unavailable;
    ASSERT_TRUE(saw_vmm_cpuid(deprivileged).has_value()) << name << " ran no cpuid probe";
  }
  const bool full_saw_vmm = *saw_vmm_cpuid(column(*matrix, "full"));
  EXPECT_EQ(*saw_vmm_cpuid(column(*matrix, "para")), full_saw_vmm)
      << "both kernels run at CPL3 on the same host";
  EXPECT_EQ(column(*matrix, "full").values.at("cpuid-signature"),
            column(*matrix, "para").values.at("cpuid-signature"));
  std::ostringstream printed;
  print_probe_matrix(*matrix, printed);
  EXPECT_NE(printed.str().find("CPUID intercepted at CPL3 on this host: " +
                               matrix->cpuid_interception_line),
            std::string::npos)
      << printed.str();
  EXPECT_NE(printed.str().find(std::string("full's kernel at CPL3 saw ") +
                               (full_saw_vmm ? "the VMM's" : "the host's")),
            std::string::npos)
      << printed.str();
}

TEST(ReferenceMachine, ReportsMissingQemuOrRuns) {
  if (!reference_machine_available()) {
    auto run = run_reference_machine({}, "workload=hello");
    ASSERT_FALSE(run.ok());
    EXPECT_EQ(run.error().kind, CliError::kReferenceUnavailable);
    EXPECT_NE(run.error().message.find("apt-get install qemu-system-x86"), std::string::npos);
    return;
  }
  const std::vector<std::uint8_t> not_an_elf(64, 0);
  auto run = run_reference_machine(not_an_elf, "workload=hello", 30);
  ASSERT_FALSE(run.ok()) << "QEMU cannot boot garbage";
  EXPECT_EQ(run.error().kind, CliError::kReferenceFailed) << run.error().message;
  EXPECT_NE(run.error().message.find("qemu-system-x86_64 failed: "), std::string::npos)
      << run.error().message;
}

}  // namespace
}  // namespace vmlab
