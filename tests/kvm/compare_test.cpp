// `vmlab compare` on a small set: each table row must agree with its run.
#include "vmlab/compare.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "../support/kvm_available.hpp"
#include "vmlab/cli_error.hpp"
#include "vmlab/reference.hpp"

namespace vmlab {
namespace {

TEST(Compare, ParsesWorkloadLists) {
  auto list = parse_workload_list("syscalls:50,pio,timer:3");
  ASSERT_TRUE(list.ok()) << list.error().message;
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].name, "syscalls");
  EXPECT_EQ((*list)[0].count, 50u);
  EXPECT_EQ((*list)[1].count, find_workload("pio")->default_count);
  EXPECT_FALSE(parse_workload_list("syscalls:0").ok());
  EXPECT_FALSE(parse_workload_list("syscalls:x").ok());
  auto unknown = parse_workload_list("pio,warp");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind, CliError::kInvalidValue);
  EXPECT_NE(unknown.error().message.find("compute"), std::string::npos) << "lists the valid names";
  EXPECT_FALSE(parse_workload_list(",").ok());
}

// The default table has user-mode and kernel-mode rows of the same integer
// mix at the same n, so their cycles per round compare directly.
TEST(Compare, DefaultSetRunsKernelComputeAsCompute) {
  const auto defaults = default_compare_workloads();
  const auto named = [&](const std::string& name) {
    return std::find_if(defaults.begin(), defaults.end(),
                        [&](const WorkloadRequest& request) { return request.name == name; });
  };
  const auto compute = named("compute");
  const auto kernel_compute = named("kernel-compute");
  ASSERT_NE(compute, defaults.end());
  ASSERT_NE(kernel_compute, defaults.end());
  EXPECT_EQ(kernel_compute->count, compute->count);
  EXPECT_EQ(kernel_compute - compute, 1) << "the two rows side by side";
  for (const auto& request : defaults)
    EXPECT_NE(find_workload(request.name), nullptr) << request.name;
}

TEST(Compare, FullRowsCountMonitorTraps) {
  VMLAB_REQUIRE_KVM();
  CompareOptions options;
  options.workloads = {{"cli-sti", 50}};
  auto comparison = run_comparison(options, {});
  ASSERT_TRUE(comparison.ok()) << comparison.error().message;
  ASSERT_EQ(comparison->rows.size(), 5u)
      << "hvm, hvm+kirq, full, bt, para (no monitor mode has a +kirq row)";
  const auto& para = comparison->rows[4];
  ASSERT_TRUE(para.ok) << para.failure;
  EXPECT_EQ(para.configuration.label(), "para");
  EXPECT_EQ(para.run.monitor_traps, 0u) << "the paravirtual cli/sti never trap";
  const auto& full = comparison->rows[2];
  ASSERT_TRUE(full.ok) << full.failure;
  EXPECT_EQ(full.configuration.label(), "full");
  EXPECT_TRUE(full.has_monitor);
  EXPECT_DOUBLE_EQ(full.monitor_traps_per_op, static_cast<double>(full.run.monitor_traps) / 50.0);
  EXPECT_GE(full.monitor_traps_per_op, 2.0) << "cli and sti each trap";
  EXPECT_GT(full.monitor_share, 0.0);
  ASSERT_TRUE(full.relative_to_hvm.has_value());
  EXPECT_GT(*full.relative_to_hvm, 1.0);
  // bt translates cli and sti into stores to the virtual IF: once the loop
  // is translated it makes no trap at all, so the whole run (boot included)
  // traps less often than once per operation, where full traps twice.
  const auto& bt = comparison->rows[3];
  ASSERT_TRUE(bt.ok) << bt.failure;
  EXPECT_EQ(bt.configuration.label(), "bt");
  EXPECT_TRUE(bt.has_monitor);
  EXPECT_LT(bt.run.monitor_traps, full.run.monitor_traps);
}

TEST(Compare, RejectsUnavailableModes) {
  CompareOptions options;
  options.cpus = {"tcg"};
  auto comparison = run_comparison(options, {});
  ASSERT_FALSE(comparison.ok());
  EXPECT_EQ(comparison.error().kind, CliError::kInvalidValue);
  EXPECT_NE(comparison.error().message.find("hvm"), std::string::npos) << "names the valid modes";
}

