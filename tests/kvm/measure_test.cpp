// The benchmark suite's measurements on real runs: the guest's window marks
// what the VMM counts per operation (no boot in it), and leave its result
// line as it was; a pass of the suite fills its cells.
#include <gtest/gtest.h>

#include "../support/guest_runs.hpp"
#include "../support/kvm_available.hpp"
#include "vmlab/measure/operations.hpp"

namespace vmlab {
namespace {

GuestRun windowed(const std::string& cpu, const std::string& workload, std::uint64_t count,
                  bool window) {
  RunOptions options;
  options.cpu = cpu;
  options.workload = workload;
  options.count = count;
  options.measurement_window = window;
  auto run = run_guest(options);
  EXPECT_TRUE(run.ok()) << run.error().message;
  return run.ok() ? std::move(*run) : GuestRun{};
}

// Every inb of pio exits once under hvm and traps once under full; inside
// the window there is one exit more, the end mark's first byte.
TEST(MeasurementWindow, CountsTheLoopAlone) {
  VMLAB_REQUIRE_KVM();
  for (const char* cpu : {"hvm", "full"}) {
    SCOPED_TRACE(cpu);
    const GuestRun run = windowed(cpu, "pio", 150, true);
    ASSERT_TRUE(run.window.has_value());
    EXPECT_EQ(run.window->vm_exits, 151u);
    EXPECT_LT(run.window->vm_exits, run.vm_exits()) << "the boot's exits are outside";
    if (std::string(cpu) == "full") {
      EXPECT_EQ(run.window->monitor_traps, 151u) << "the mark's byte is an out that traps too";
    }
    std::uint64_t levels = run.window->halted_ns;
    for (auto time : run.window->level_time_ns)
      levels += time;
    EXPECT_EQ(levels, run.window->wall_ns) << "the VMM has what no other level had";
    const GuestRun plain = windowed(cpu, "pio", 150, false);
    EXPECT_FALSE(plain.window.has_value());
    ASSERT_TRUE(run.result && plain.result);
    EXPECT_EQ(testing::without_cycles(run.result->line),
              testing::without_cycles(plain.result->line));
  }
}

TEST(MeasurementWindow, ASuitePassFillsItsCells) {
  VMLAB_REQUIRE_KVM();
  measure::MeasureOptions options;
  options.techniques = {"hvm", "para"};
  options.operations = {"in", "hypercall"};
  options.repetitions = 2;
  std::size_t calls = 0;
  options.progress = [&](std::size_t, std::size_t, const std::string&) { ++calls; };
  auto measured = measure::measure(options);
  ASSERT_TRUE(measured.ok()) << measured.error().message;
  EXPECT_GT(calls, 0u) << "progress is reported";
  EXPECT_NE(measured->platform_line.find("platform:"), std::string::npos);
  const auto* in = measured->cell("in", "hvm");
  ASSERT_NE(in, nullptr);
  ASSERT_EQ(in->status, measure::CellStatus::Measured) << in->reason;
  ASSERT_NE(in->figure(measure::Figure::VmmEntriesPerOp), nullptr);
  EXPECT_EQ(in->figure(measure::Figure::CyclesPerOp)->values.size(), 2u);
  EXPECT_NEAR(in->figure(measure::Figure::VmmEntriesPerOp)->median(), 1.0, 0.01);
  const auto* hypercall = measured->cell("hypercall", "para");
  ASSERT_NE(hypercall, nullptr);
  ASSERT_EQ(hypercall->status, measure::CellStatus::Measured) << hypercall->reason;
  EXPECT_NEAR(hypercall->figure(measure::Figure::HypercallsPerOp)->median(), 1.0, 0.01);
  EXPECT_EQ(measured->cell("hypercall", "hvm")->status, measure::CellStatus::NotApplicable);
  ASSERT_NE(measured->boot_of("para"), nullptr);
  EXPECT_EQ(measured->boot_of("para")->status, measure::CellStatus::Measured);
  EXPECT_GT(measured->boot_of("para")->to_result_line_ms.median(),
            measured->boot_of("para")->to_first_entry_ms.median());
}

}  // namespace
}  // namespace vmlab
