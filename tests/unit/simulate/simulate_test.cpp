// The simulator on hand-made traces: each event lands in its class, each
// feature removes exactly the events it should, and the costs add up; the
// published profiles read, each figure citing a source the file lists.
#include "vmlab/simulate/simulate.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "vmlab/simulate/calibrate.hpp"

namespace vmlab::simulate {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A trace of `technique`, its level times in ns, and events added by the tests.
class HandMadeTrace {
 public:
  explicit HandMadeTrace(const std::string& technique) {
    m_trace.version = 2;
    m_trace.platform_line = "platform: test";
    m_trace.run_description = "cpu=" + technique + " workload=test n=1";
    m_trace.level_time_ns[static_cast<std::size_t>(PrivilegeLevel::GuestUser)] = 1000;
    m_trace.level_time_ns[static_cast<std::size_t>(PrivilegeLevel::GuestKernel)] = 2000;
    m_trace.level_time_ns[static_cast<std::size_t>(PrivilegeLevel::Monitor)] = 500;
    m_trace.level_time_ns[static_cast<std::size_t>(PrivilegeLevel::Vmm)] = 700;
    m_trace.halted_ns = 300;
  }

  HandMadeTrace& add(EventKind kind, EventReason reason, std::uint64_t count,
                     const std::string& detail = "", std::uint64_t address = 0,
                     std::uint64_t value = 0) {
    Event event;
    event.kind = kind;
    event.reason = reason;
    event.address = address;
    event.value = value;
    if (!detail.empty()) {
      m_trace.details.push_back(detail);
      event.detail = static_cast<std::uint32_t>(m_trace.details.size() - 1);
    }
    for (std::uint64_t index = 0; index < count; ++index)
      m_trace.events.push_back(event);
    return *this;
  }

  HandMadeTrace& trap(EventReason reason, std::uint64_t count, const std::string& detail = "") {
    return add(EventKind::MonitorTrap, reason, count, detail);
  }

  const Trace& trace() const { return m_trace; }