TEST(Compare, RowsAgreeWithTheirRuns) {
  VMLAB_REQUIRE_KVM();
  CompareOptions options;
  options.workloads = {{"pio", 40}, {"timer", 3}};
  options.cpus = {"hvm"};  // the two hvm configurations; full is checked below
  std::size_t progress_calls = 0, finished_calls = 0;
  auto comparison =
      run_comparison(options, [&](std::size_t done, std::size_t total, const CompareRow* finished,
                                  const std::string& starting) {
        ++progress_calls;
        EXPECT_EQ(total, 4u);
        EXPECT_LE(done, total);
        if (finished != nullptr) {
          ++finished_calls;
        } else {
          EXPECT_FALSE(starting.empty());
        }
      });
  ASSERT_TRUE(comparison.ok()) << comparison.error().message;
  EXPECT_EQ(progress_calls, 8u);
  EXPECT_EQ(finished_calls, 4u);
  ASSERT_EQ(comparison->rows.size(), 4u);
  EXPECT_NE(comparison->platform_line.find("platform: "), std::string::npos);
  for (const auto& row : comparison->rows) {
    ASSERT_TRUE(row.ok) << row.failure;
    ASSERT_TRUE(row.run.result.has_value());
    const double operations = static_cast<double>(row.workload.count);
    EXPECT_EQ(row.run.result->number("n"), row.workload.count);
    EXPECT_EQ(row.cycles, row.run.result->number("cycles"));
    EXPECT_DOUBLE_EQ(row.cycles_per_op, static_cast<double>(row.cycles) / operations);
    std::uint64_t exits = 0;
    for (const auto& [reason, count] : row.run.exits_by_reason)
      exits += count;
    EXPECT_DOUBLE_EQ(row.vm_exits_per_op, static_cast<double>(exits) / operations);
    EXPECT_DOUBLE_EQ(row.kvm_exits_per_op,
                     static_cast<double>(row.run.report.kvm_stats.value("exits")) / operations);
    EXPECT_FALSE(row.has_monitor) << "hvm has no monitor";
    const double shares = row.guest_share + row.monitor_share + row.vmm_share + row.halted_share;
    EXPECT_NEAR(shares, 100.0, 0.5);
    ASSERT_TRUE(row.relative_to_hvm.has_value());
  }
  // Row order: workload-major, then the configurations.
  EXPECT_EQ(comparison->rows[0].workload.name, "pio");
  EXPECT_EQ(comparison->rows[0].configuration.label(), "hvm");
  EXPECT_EQ(comparison->rows[1].configuration.label(), "hvm+kirq");
  EXPECT_DOUBLE_EQ(*comparison->rows[0].relative_to_hvm, 1.0);
  // With the VMM's PIC every PIO read exits to the VMM.
  EXPECT_GE(comparison->rows[0].vm_exits_per_op, 1.0);
  // The VMM-modelled timer sleeps in the VMM; KVM's sleeps inside KVM_RUN.
  // (How much of the run is sleep depends on the load on a shared machine:
  // the check is that it is a large share at all, against none.)
  EXPECT_GT(comparison->rows[2].halted_share, 20.0);
  EXPECT_LT(comparison->rows[3].halted_share, 1.0);

  std::ostringstream table;
  print_comparison(*comparison, table);
  EXPECT_NE(table.str().find("hvm+kirq"), std::string::npos);
  EXPECT_NE(table.str().find("platform: "), std::string::npos);
  std::ostringstream json;
  write_comparison_json(*comparison, json);
  EXPECT_NE(json.str().find("\"workload\": \"timer\""), std::string::npos);
  EXPECT_NE(json.str().find("\"relative_to_hvm\": 1"), std::string::npos);
}

TEST(Compare, ParsesDiskModelLists) {
  auto all = parse_disk_model_list("ata,virtio,passthrough");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<std::string>{"ata", "virtio", "passthrough"}));
  auto bad = parse_disk_model_list("ata,nvme");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind, CliError::kInvalidValue);
  EXPECT_NE(bad.error().message.find("nvme"), std::string::npos);
  EXPECT_FALSE(parse_disk_model_list(",").ok());
}

