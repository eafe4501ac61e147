// `vmlab compare --json` files: what the CLI writes reads back field for
// field, and every kind of bad file is refused with the field named.
#include "vmlab/viz/comparison.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "vmlab/compare.hpp"
#include "vmlab/simulate/simulate.hpp"

namespace vmlab::viz {
namespace {

// A comparison as `vmlab compare` builds it: an hvm row, a bt row with its
// translation figures, and a failed row.
Comparison sample_comparison() {
  Comparison comparison;
  comparison.platform_line = "platform: kvm_pvm (software KVM backend) on Test CPU";
  CompareRow hvm;
  hvm.workload = {"syscalls", 5000};
  hvm.configuration = {.cpu = "hvm", .irqchip = IrqchipModel::Vmm, .disk_model = ""};
  hvm.ok = true;
  hvm.cycles = 1170425000;
  hvm.cycles_per_op = 234085;
  hvm.vm_exits_per_op = 0.07;
  hvm.kvm_exits_per_op = 3.08;
  hvm.guest_share = 99.9;
  hvm.vmm_share = 0.1;
  hvm.user_share_at_exit = 12.5;
  hvm.kernel_share_at_exit = 87.4;
  hvm.relative_to_hvm = 1.0;
  hvm.run.result = WorkloadResult{.line = "syscalls ok n=5000", .fields = {}};
  comparison.rows.push_back(hvm);

  CompareRow bt = hvm;
  bt.configuration = {.cpu = "bt", .irqchip = IrqchipModel::Kernel, .disk_model = "virtio"};
  bt.cycles_per_op = 433728;
  bt.monitor_traps_per_op = 2.08;
  bt.has_monitor = true;
  bt.monitor_share = 1.9;
  bt.relative_to_hvm = 1.85;
  bt.run.translation = bt::Statistics{.blocks_translated = 300,
                                      .guest_instructions_translated = 2400,
                                      .tc_bytes_used = 65536,
                                      .branch_exits = 40,
                                      .chained_branches = 35,
                                      .lookup_misses = 7,
                                      .blocks_invalidated = 2,
                                      .page_invalidations = 1,
                                      .flushes = 0,
                                      .call_outs = {{"in al, dx", 10}, {"out dx, al", 311}}};
  comparison.rows.push_back(bt);

  CompareRow failed;
  failed.workload = {"timer", 20};
  failed.configuration = {.cpu = "para", .irqchip = IrqchipModel::Vmm, .disk_model = ""};
  failed.ok = false;
  failed.failure = "guest timed out after 60 s";
  comparison.rows.push_back(failed);
  return comparison;
}

std::string written(const Comparison& comparison) {
  std::ostringstream out;
  write_comparison_json(comparison, out);
  return out.str();
}

TEST(Comparison, ReadsWhatCompareWrites) {
  auto results = parse_comparison_json(written(sample_comparison()));
  ASSERT_TRUE(results.ok()) << results.error().message;
  EXPECT_EQ(results->platform_line, "platform: kvm_pvm (software KVM backend) on Test CPU");
  ASSERT_EQ(results->rows.size(), 3u);

  const ComparisonRow& hvm = results->rows[0];
  EXPECT_EQ(hvm.workload, "syscalls");
  EXPECT_EQ(hvm.n, 5000u);
  EXPECT_EQ(hvm.cpu, "hvm");
  EXPECT_EQ(hvm.irqchip, "vmm");
  EXPECT_EQ(hvm.disk_model, "");
  EXPECT_TRUE(hvm.ok);
  EXPECT_EQ(hvm.cycles, 1170425000u);
  EXPECT_DOUBLE_EQ(hvm.cycles_per_op, 234085);
  EXPECT_DOUBLE_EQ(hvm.vm_exits_per_op, 0.07);
  EXPECT_DOUBLE_EQ(hvm.kvm_exits_per_op, 3.08);
  EXPECT_DOUBLE_EQ(hvm.monitor_traps_per_op, 0);
  EXPECT_DOUBLE_EQ(hvm.shares.guest, 99.9);
  EXPECT_DOUBLE_EQ(hvm.shares.guest_user_at_exit, 12.5);
  EXPECT_DOUBLE_EQ(hvm.shares.guest_kernel_at_exit, 87.4);
  EXPECT_DOUBLE_EQ(hvm.shares.vmm, 0.1);
  ASSERT_TRUE(hvm.relative_to_hvm.has_value());
  EXPECT_DOUBLE_EQ(*hvm.relative_to_hvm, 1.0);
  EXPECT_FALSE(hvm.translation.has_value());
  EXPECT_EQ(hvm.result, "syscalls ok n=5000");

  const ComparisonRow& bt = results->rows[1];
  EXPECT_EQ(bt.cpu, "bt");
  EXPECT_EQ(bt.irqchip, "kernel");
  EXPECT_EQ(bt.disk_model, "virtio");
  EXPECT_DOUBLE_EQ(bt.cycles_per_op, 433728);
  EXPECT_DOUBLE_EQ(bt.shares.monitor, 1.9);
  ASSERT_TRUE(bt.translation.has_value());
  EXPECT_EQ(bt.translation->blocks, 300u);
  EXPECT_EQ(bt.translation->guest_instructions, 2400u);
  EXPECT_EQ(bt.translation->tc_bytes, 65536u);
  EXPECT_EQ(bt.translation->branch_exits, 40u);
  EXPECT_EQ(bt.translation->chained, 35u);
  EXPECT_EQ(bt.translation->lookup_misses, 7u);
  EXPECT_EQ(bt.translation->blocks_invalidated, 2u);
  EXPECT_EQ(bt.translation->flushes, 0u);
  const std::vector<std::pair<std::string, std::uint64_t>> call_outs = {{"in al, dx", 10},
                                                                        {"out dx, al", 311}};
  EXPECT_EQ(bt.translation->call_outs, call_outs);

  const ComparisonRow& failed = results->rows[2];
  EXPECT_EQ(failed.workload, "timer");
  EXPECT_FALSE(failed.ok);
  EXPECT_EQ(failed.failure, "guest timed out after 60 s");
  EXPECT_EQ(failed.cycles, 0u);
}

// A QEMU TCG row is marked as the emulator's; files from before it was a
// configuration have no such field, and their rows are not.
TEST(Comparison, ReadsWhichRowIsQemu) {
  Comparison comparison = sample_comparison();
  CompareRow qemu = comparison.rows[0];
  qemu.configuration = {.cpu = kQemuTcg, .irqchip = IrqchipModel::Vmm, .disk_model = ""};
  qemu.emulator = true;
  qemu.cycles_per_op = 1300;
  comparison.rows.push_back(qemu);
  auto results = parse_comparison_json(written(comparison));
  ASSERT_TRUE(results.ok()) << results.error().message;
  ASSERT_EQ(results->rows.size(), 4u);
  EXPECT_FALSE(results->rows[0].emulator);
  EXPECT_TRUE(results->rows[3].emulator);
  EXPECT_EQ(results->rows[3].cpu, "qemu-tcg");

  std::string text = written(comparison);
  const std::string flag = "\"emulator\": true";
  text.replace(text.find(flag), flag.size(), "\"emulator\": 1");
  auto wrong = parse_comparison_json(text);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("emulator: should be true or false"), std::string::npos)
      << wrong.error().message;
}

TEST(Comparison, ARowWithoutAnHvmRowHasNoRatio) {
  Comparison comparison = sample_comparison();
  comparison.rows[1].relative_to_hvm.reset();
  auto results = parse_comparison_json(written(comparison));
  ASSERT_TRUE(results.ok()) << results.error().message;
  EXPECT_FALSE(results->rows[1].relative_to_hvm.has_value());
  auto empty = parse_comparison_json(R"({"platform": "p", "rows": []})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->rows.empty());
}

// The kind of the error reading `text`, and its message.
std::pair<std::error_code, std::string> refusal(const std::string& text) {
  auto results = parse_comparison_json(text);
  if (results.ok()) return {};
  return {results.error().kind, results.error().message};
}

// The written sample with one piece of text replaced.
std::string edited(const std::string& from, const std::string& to) {
  std::string text = written(sample_comparison());
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(Comparison, RefusesMalformedFilesNamingTheField) {
  struct Case {
    std::string text;
    ComparisonError kind;
    std::string names;  // in the message
  };
  const std::vector<Case> cases = {
      {"", ComparisonError::kMalformedJson, "not a JSON document"},
      {"{\"platform\": \"p\", \"rows\": [", ComparisonError::kMalformedJson, "parse error"},
      // ostream writes a division by zero as nan, which JSON has no word for.
      {edited("\"cycles_per_op\": 234085", "\"cycles_per_op\": nan"),
       ComparisonError::kMalformedJson, "parse error"},
      {"[1, 2]", ComparisonError::kWrongType, "should be an object"},
      {R"({"platform": "p"})", ComparisonError::kMissingField, "rows: is missing"},
      {R"({"rows": []})", ComparisonError::kMissingField, "platform: is missing"},
      {R"({"platform": "p", "rows": {}})", ComparisonError::kWrongType, "rows: should be an array"},
      {R"({"platform": "p", "rows": [3]})", ComparisonError::kWrongType, "rows[0]: should be"},
      {edited("\"cycles_per_op\": 433728", "\"cycles_per_op\": \"433728\""),
       ComparisonError::kWrongType, "rows[1].cycles_per_op: should be a number, not a string"},
      {edited("\"n\": 5000", "\"n\": -5000"), ComparisonError::kInvalidValue,
       "rows[0].n: must not be negative"},
      {edited("\"n\": 5000", "\"n\": 50.5"), ComparisonError::kWrongType,
       "rows[0].n: should be a whole number"},
      {edited("\"irqchip\": \"vmm\"", "\"irqchip\": \"pic\""), ComparisonError::kInvalidValue,
       "rows[0].irqchip: 'pic'"},
      {edited("\"vmm\": 0.1", "\"vmmm\": 0.1"), ComparisonError::kMissingField,
       "rows[0].share_percent.vmm: is missing"},
      {edited("\"ok\": true", "\"ok\": 1"), ComparisonError::kWrongType,
       "rows[0].ok: should be true or false"},
      {edited("\"relative_to_hvm\": 1.85", "\"relative_to_hvm\": -1.85"),
       ComparisonError::kInvalidValue, "rows[1].relative_to_hvm"},
      {edited("\"chained\": 35", "\"chained\": \"35\""), ComparisonError::kWrongType,
       "rows[1].translation.chained"},
      {edited("\"out dx, al\": 311", "\"out dx, al\": true"), ComparisonError::kWrongType,
       "rows[1].translation.call_outs.out dx, al"},
      {edited("\"failure\": \"guest timed out after 60 s\"", "\"why\": \"?\""),
       ComparisonError::kMissingField, "rows[2].failure: is missing"},
  };
  for (const auto& [text, kind, names] : cases) {
    const auto [code, message] = refusal(text);
    EXPECT_EQ(code, kind) << text << "\n" << message;
    EXPECT_NE(message.find(names), std::string::npos) << message;
  }
}

TEST(Comparison, AFileThatCannotBeOpenedIsUnreadable) {
  auto results = read_comparison_file("/nonexistent/results.json");
  ASSERT_FALSE(results.ok());
  EXPECT_EQ(results.error().kind, ComparisonError::kUnreadable);
}

}  // namespace
}  // namespace vmlab::viz

namespace vmlab::viz {
namespace {

// A simulation as `vmlab simulate --json` writes it: the measured run, a
// hardware platform that keeps one of its two kinds of event as exits, and
// a translator that makes both its work.
std::string sample_simulation_json() {
  simulate::Simulation simulation;
  simulation.trace_path = "pf.tsv";
  simulation.platform_line = "platform: kvm_pvm (software KVM backend) on Test CPU";
  simulation.run_description = "cpu=full workload=pagefaults n=100";
  simulation.technique = "full";
  simulation.measured.ns[static_cast<std::size_t>(PrivilegeLevel::GuestUser)] = 600;
  simulation.measured.ns[static_cast<std::size_t>(PrivilegeLevel::GuestKernel)] = 300;
  simulation.measured.ns[static_cast<std::size_t>(PrivilegeLevel::Vmm)] = 100;
  auto prediction = [&](const char* name, simulate::PlatformKind kind, double vmm,
                        std::optional<simulate::Transition> fills,
                        std::optional<simulate::Transition> faults) {
    simulate::Prediction made;
    made.profile = name;
    made.kind = kind;
    made.predicted.ns[static_cast<std::size_t>(PrivilegeLevel::GuestUser)] = 300;
    made.predicted.ns[static_cast<std::size_t>(PrivilegeLevel::Vmm)] = vmm;
    made.rows.push_back(
        {simulate::EventClass::TrapShadowFill, 200, fills, "", 1.0, 200, PrivilegeLevel::Vmm});
    made.rows.push_back(
        {simulate::EventClass::TrapPageFault, 100, faults, "", 1.0, 100, PrivilegeLevel::Vmm});
    return made;
  };
  simulation.predictions.push_back(prediction("vtx-2006", simulate::PlatformKind::Hardware, 200,
                                              simulate::Transition::HiddenPageFaultExit,
                                              std::nullopt));
  simulation.predictions.push_back(
      prediction("vmware-bt-2006", simulate::PlatformKind::BinaryTranslation, 0,
                 simulate::Transition::BtHiddenPageFault, simulate::Transition::BtPageFault));
  std::ostringstream out;
  simulate::write_simulation_json(simulation, out);
  return out.str();
}

TEST(Comparison, ReadsASimulationAsItsMeasuredRunBesideEachPlatform) {
  auto results = parse_comparison_json(sample_simulation_json());
  ASSERT_TRUE(results.ok()) << results.error().message;
  EXPECT_TRUE(results->simulated);
  EXPECT_EQ(results->reference(), "measured");
  EXPECT_EQ(results->simulated_trace, "pf.tsv");
  ASSERT_EQ(results->rows.size(), 3u);
  const ComparisonRow& measured = results->rows[0];
  EXPECT_EQ(measured.cpu, "measured full");
  EXPECT_EQ(measured.workload, "pagefaults");
  EXPECT_EQ(measured.n, 100u);
  EXPECT_DOUBLE_EQ(*measured.relative_to_hvm, 1.0);
  EXPECT_DOUBLE_EQ(measured.cycles_per_op, 10) << "1,000 ns over 100 operations";
  EXPECT_DOUBLE_EQ(measured.monitor_traps_per_op, 3) << "the 300 traps of the trace";
  EXPECT_DOUBLE_EQ(measured.shares.vmm, 10);
  const ComparisonRow& hardware = results->rows[1];
  EXPECT_EQ(hardware.cpu, "vtx-2006");
  EXPECT_DOUBLE_EQ(*hardware.relative_to_hvm, 0.5);
  EXPECT_DOUBLE_EQ(hardware.vm_exits_per_op, 2) << "the fills are exits there, the faults gone";
  EXPECT_DOUBLE_EQ(hardware.monitor_traps_per_op, 0);
  const ComparisonRow& translator = results->rows[2];
  EXPECT_DOUBLE_EQ(translator.vm_exits_per_op, 0);
  EXPECT_DOUBLE_EQ(translator.monitor_traps_per_op, 3) << "both are the translator's work";
}

TEST(Comparison, ASimulationWithStrangeEventsReadsWithoutThem) {
  std::string text = sample_simulation_json();
  // A hostile or hand-edited file: an event named by a number.
  const auto at = text.find("\"event\": \"trap-shadow-fill\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, std::string("\"event\": \"trap-shadow-fill\"").size(), "\"event\": 5");
  auto results = parse_comparison_json(text);
  ASSERT_TRUE(results.ok()) << results.error().message;
  EXPECT_EQ(results->rows.size(), 3u);
}

TEST(Comparison, RefusesASimulationWithoutItsPredictions) {
  std::string text = sample_simulation_json();
  text.replace(text.find("\"predictions\""), 13, "\"forecasts\"");
  auto results = parse_comparison_json(text);
  ASSERT_FALSE(results.ok());
  EXPECT_NE(results.error().message.find("predictions"), std::string::npos)
      << results.error().message;
}

}  // namespace
}  // namespace vmlab::viz
