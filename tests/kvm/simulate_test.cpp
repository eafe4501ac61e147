// The published 2006 profiles against the paper they are built from: each
// of Adams and Agesen's operations, recorded under full (whose trace shows
// every sensitive event), replayed per operation under vtx-2006 and
// vmware-bt-2006, must cost what their Figure 4 says within 10%.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iostream>

#include "../support/kvm_available.hpp"
#include "vmlab/measure/reference_figures.hpp"
#include "vmlab/runner.hpp"
#include "vmlab/simulate/simulate.hpp"

namespace vmlab {
namespace {

using simulate::EventClass;

// Adams and Agesen's operation -> the guest workload that does it.
struct Operation {
  const char* name;
  const char* workload;
};
constexpr Operation kOperations[] = {
    {"in", "pio"},
    {"cr8wr", "cr8-write"},
    {"call/ret", "call-ret"},
    {"pgfault", "page-fault"},
    {"divzero", "divide-error"},
    {"ptemod", "pte-write"},
};

Trace recorded(const std::string& workload, std::uint64_t count) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("vmlab-simulate-test-" + std::to_string(::getpid()) + ".tsv"))
                               .string();
  ScratchFile scratch(path);
  RunOptions options;
  options.cpu = "full";
  options.workload = workload;
  options.count = count;
  options.timeout_seconds = 120;
  options.trace_path = path;
  auto run = run_guest(options);
  EXPECT_TRUE(run.ok()) << (run.ok() ? "" : run.error().message);
  auto trace = read_trace_file(path);
  EXPECT_TRUE(trace.ok()) << (trace.ok() ? "" : trace.error().message);
  return trace.ok() ? std::move(*trace) : Trace{};
}

// The figure of `row` for `operation`; "as native" is the native row's.
std::optional<double> published(std::string_view row, std::string_view operation) {
  const auto operations = measure::adams_agesen_operations();
  const auto column = static_cast<std::size_t>(
      std::find(operations.begin(), operations.end(), operation) - operations.begin());
  const measure::ReferenceRow* native = nullptr;
  for (const auto& each : measure::adams_agesen_rows()) {
    if (each.label == "Native (2006)") native = &each;
  }
  for (const auto& each : measure::adams_agesen_rows()) {
    if (each.label != row) continue;
    const auto& figure = each.figures[column];
    if (figure.cycles) return figure.cycles;
    if (figure.note == "as native" && native != nullptr) return native->figures[column].cycles;
  }
  return std::nullopt;
}

TEST(PublishedProfiles, ReproduceAdamsAndAgesensOperationsWithinTenPercent) {
  VMLAB_REQUIRE_KVM();
  auto hardware = simulate::find_profile("vtx-2006");
  auto translator = simulate::find_profile("vmware-bt-2006");
  ASSERT_TRUE(hardware.ok()) << hardware.error().message;
  ASSERT_TRUE(translator.ok()) << translator.error().message;
  for (const auto& operation : kOperations) {
    SCOPED_TRACE(operation.name);
    const auto per_operation = simulate::events_per_operation(
        recorded(operation.workload, 100), 100, recorded(operation.workload, 300), 300);
    for (const auto& [profile, row] : {std::pair{&*hardware, "Hardware VMM (2006)"},
                                       std::pair{&*translator, "Software VMM (2006)"}}) {
      SCOPED_TRACE(profile->name);
      const auto native = profile->native_operations.at(operation.name).cycles;
      ASSERT_TRUE(native.has_value());
      const auto cost = simulate::operation_cost(*profile, *native, per_operation);
      ASSERT_TRUE(cost.cycles.has_value()) << cost.explanation;
      const auto expected = published(row, operation.name);
      ASSERT_TRUE(expected.has_value());
      std::cout << operation.name << " on " << profile->name << ": " << *cost.cycles << " cycles ("
                << cost.explanation << "), published " << *expected << "\n";
      if (profile == &*translator && std::string_view(operation.name) == "call/ret") {
        // The one figure a trace cannot give: a translated ret is a lookup
        // in the translation cache, which no trace records. The simulation
        // says native; the paper measured 51.
        EXPECT_DOUBLE_EQ(*cost.cycles, *native) << cost.explanation;
        continue;
      }
      EXPECT_LE(std::fabs(*cost.cycles / *expected - 1), 0.10)
          << "simulated " << *cost.cycles << " (" << cost.explanation << "), published "
          << *expected;
    }
  }
}

}  // namespace
}  // namespace vmlab