TEST(Compare, DiskModelsMultiplyTheConfigurations) {
  VMLAB_REQUIRE_KVM();
  CompareOptions options;
  options.workloads = {{"disk-write", 16}};
  options.cpus = {"hvm", "para"};
  options.irqchips = {IrqchipModel::Vmm};
  options.disk_models = {"ata", "virtio", "passthrough"};
  auto comparison = run_comparison(options, {});
  ASSERT_TRUE(comparison.ok()) << comparison.error().message;
  ASSERT_EQ(comparison->rows.size(), 6u);
  EXPECT_EQ(comparison->rows[0].configuration.label(), "hvm/ata");
  EXPECT_EQ(comparison->rows[1].configuration.label(), "hvm/virtio");
  EXPECT_EQ(comparison->rows[2].configuration.label(), "hvm/passthrough");
  EXPECT_EQ(comparison->rows[5].configuration.label(), "para/passthrough");
  for (const auto& row : comparison->rows) {
    ASSERT_TRUE(row.ok) << row.configuration.label() << ": " << row.failure;
    ASSERT_TRUE(row.relative_to_hvm.has_value()) << "compared with hvm on the same model";
  }
  // ATA exits per register access and per word; virtio once per batch (the
  // tenfold margin per KiB is DiskWorkloads' test, free of boot costs).
  EXPECT_GT(comparison->rows[0].vm_exits_per_op, comparison->rows[1].vm_exits_per_op);
  EXPECT_TRUE(comparison->rows[2].run.passthrough);
  std::ostringstream table;
  print_comparison(*comparison, table);
  EXPECT_NE(table.str().find("cannot be migrated"), std::string::npos) << table.str();
}

TEST(Compare, ParsesQemuTcgAsAConfiguration) {
  auto list = parse_cpu_mode_list("hvm,qemu-tcg");
  ASSERT_TRUE(list.ok()) << list.error().message;
  EXPECT_EQ(*list, (std::vector<std::string>{"hvm", kQemuTcg}));
  auto wrong = parse_cpu_mode_list("qemu");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("qemu-tcg"), std::string::npos) << "lists it as a choice";
}

// QEMU TCG beside hvm: the same image and command line, so the same result
// line but for cycles; no VM, so no exits and no level shares; its cost
// against hvm's in the same table.
TEST(Compare, QemuTcgRowsRunTheSameGuest) {
  VMLAB_REQUIRE_KVM();
  if (!reference_machine_available()) {
    GTEST_SKIP() << "needs qemu-system-x86_64 (apt-get install qemu-system-x86)";
  }
  CompareOptions options;
  options.workloads = {{"syscalls", 200}, {"disk-verify", 16}};
  options.cpus = {"hvm", kQemuTcg};
  options.irqchips = {IrqchipModel::Vmm};
  options.disk_models = {"ata", "passthrough"};
  auto comparison = run_comparison(options, {});
  ASSERT_TRUE(comparison.ok()) << comparison.error().message;
  // hvm/ata, hvm/passthrough, qemu-tcg/ata per workload: QEMU has no passthrough disk.
  ASSERT_EQ(comparison->rows.size(), 6u);
  auto without_cycles = [](const std::string& line) {
    std::string text;
    for (std::size_t start = 0; start < line.size();) {
      std::size_t end = std::min(line.find(' ', start), line.size());
      std::string field = line.substr(start, end - start);
      if (field.rfind("cycles=", 0) != 0) text += field + " ";
      start = end + 1;
    }
    return text;
  };
  for (std::size_t workload = 0; workload < 2; ++workload) {
    const CompareRow& hvm = comparison->rows[workload * 3];
    const CompareRow& qemu = comparison->rows[workload * 3 + 2];
    EXPECT_EQ(qemu.configuration.label(), "qemu-tcg/ata");
    ASSERT_TRUE(qemu.ok) << qemu.failure;
    ASSERT_TRUE(hvm.ok) << hvm.failure;
    EXPECT_TRUE(qemu.emulator);
    EXPECT_EQ(qemu.run.command_line, hvm.run.command_line);
    EXPECT_EQ(without_cycles(qemu.run.result->line), without_cycles(hvm.run.result->line));
    EXPECT_GT(qemu.cycles_per_op, 0);
    EXPECT_EQ(qemu.vm_exits_per_op, 0);
    ASSERT_TRUE(qemu.relative_to_hvm.has_value());
  }
  std::ostringstream table;
  print_comparison(*comparison, table);
  EXPECT_NE(table.str().find("qemu-tcg/ata"), std::string::npos) << table.str();
  EXPECT_NE(table.str().find("qemu-tcg: the same image"), std::string::npos) << table.str();
  std::ostringstream json;
  write_comparison_json(*comparison, json);
  EXPECT_NE(json.str().find("\"cpu\": \"qemu-tcg\""), std::string::npos) << json.str();
  EXPECT_NE(json.str().find("\"emulator\": true"), std::string::npos) << json.str();
}

}  // namespace
}  // namespace vmlab