 private:
  Trace m_trace;
};

Cost cycles(double value) {
  return Cost{value, std::nullopt, "measured", "test", "a test figure"};
}

// A hardware platform whose every exit costs `each` cycles at 1 GHz (1 ns).
Profile hardware(std::set<Feature> features, double each = 100) {
  Profile profile;
  profile.name = "test-hardware";
  profile.title = "a test platform";
  profile.kind = PlatformKind::Hardware;
  profile.clock_ghz = 1;
  profile.features = std::move(features);
  profile.sources["test"] = "the test";
  for (std::size_t index = 0; index < static_cast<std::size_t>(Transition::Count); ++index) {
    const auto transition = static_cast<Transition>(index);
    if (transition_belongs_to(transition, PlatformKind::Hardware)) {
      profile.costs[transition] = cycles(each);
    }
  }
  return profile;
}

const ReplayRow* row_of(const Prediction& prediction, EventClass event_class) {
  for (const auto& row : prediction.rows) {
    if (row.event_class == event_class) return &row;
  }
  return nullptr;
}

Prediction predicted(const Trace& trace, const Profile& profile) {
  auto simulation = simulate(trace, {profile});
  EXPECT_TRUE(simulation.ok()) << simulation.error().message;
  return simulation.ok() ? simulation->predictions.at(0) : Prediction{};
}

TEST(Classify, EventsLandInTheirClasses) {
  struct Case {
    EventKind kind;
    EventReason reason;
    std::string detail;
    std::uint64_t address, value;
    EventClass expected;
  };
  const Case cases[] = {
      {EventKind::VmExit, EventReason::IoIn, "", 0x3f8, 0, EventClass::ExitIo},
      {EventKind::VmExit, EventReason::IoOut, "", 0x20, 0x20, EventClass::ExitEoi},
      {EventKind::VmExit, EventReason::IoOut, "", 0xa0, 0x20, EventClass::ExitEoi},
      {EventKind::VmExit, EventReason::IoOut, "", 0x20, 0x11, EventClass::ExitIo},
      {EventKind::VmExit, EventReason::IoOut, "", 0xe8, 0, EventClass::ExitMonitorChannel},
      {EventKind::VmExit, EventReason::MmioWrite, "", 0, 0, EventClass::ExitMmio},
      {EventKind::VmExit, EventReason::Halt, "", 0, 0, EventClass::ExitHlt},
      {EventKind::VmExit, EventReason::InterruptWindowOpen, "", 0, 0,
       EventClass::ExitInterruptWindow},
      {EventKind::InterruptInjection, EventReason::ExternalInterrupt, "", 0x20, 0,
       EventClass::Injection},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "in al, dx", 0, 0,
       EventClass::TrapIo},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "cli", 0, 0,
       EventClass::TrapInterruptFlag},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "popfq", 0, 0,
       EventClass::TrapInterruptFlag},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "iretq", 0, 0,
       EventClass::TrapReturn},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "mov cr3, rdi", 0, 0,
       EventClass::TrapCr3},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "mov cr8, rax", 0, 0,
       EventClass::TrapCr8},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "mov cr4, rax", 0, 0,
       EventClass::TrapCrWrite},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "mov rax, cr2", 0, 0,
       EventClass::TrapCrRead},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "invlpg [rdi]", 0, 0,
       EventClass::TrapInvlpg},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "lgdt [rdi]", 0, 0,
       EventClass::TrapDescriptor},
      {EventKind::MonitorTrap, EventReason::PrivilegedInstruction, "wrmsr", 0, 0,
       EventClass::TrapMsr},
      {EventKind::MonitorTrap, EventReason::CallOut, "mov cr3, rax", 0, 0, EventClass::TrapCr3},
      {EventKind::MonitorTrap, EventReason::CallOut, "xlat", 0, 0, EventClass::TrapCallOut},
      {EventKind::MonitorTrap, EventReason::ShadowFill, "", 0xe, 0, EventClass::TrapShadowFill},
      {EventKind::MonitorTrap, EventReason::GuestPageFault, "", 0xe, 0, EventClass::TrapPageFault},
      {EventKind::MonitorTrap, EventReason::PageTableWrite, "", 0, 0, EventClass::TrapPteWrite},
      {EventKind::MonitorTrap, EventReason::SystemCall, "syscall", 0, 0,
       EventClass::TrapSystemCall},
      {EventKind::MonitorTrap, EventReason::ReflectedException, "#DE", 0, 0,
       EventClass::TrapException},
      {EventKind::Hypercall, EventReason::HypercallMmuUpdate, "", 0, 0, EventClass::Hypercall},
      {EventKind::Translation, EventReason::BlockTranslated, "", 0, 0, EventClass::BtTranslate},
      {EventKind::Translation, EventReason::IndirectMiss, "", 0, 0, EventClass::BtIndirectMiss},
      {EventKind::GuestHalt, EventReason::Halt, "", 0, 0, EventClass::Halt},
  };
  for (const auto& each : cases) {
    Event event;
    event.kind = each.kind;
    event.reason = each.reason;
    event.address = each.address;
    event.value = each.value;
    EXPECT_EQ(classify(event, each.detail), each.expected)
        << event_kind_name(each.kind) << " " << event_reason_name(each.reason) << " '"
        << each.detail << "': " << event_class_name(classify(event, each.detail));
  }
  for (std::size_t index = 0; index < static_cast<std::size_t>(EventClass::Count); ++index) {
    const auto event_class = static_cast<EventClass>(index);
    EXPECT_EQ(parse_event_class(event_class_name(event_class)), event_class);
  }
}

TEST(Features, NestedPagingRemovesExactlyTheShadowPagingEvents) {
  HandMadeTrace trace("full");
  trace.trap(EventReason::GuestPageFault, 10)
      .trap(EventReason::ShadowFill, 20)
      .trap(EventReason::PageTableWrite, 5)
      .trap(EventReason::PrivilegedInstruction, 3, "mov cr3, rdi")
      .trap(EventReason::PrivilegedInstruction, 4, "invlpg [rdi]")
      .trap(EventReason::PrivilegedInstruction, 7, "in al, dx");
  const Prediction shadow = predicted(trace.trace(), hardware({}));
  const Prediction nested = predicted(trace.trace(), hardware({Feature::NestedPaging}));
  for (auto event_class : {EventClass::TrapPageFault, EventClass::TrapShadowFill,
                           EventClass::TrapPteWrite, EventClass::TrapCr3, EventClass::TrapInvlpg}) {
    ASSERT_NE(row_of(shadow, event_class), nullptr);
    EXPECT_TRUE(row_of(shadow, event_class)->becomes.has_value()) << event_class_name(event_class);
    EXPECT_FALSE(row_of(nested, event_class)->becomes.has_value()) << event_class_name(event_class);
    EXPECT_TRUE(contains(row_of(nested, event_class)->why, "nested paging"));
  }
  // The port read exits either way.
  EXPECT_EQ(row_of(nested, EventClass::TrapIo)->becomes, Transition::IoExit);
  EXPECT_EQ(shadow.events_removed, 0u);
  EXPECT_EQ(nested.events_removed, 42u);
  // 49 exits at 100 ns, against 7.
  EXPECT_DOUBLE_EQ(shadow.predicted.ns[static_cast<std::size_t>(PrivilegeLevel::Vmm)], 4900);
  EXPECT_DOUBLE_EQ(nested.predicted.ns[static_cast<std::size_t>(PrivilegeLevel::Vmm)], 700);
}

