// --cpu bt end to end: the same guest kernel, run only from the translation
// cache, must print the same result line as under hvm (cycles aside); the
// translator's counters and the monitor's traps must follow from what the
// workload does: cli and sti never trap once translated, port I/O and system
// calls trap as often as under full, no more.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "../support/guest_runs.hpp"
#include "../support/kvm_available.hpp"
#include "../support/scratch_files.hpp"
#include "vmlab/runner.hpp"
#include "vmlab/trace.hpp"
#include "vmlab/viz/aggregates.hpp"

namespace vmlab {
namespace {

std::uint64_t traps(const GuestRun& run, const std::string& reason) {
  return testing::count_of(run.traps_by_reason, reason);
}

std::uint64_t call_outs(const GuestRun& run, const std::string& mnemonic) {
  return run.translation ? testing::count_of(run.translation->call_outs, mnemonic) : 0;
}

constexpr char kBt[] = "bt";
using BtWorkload = testing::SameResultAsHvm<kBt>;

TEST_P(BtWorkload, MatchesHvm) {
  const auto& param = GetParam();
  ASSERT_TRUE(run.translation.has_value()) << "a bt run reports its translation cache";
  EXPECT_GT(run.translation->blocks_translated, 0u);
  EXPECT_GT(run.monitor_traps, 0u) << "port I/O and iretq call out even during boot";
  EXPECT_EQ(call_outs(run, "cli") + call_outs(run, "sti"), 0u)
      << "cli and sti are stores to the virtual IF, never call-outs";
  EXPECT_EQ(traps(run, "privileged-instruction"), 0u)
      << "under bt every emulated instruction is a call-out of the translated code";

  const std::string workload = param.workload;
  const std::uint64_t n = param.count;
  if (workload == "syscalls") {
    EXPECT_GE(call_outs(run, "iretq"), n) << "the kernel's iretq back to user mode calls out";
  } else if (workload == "pio") {
    EXPECT_GE(call_outs(run, "in"), n) << "each inb calls out";
  } else if (workload == "pio-out") {
    EXPECT_GE(call_outs(run, "out"), n) << "each outb calls out";
  } else if (workload == "cr8-write") {
    EXPECT_GE(call_outs(run, "mov cr"), n) << "each mov to CR8 calls out and is emulated";
  }
  testing::expect_monitor_sees_workload(run, workload, n);
}

INSTANTIATE_TEST_SUITE_P(Workloads, BtWorkload, ::testing::ValuesIn(testing::kEveryWorkload),
                         testing::workload_case_name);

// Exits per operation once the workload's code is translated: the difference
// between a run of `large` operations and one of `small`, so that the boot
// and the first translation of the loop cancel out.
double marginal_exits(const std::string& cpu, const std::string& workload, std::uint64_t small,
                      std::uint64_t large) {
  const GuestRun few = testing::run_in(cpu, workload, small);
  const GuestRun many = testing::run_in(cpu, workload, large);
  return (static_cast<double>(many.vm_exits()) - static_cast<double>(few.vm_exits())) /
         static_cast<double>(large - small);
}

TEST(BtRun, CliStiLeavesTheVmNeverOnceTranslated) {
  VMLAB_REQUIRE_KVM();
  const double bt = marginal_exits("bt", "cli-sti", 100, 2000);
  EXPECT_LT(bt, 0.01) << "cli; sti under bt: exits per operation";
  const double full = marginal_exits("full", "cli-sti", 100, 200);
  EXPECT_GE(full, 2.0) << "full traps on both";
}

TEST(BtRun, NoMoreExitsPerOperationThanFull) {
  VMLAB_REQUIRE_KVM();
  struct Case {
    const char* workload;
    std::uint64_t small, large;
  };
  for (const auto& [workload, small, large] :
       {Case{"pio", 100, 400}, Case{"syscalls", 100, 400}, Case{"pagefaults", 40, 160}}) {
    const double bt = marginal_exits("bt", workload, small, large);
    const double full = marginal_exits("full", workload, small, large);
    // Timer ticks land in either run at random: a few hundredths of slack.
    EXPECT_LE(bt, full + 0.05) << workload << ": bt " << bt << " exits/op, full " << full;
    EXPECT_GE(bt, 1.0) << workload << ": every operation needs the monitor";
  }
}

TEST(BtRun, TranslationsFileShowsEveryBlockBesideItsGuestCode) {
  VMLAB_REQUIRE_KVM();
  testing::ScratchDirectory directory;
  RunOptions options = testing::workload_options("bt", "cli-sti", 10);
  options.translations_path = (directory.path() / "blocks.txt").string();
  const GuestRun run = testing::start_run(options);
  ASSERT_TRUE(run.result.has_value());
  ASSERT_TRUE(run.translation.has_value());
  const std::string listing = testing::contents_of(options.translations_path);
  EXPECT_EQ(listing.rfind("# vmlab-translations v1", 0), 0u) << "a header vmlab recognises";
  EXPECT_NE(listing.find("kvm_"), std::string::npos) << "names the KVM backend";
  EXPECT_NE(listing.find("lookup routine"), std::string::npos);
  EXPECT_NE(listing.find("cli: vIF := 0"), std::string::npos) << "the workload's cli, rewritten";
  EXPECT_NE(listing.find("sti: vIF := 1"), std::string::npos);
  EXPECT_NE(listing.find("IDENT"), std::string::npos);
  std::size_t blocks = 0;
  for (std::size_t at = listing.find("\nblock guest "); at != std::string::npos;
       at = listing.find("\nblock guest ", at + 1)) {
    ++blocks;
  }
  EXPECT_GT(blocks, 0u);
  EXPECT_LE(blocks, run.translation->blocks_translated) << "live blocks, of all ever made";

  // An existing file that is not such a listing (or a trace) is never replaced.
  const auto precious = directory.path() / "notes.txt";
  testing::write_file(precious, "my notes\n");
  options.translations_path = precious.string();
  auto refused = run_guest(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(testing::contents_of(precious), "my notes\n");
}

TEST(BtRun, TranslationsNeedTheModeThatTranslates) {
  RunOptions options;
  options.cpu = "full";
  options.translations_path = "blocks.txt";
  auto refused = check_run_options(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, CliError::kConflictingOptions);
}

TEST(BtRun, InterruptDrivenConsoleMatchesHvm) {
  VMLAB_REQUIRE_KVM();
  RunOptions options = testing::workload_options("bt", "hello", 1, "console=irq");
  std::string console;
  options.console_output = [&](std::uint8_t byte) { console.push_back(static_cast<char>(byte)); };
  const GuestRun run = testing::start_run(options);
  ASSERT_TRUE(run.result.has_value());
  EXPECT_EQ(run.result->field("status"), "ok");
  EXPECT_EQ(run.result->number("irqs"), 2u) << "two THRE interrupts, as in QEMU and hvm";
  EXPECT_NE(console.find("Hello from user mode"), std::string::npos);
}

TEST(BtRun, TraceSummaryAndPerfettoShowTranslationsAndCallOuts) {
  VMLAB_REQUIRE_KVM();
  testing::ScratchDirectory directory;
  RunOptions options = testing::workload_options("bt", "pio", 20);
  options.trace_path = (directory.path() / "bt.trace").string();
  const GuestRun run = testing::start_run(options);
  ASSERT_TRUE(run.result.has_value());
  EXPECT_GE(traps(run, "call-out"), 20u) << "each inb is a call-out trap";

  auto trace = read_trace_file(options.trace_path);
  ASSERT_TRUE(trace.ok()) << trace.error().message;
  std::uint64_t translated = 0, chained = 0, call_out_traps = 0;
  for (const Event& event : trace->events) {
    if (event.kind == EventKind::Translation && event.reason == EventReason::BlockTranslated) {
      ++translated;
      EXPECT_GT(event.size, 0u) << "a block holds at least one guest instruction";
    }
    if (event.kind == EventKind::Translation && event.reason == EventReason::BranchChained) {
      ++chained;
    }
    if (event.kind == EventKind::MonitorTrap && event.reason == EventReason::CallOut) {
      ++call_out_traps;
      EXPECT_LT(event.time_ns, 600'000'000'000ull) << "times are since the run's start";
    }
  }
  EXPECT_GT(translated, 0u);
  EXPECT_GT(chained, 0u);
  EXPECT_EQ(call_out_traps, traps(run, "call-out"));

  std::ostringstream summary;
  const auto model = viz::TraceModel::from_trace(*trace);
  viz::print_summary(model, viz::aggregate(model), summary);
  EXPECT_NE(summary.str().find("block-translated"), std::string::npos) << summary.str();
  EXPECT_NE(summary.str().find("call-out"), std::string::npos) << summary.str();
  EXPECT_NE(summary.str().find("in al, dx"), std::string::npos) << "call-outs by instruction";
  std::ostringstream perfetto;
  export_perfetto(*trace, perfetto);
  EXPECT_NE(perfetto.str().find("translation: block-translated"), std::string::npos);
  EXPECT_NE(perfetto.str().find("monitor-trap: call-out"), std::string::npos);
}

}  // namespace
}  // namespace vmlab