TEST(Features, InterruptFeaturesRemoveInjectionsWindowsAndEois) {
  HandMadeTrace trace("hvm");
  trace.add(EventKind::InterruptInjection, EventReason::ExternalInterrupt, 6, "", 0x20)
      .add(EventKind::VmExit, EventReason::InterruptWindowOpen, 2)
      .add(EventKind::VmExit, EventReason::IoOut, 6, "", 0x20, 0x20)
      .add(EventKind::VmExit, EventReason::IoOut, 9, "", 0x3f8, 0x41);
  const Prediction plain = predicted(trace.trace(), hardware({}));
  EXPECT_EQ(plain.events_removed, 0u);
  const Prediction apicv = predicted(trace.trace(), hardware({Feature::ApicVirtualization}));
  EXPECT_EQ(apicv.events_removed, 8u) << "the EOIs and the interrupt windows";
  EXPECT_EQ(row_of(apicv, EventClass::Injection)->becomes, Transition::InterruptExit);
  const Prediction posted =
      predicted(trace.trace(), hardware({Feature::ApicVirtualization, Feature::PostedInterrupts}));
  EXPECT_EQ(posted.events_removed, 14u);
  EXPECT_EQ(row_of(posted, EventClass::ExitIo)->becomes, Transition::IoExit)
      << "a UART write is no interrupt";
  EXPECT_DOUBLE_EQ(posted.predicted.ns[static_cast<std::size_t>(PrivilegeLevel::Vmm)], 900);
}

TEST(Features, TprShadowRemovesCr8WritesAndGuestModeWorkNeverExits) {
  HandMadeTrace trace("full");
  trace.trap(EventReason::PrivilegedInstruction, 5, "mov cr8, rax")
      .trap(EventReason::PrivilegedInstruction, 5, "cli")
      .trap(EventReason::SystemCall, 5, "syscall")
      .trap(EventReason::ReflectedException, 5, "#DE")
      .add(EventKind::VmExit, EventReason::IoOut, 30, "", 0xe8);
  EXPECT_EQ(row_of(predicted(trace.trace(), hardware({})), EventClass::TrapCr8)->becomes,
            Transition::CrExit);
  const Prediction shadowed = predicted(trace.trace(), hardware({Feature::TprShadow}));
  EXPECT_EQ(shadowed.events_removed, 45u) << "all but the exception: the guest runs at CPL0";
  EXPECT_EQ(row_of(shadowed, EventClass::TrapException)->becomes, Transition::GuestException)
      << "delivered in guest mode, at a cost of its own but with no exit";
  EXPECT_EQ(row_of(shadowed, EventClass::TrapException)->level, PrivilegeLevel::GuestKernel);
  EXPECT_TRUE(contains(row_of(shadowed, EventClass::ExitMonitorChannel)->why, "no such monitor"));
}

TEST(Costs, AddUpByLevelAndCarryTheGuestsOwnTime) {
  HandMadeTrace trace("full");
  trace.trap(EventReason::PrivilegedInstruction, 3, "in al, dx")
      .trap(EventReason::PrivilegedInstruction, 2, "cli")
      .add(EventKind::GuestHalt, EventReason::Halt, 4);
  Profile translator;
  translator.name = "test-bt";
  translator.kind = PlatformKind::BinaryTranslation;
  translator.clock_ghz = 2;  // cycles / 2 = ns
  translator.sources["test"] = "the test";
  translator.costs[Transition::BtIo] = cycles(200);
  translator.costs[Transition::BtInline] = cycles(30);
  const Prediction prediction = predicted(trace.trace(), translator);
  const auto& times = prediction.predicted;
  EXPECT_DOUBLE_EQ(times.ns[static_cast<std::size_t>(PrivilegeLevel::Monitor)], 3 * 100 + 2 * 15);
  EXPECT_DOUBLE_EQ(times.ns[static_cast<std::size_t>(PrivilegeLevel::Vmm)], 0);
  EXPECT_DOUBLE_EQ(times.ns[static_cast<std::size_t>(PrivilegeLevel::GuestUser)], 1000);
  EXPECT_DOUBLE_EQ(times.ns[static_cast<std::size_t>(PrivilegeLevel::GuestKernel)], 2000);
  EXPECT_DOUBLE_EQ(times.halted_ns, 300);
  EXPECT_DOUBLE_EQ(times.total(), 1000 + 2000 + 330 + 300);
  EXPECT_EQ(row_of(prediction, EventClass::TrapIo)->total_ns, 300);
}

TEST(Costs, AMissingFigureIsSaidNotInvented) {
  HandMadeTrace trace("bt");
  trace.add(EventKind::Translation, EventReason::BlockTranslated, 12);
  Profile translator;
  translator.name = "test-bt";
  translator.kind = PlatformKind::BinaryTranslation;
  translator.clock_ghz = 1;
  translator.sources["test"] = "the test";
  translator.costs[Transition::BtTranslateBlock] =
      Cost{std::nullopt, std::nullopt, "estimate", "test", "no figure published"};
  const Prediction prediction = predicted(trace.trace(), translator);
  EXPECT_EQ(prediction.events_uncosted, 12u);
  EXPECT_TRUE(contains(row_of(prediction, EventClass::BtTranslate)->why, "no figure published"));
  bool said = false;
  for (const auto& note : prediction.notes)
    said = said || contains(note, "12 events are kept but not costed");
  EXPECT_TRUE(said);
}

TEST(Calibrated, EachClassCostsWhatItCostHereByTechnique) {
  HandMadeTrace trace("full");
  trace.trap(EventReason::PrivilegedInstruction, 10, "cli")
      .add(EventKind::VmExit, EventReason::IoOut, 10, "", 0xe8);
  Profile here;
  here.name = "test-host";
  here.kind = PlatformKind::Calibrated;
  here.clock_ghz = 1;
  here.sources["test"] = "the test";
  here.calibrated["full"]["monitor:trap-interrupt-flag"] =
      Cost{std::nullopt, 30.0, "calibrated", "test", ""};
  here.calibrated["full"]["vmm:exit-monitor-channel"] =
      Cost{std::nullopt, 20.0, "calibrated", "test", ""};
  here.calibrated["full"]["vmm:run"] = Cost{std::nullopt, 1000.0, "calibrated", "test", ""};
  const Prediction prediction = predicted(trace.trace(), here);
  EXPECT_DOUBLE_EQ(prediction.predicted.ns[static_cast<std::size_t>(PrivilegeLevel::Monitor)], 300);
  EXPECT_DOUBLE_EQ(prediction.predicted.ns[static_cast<std::size_t>(PrivilegeLevel::Vmm)],
                   1000 + 200);
  // Another technique's trace finds no calibration, and says so.
  HandMadeTrace hvm("hvm");
  hvm.add(EventKind::VmExit, EventReason::IoIn, 3, "", 0x3f8);
  const Prediction other = predicted(hvm.trace(), here);
  EXPECT_EQ(other.events_uncosted, 3u);
}

TEST(HostProfile, WhatTheRecordingMachinesEventsAddedInTheGuestIsTakenOut) {
  HandMadeTrace trace("full");
  trace.trap(EventReason::PrivilegedInstruction, 10, "cli");
  Profile host;
  host.name = "test-host";
  host.kind = PlatformKind::Calibrated;
  host.clock_ghz = 1;
  host.sources["test"] = "the test";
  // Each cli cost 150 ns inside KVM_RUN: 1,500 of the guest's 3,000 ns.
  host.calibrated["full"]["guest:trap-interrupt-flag"] =
      Cost{std::nullopt, 150.0, "calibrated", "test", ""};
  auto simulation = simulate(trace.trace(), {hardware({}), host}, host);
  ASSERT_TRUE(simulation.ok());
  EXPECT_EQ(simulation->host_profile, "test-host");
  EXPECT_DOUBLE_EQ(simulation->host_guest_overhead_ns, 1500);
  const auto& other = simulation->predictions[0].predicted;
  EXPECT_DOUBLE_EQ(other.ns[static_cast<std::size_t>(PrivilegeLevel::GuestUser)], 500);
  EXPECT_DOUBLE_EQ(other.ns[static_cast<std::size_t>(PrivilegeLevel::GuestKernel)], 1000);
  // The recording machine's own profile keeps the guest time as measured.
  const auto& same = simulation->predictions[1].predicted;
  EXPECT_DOUBLE_EQ(same.ns[static_cast<std::size_t>(PrivilegeLevel::GuestKernel)], 2000);
  // More overhead than guest time leaves none, never less than none.
  host.calibrated["full"]["guest:trap-interrupt-flag"].ns = 1000.0;
  auto clamped = simulate(trace.trace(), {hardware({})}, host);
  ASSERT_TRUE(clamped.ok());
  EXPECT_DOUBLE_EQ(
      clamped->predictions[0].predicted.ns[static_cast<std::size_t>(PrivilegeLevel::GuestKernel)],
      0);
}

TEST(HostProfile, IsFoundByTheTracesBackendAndCpu) {
  auto host = find_host_profile(
      "platform: kvm_pvm (software KVM backend (PVM), no VT-x/AMD-V) on Intel(R) Xeon(R) "
      "Processor, Linux 6.18");
  ASSERT_TRUE(host.has_value()) << "bench/profiles has this machine kind's calibration";
  EXPECT_EQ(host->kind, PlatformKind::Calibrated);
  EXPECT_FALSE(find_host_profile("platform: kvm_intel (VT-x) on Some CPU, Linux 6.1").has_value());
}

TEST(Operations, EventsPerOperationAreTheDifferenceInWholeEvents) {
  HandMadeTrace small("full");
  small.trap(EventReason::PrivilegedInstruction, 3, "lgdt [rdi]")
      .trap(EventReason::PrivilegedInstruction, 10, "in al, dx");
  HandMadeTrace large("full");
  large.trap(EventReason::PrivilegedInstruction, 3, "lgdt [rdi]")
      .trap(EventReason::PrivilegedInstruction, 30, "in al, dx")
      .add(EventKind::InterruptInjection, EventReason::ExternalInterrupt, 2, "", 0x20);
  const auto per_operation = events_per_operation(small.trace(), 10, large.trace(), 30);
  ASSERT_EQ(per_operation.size(), 1u) << "boot cancels, two ticks in 20 operations are not theirs";
  EXPECT_EQ(per_operation.at(EventClass::TrapIo), 1);

  // On a platform that emulates the `in`, its native cost is not paid; a
  // fault's is, with what the platform adds.
  Profile platform = hardware({}, 500);
  const OperationCost in = operation_cost(platform, 3000, per_operation);
  ASSERT_TRUE(in.cycles.has_value());
  EXPECT_DOUBLE_EQ(*in.cycles, 500) << in.explanation;
  const OperationCost fault =
      operation_cost(platform, 1000, {{EventClass::TrapPageFault, 1}, {EventClass::TrapReturn, 1}});
  ASSERT_TRUE(fault.cycles.has_value());
  EXPECT_DOUBLE_EQ(*fault.cycles, 1000 + 500) << fault.explanation;
  platform.costs.erase(Transition::IoExit);
  EXPECT_FALSE(operation_cost(platform, 3000, per_operation).cycles.has_value());
}

TEST(Calibrate, TheFitRecoversTheCostsThatMadeTheRuns) {
  // Runs made from known costs: 7 ns a trap, 40 ns an exit, 500 ns a run.
  std::vector<CalibrationRun> runs;
  for (double traps : {10.0, 50.0, 200.0}) {
    for (double exits : {5.0, 80.0}) {
      CalibrationRun run;
      run.counts = {{"run", 1}, {"trap-io", traps}, {"exit-io", exits}};
      run.target_ns = 500 + 7 * traps + 40 * exits;
      runs.push_back(run);
    }
  }
  const auto costs = fit_costs(runs);
  EXPECT_NEAR(costs.at("run"), 500, 1e-3);
  EXPECT_NEAR(costs.at("trap-io"), 7, 1e-4);
  EXPECT_NEAR(costs.at("exit-io"), 40, 1e-4);
  // A cost the data would make negative is 0 instead.
  for (auto& run : runs)
    run.target_ns = 500 + 7 * run.counts["trap-io"];
  runs[0].target_ns -= 50;
  EXPECT_GE(fit_costs(runs).at("exit-io"), 0);
}

TEST(Profiles, ThePublishedOnesReadAndCiteTheirSources) {
  const auto names = profile_names();
  for (const char* expected :
       {"vtx-2006", "vmware-bt-2006", "vtx-ept-vpid-2009", "vtx-apicv-modern", "amdv-npt"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
  for (const auto& name : names) {
    auto profile = find_profile(name);
    ASSERT_TRUE(profile.ok()) << name << ": " << profile.error().message;
    EXPECT_EQ(profile->name, name);
    EXPECT_FALSE(profile->title.empty());
    for (const auto& [transition, cost] : profile->costs) {
      EXPECT_EQ(profile->sources.count(cost.source), 1u) << name;
      EXPECT_FALSE(cost.note.empty()) << name << " " << transition_name(transition);
    }
    // Written again, it reads the same.
    std::ostringstream written;
    write_profile(*profile, written);
    auto again = parse_profile(written.str());
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_EQ(again->costs.size(), profile->costs.size());
    EXPECT_EQ(again->features, profile->features);
  }
  // The 2006 platforms carry Adams and Agesen's figures exactly.
  auto vtx = find_profile("vtx-2006");
  ASSERT_TRUE(vtx.ok());
  EXPECT_EQ(vtx->costs.at(Transition::IoExit).cycles, 15826);
  EXPECT_FALSE(vtx->has(Feature::NestedPaging));
  auto ept = find_profile("vtx-ept-vpid-2009");
  ASSERT_TRUE(ept.ok());
  EXPECT_TRUE(ept->has(Feature::NestedPaging));
}

TEST(Profiles, BadFilesAndNamesAreRefusedNamingTheProblem) {
  struct Case {
    std::string text;
    std::string names;
  };
  const std::string head = R"({"format": "vmlab-profile", "version": 1, "name": "x",
      "title": "t", "kind": "hardware", "cpu": "c", "clock_ghz": 1, "features": [],
      "sources": {"s": "a source"}, )";
  for (const auto& [text, names] : {
           Case{"[", "not a JSON document"},
           Case{R"({"format": "vmlab-scorecard"})", "not a vmlab-profile file"},
           Case{head + R"("costs": {"bt-inline": {"cycles": 1, "basis": "measured",
               "source": "s", "note": ""}}})",
                "costs.bt-inline: is not a transition of a hardware platform"},
           Case{head + R"("costs": {"io-exit": {"cycles": -1, "basis": "measured",
               "source": "s", "note": ""}}})",
                "costs.io-exit.cycles"},
           Case{head + R"("costs": {"io-exit": {"cycles": 1, "basis": "guess",
               "source": "s", "note": ""}}})",
                "costs.io-exit.basis"},
           Case{head + R"("costs": {"io-exit": {"cycles": 1, "basis": "measured",
               "source": "elsewhere", "note": ""}}})",
                "not one of the file's sources"},
           Case{head + R"("costs": {"io-exit": {"cycles": null, "basis": "estimate",
               "source": "s", "note": ""}}})",
                "no figure and no note"},
       }) {
    auto parsed = parse_profile(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_TRUE(contains(parsed.error().message, names)) << parsed.error().message;
  }
  auto unknown = find_profile("vtx-3000");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(contains(unknown.error().message, "vtx-2006")) << "the names it has";
}

TEST(Simulation, ATraceWithoutLevelTimesIsRefused) {
  Trace trace;
  trace.version = 2;
  EXPECT_FALSE(simulate(trace, {hardware({})}).ok());
}

TEST(Simulation, PrintsEveryProfileAndThePlatformItWasRecordedOn) {
  HandMadeTrace trace("full");
  trace.trap(EventReason::ShadowFill, 4);
  auto simulation = simulate(trace.trace(), {hardware({}), hardware({Feature::NestedPaging})});
  ASSERT_TRUE(simulation.ok());
  std::ostringstream out;
  print_simulation(*simulation, out);
  EXPECT_TRUE(contains(out.str(), "recorded on platform: test")) << out.str();
  EXPECT_TRUE(contains(out.str(), "hidden-page-fault-exit")) << out.str();
  EXPECT_TRUE(contains(out.str(), "removed by nested paging")) << out.str();
  std::ostringstream json;
  write_simulation_json(*simulation, json);
  EXPECT_EQ(json.str().rfind("{\n \"format\": \"vmlab-simulation\"", 0), 0u);
}

}  // namespace
}  // namespace vmlab::simulate
