// The DOT of vmlab-viz's two Graphviz views, read as text: the transition
// graph of the hand-written trace (a node per level, an edge per change with
// its count), how each technique works (its parts and ways, and which ways
// an event travelled), and DOT strings escaped. No Graphviz and no Qt here:
// the app's tests lay the same text out.
#include "vmlab/viz/graphs.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <regex>

#include "sample_trace.hpp"
#include "viz_test_support.hpp"
#include "vmlab/viz/labels.hpp"

namespace vmlab::viz {
namespace {

using enum TimelineLane;

GraphStyle test_style() {
  GraphStyle style;
  for (std::size_t index = 0; index < kLaneCount; ++index) {
    style.level_fill[index] = "#fill" + std::to_string(index);
    style.level_border[index] = "#line" + std::to_string(index);
  }
  style.highlight = "#ff1493";
  return style;
}

// The attributes of the node or edge whose id is `id` ("" if none).
std::string statement_with_id(const std::string& dot, const std::string& id) {
  const std::string key = "id=\"" + id + "\"";
  const auto found = dot.find(key);
  if (found == std::string::npos) return {};
  const auto start = dot.rfind('\n', found) + 1;
  return dot.substr(start, dot.find('\n', found) - start);
}

std::vector<std::string> ids_with_prefix(const std::string& dot, const std::string& prefix) {
  std::vector<std::string> ids;
  const std::regex id("id=\"(" + prefix + "[^\"]*)\"");
  for (auto match = std::sregex_iterator(dot.begin(), dot.end(), id);
       match != std::sregex_iterator(); ++match) {
    ids.push_back((*match)[1]);
  }
  return ids;
}

TEST(DotText, QuotedStringsAreEscaped) {
  EXPECT_EQ(dot_quoted("plain"), "\"plain\"");
  EXPECT_EQ(dot_quoted("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(dot_quoted("a\\nb"), "\"a\\\\nb\"") << "a backslash in the text stays one";
  EXPECT_EQ(dot_quoted("two\nlines"), "\"two\\nlines\"");
  EXPECT_EQ(dot_quoted("tab\there\rcr"), "\"tab here cr\"");
  EXPECT_EQ(dot_quoted("µs ×"), "\"µs ×\"") << "UTF-8 passes";
  // What comes from outside (the system's font name) is escaped where it is used.
  GraphStyle style = test_style();
  style.font = "Odd \"Font\" \\ Name";
  const std::string dot = transition_graph_dot(TransitionMatrix(), style);
  EXPECT_NE(dot.find("fontname=\"Odd \\\"Font\\\" \\\\ Name\""), std::string::npos) << dot;
  EXPECT_EQ(dot.find("fontname=\"Odd \"Font"), std::string::npos);
}

TEST(TransitionGraph, ANodePerLevelAndAnEdgePerChange) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  const Aggregates all = aggregate(model);
  const std::string dot = transition_graph_dot(all.transitions, test_style());
  ASSERT_EQ(dot.rfind("digraph transitions {", 0), 0u);

  // Each level's time: the stays after the changes into it.
  struct Level {
    TimelineLane lane;
    const char* label;
  };
  for (const Level& level :
       {Level{Vmm, "VMM\\n900 ns"}, Level{Monitor, "Monitor\\n1.90 µs"},
        Level{GuestKernel, "Guest kernel\\n2.30 µs"}, Level{GuestUser, "Guest user\\n1.40 µs"},
        Level{Halted, "Halted\\n1.50 µs"}}) {
    const std::string node = statement_with_id(dot, level_node_id(level.lane));
    ASSERT_FALSE(node.empty()) << lane_name(level.lane);
    EXPECT_NE(node.find(std::string("label=\"") + level.label + "\""), std::string::npos) << node;
    const auto index = std::to_string(static_cast<int>(level.lane));
    EXPECT_NE(node.find("fillcolor=\"#fill" + index + "\""), std::string::npos) << node;
  }
  EXPECT_TRUE(statement_with_id(dot, level_node_id(GuestUnknown)).empty())
      << "no unreported level in this trace";

  // The nine changes of aggregates_test, each with its count and time.
  struct Change {
    TimelineLane from, to;
    const char* label;
  };
  const std::vector<Change> changes = {{GuestUser, Monitor, "1× · 800 ns"},
                                       {Monitor, GuestKernel, "2× · 1.70 µs"},
                                       {GuestKernel, Monitor, "2× · 1.10 µs"},
                                       {Monitor, GuestUser, "1× · 1.40 µs"},
                                       {GuestUser, Vmm, "1× · 400 ns"},
                                       {Vmm, GuestKernel, "1× · 600 ns"},
                                       {GuestKernel, Vmm, "1× · 100 ns"},
                                       {Vmm, Halted, "1× · 1.50 µs"},
                                       {Halted, Vmm, "1× · 400 ns"}};
  EXPECT_EQ(ids_with_prefix(dot, "transition-").size(), changes.size());
  for (const Change& change : changes) {
    const std::string edge = statement_with_id(dot, transition_edge_id(change.from, change.to));
    ASSERT_FALSE(edge.empty()) << lane_name(change.from) << " -> " << lane_name(change.to);
    EXPECT_NE(edge.find(std::string("\"") + std::string(lane_name(change.from)) + "\" -> \"" +
                        std::string(lane_name(change.to)) + "\""),
              std::string::npos)
        << edge;
    EXPECT_NE(edge.find(change.label), std::string::npos) << edge;
    // Two is the most here: those edges are the thickest.
    const bool most = std::string(change.label).rfind("2×", 0) == 0;
    EXPECT_NE(edge.find(most ? "penwidth=6.00" : "penwidth=1.00"), std::string::npos) << edge;
  }
  EXPECT_TRUE(statement_with_id(dot, transition_edge_id(GuestKernel, GuestUser)).empty())
      << "no change of no count";
}

TEST(TransitionGraph, LevelsNotSeenAreGreyedAndFollowTheRange) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  const Aggregates part = aggregate(model, {3000, 4300});
  GraphStyle style = test_style();
  style.unvisited = "#grey00";
  const std::string dot = transition_graph_dot(part.transitions, style);
  for (const TimelineLane lane : {Vmm, GuestUser, Halted}) {
    const std::string node = statement_with_id(dot, level_node_id(lane));
    ASSERT_FALSE(node.empty()) << lane_name(lane) << ": drawn, greyed";
    EXPECT_NE(node.find("not seen"), std::string::npos) << node;
    EXPECT_NE(node.find("dashed"), std::string::npos) << node;
    EXPECT_NE(node.find("#grey00"), std::string::npos) << node;
  }
  EXPECT_NE(statement_with_id(dot, level_node_id(Monitor)).find("#fill1"), std::string::npos);
  EXPECT_EQ(ids_with_prefix(dot, "transition-"),
            (std::vector<std::string>{transition_edge_id(Monitor, GuestKernel),
                                      transition_edge_id(GuestKernel, Monitor)}));
  EXPECT_NE(statement_with_id(dot, transition_edge_id(GuestKernel, Monitor)).find("2× · 800 ns"),
            std::string::npos);

  const std::string empty = transition_graph_dot(TransitionMatrix(), style);
  EXPECT_TRUE(ids_with_prefix(empty, "transition-").empty());
  EXPECT_EQ(ids_with_prefix(empty, "level-").size(), 5u);
  EXPECT_NE(empty.find("No change of level in this range."), std::string::npos);
}

TEST(TransitionGraph, AnUnreportedLevelWhenTheRangeHasIt) {
  TransitionMatrix matrix;
  matrix.at(GuestUnknown, Vmm) = {3, 300};
  matrix.at(Vmm, GuestUnknown) = {3, 9000};
  const std::string dot = transition_graph_dot(matrix, test_style());
  const std::string node = statement_with_id(dot, level_node_id(GuestUnknown));
  EXPECT_NE(node.find("Guest (level unknown)\\n9.00 µs"), std::string::npos) << node;
  EXPECT_NE(dot.find("rank=same; \"guest-kernel\"; \"unknown\";"), std::string::npos) << dot;
}

TEST(TransitionGraph, PenWidthsOnALogScale) {
  EXPECT_DOUBLE_EQ(transition_pen_width(1, 1000), 1.0);
  EXPECT_DOUBLE_EQ(transition_pen_width(1000, 1000), 6.0);
  EXPECT_NEAR(transition_pen_width(31, 1000), 1.0 + 5.0 * std::log(31.0) / std::log(1000.0), 1e-9);
  EXPECT_DOUBLE_EQ(transition_pen_width(5, 1), 1.0) << "one edge of one: nothing to compare";
  double previous = 0;
  for (const std::uint64_t count : {1u, 2u, 10u, 100u, 999u, 1000u}) {
    const double width = transition_pen_width(count, 1000);
    EXPECT_GT(width, previous) << count;
    previous = width;
  }
}

TEST(Technique, FromTheRunLineAndTheBackendFromThePlatformLine) {
  EXPECT_EQ(technique_of("cpu=full workload=syscalls n=1"), Technique::Full);
  EXPECT_EQ(technique_of("cpu=hvm workload=pio"), Technique::Hvm);
  EXPECT_EQ(technique_of("cpu=bt"), Technique::Bt);
  EXPECT_EQ(technique_of("cpu=para workload=pagefaults n=10"), Technique::Para);
  EXPECT_EQ(technique_of("cpu=mix workload=synthetic"), std::nullopt);
  EXPECT_EQ(technique_of("cpu=fully workload=x"), std::nullopt);
  EXPECT_EQ(technique_of("workload=x cpu=full"), std::nullopt) << "the runner writes cpu= first";
  EXPECT_EQ(technique_of(""), std::nullopt);
  EXPECT_EQ(
      kvm_backend_of("platform: kvm_pvm (software KVM backend (PVM), no VT-x/AMD-V) on AMD EPYC"),
      "kvm_pvm");
  EXPECT_EQ(kvm_backend_of("platform: kvm_intel (Intel VT-x) on Xeon, Linux 6.1"), "kvm_intel");
  EXPECT_EQ(kvm_backend_of("platform: test backend on test CPU"), "");
  EXPECT_EQ(kvm_backend_of("kvm_amd"), "");
}

constexpr std::array kTechniques = {Technique::Hvm, Technique::Full, Technique::Bt,
                                    Technique::Para};

TEST(ModeGraph, EachTechniquesPartsAndWays) {
  for (const Technique technique : kTechniques) {
    const std::string dot = mode_graph_dot(technique, nullptr, "", test_style());
    SCOPED_TRACE(std::string(technique_name(technique)));
    for (std::size_t index = 0; index < static_cast<std::size_t>(Component::Count); ++index) {
      const auto component = static_cast<Component>(index);
      EXPECT_EQ(!statement_with_id(dot, std::string(component_id(component))).empty(),
                has_component(technique, component))
          << component_id(component);
    }
    const auto edges = mode_edges(technique);
    EXPECT_EQ(ids_with_prefix(dot, "path-").size(), edges.size());
    for (const ModeEdge& edge : edges) {
      EXPECT_TRUE(has_component(technique, edge.hop.from)) << hop_edge_id(edge.hop);
      EXPECT_TRUE(has_component(technique, edge.hop.to)) << hop_edge_id(edge.hop);
      EXPECT_FALSE(statement_with_id(dot, hop_edge_id(edge.hop)).empty()) << hop_edge_id(edge.hop);
    }
    EXPECT_EQ(dot.find("#ff1493"), std::string::npos) << "nothing highlighted";
  }
  using enum Component;
  // Under hvm the kernel runs in ring 0 and user <-> kernel needs no exit;
  // under the others every change between them passes the monitor.
  const std::string hvm = mode_graph_dot(Technique::Hvm, nullptr, "kvm_intel", test_style());
  EXPECT_FALSE(statement_with_id(hvm, hop_edge_id({GuestUser, GuestKernel})).empty());
  EXPECT_NE(hvm.find("VMX non-root mode (Intel VT-x)"), std::string::npos);
  const auto ring0 = hvm.find("Ring 0");
  ASSERT_NE(ring0, std::string::npos);
  EXPECT_NE(hvm.find("\"guest-kernel\" [", ring0), std::string::npos) << "in ring 0's cluster";
  for (const Technique technique : {Technique::Full, Technique::Bt, Technique::Para}) {
    const std::string dot = mode_graph_dot(technique, nullptr, "kvm_pvm", test_style());
    EXPECT_TRUE(statement_with_id(dot, hop_edge_id({GuestUser, GuestKernel})).empty());
    EXPECT_TRUE(statement_with_id(dot, hop_edge_id({GuestKernel, GuestUser})).empty());
    EXPECT_NE(dot.find("KVM (kvm_pvm)"), std::string::npos);
    EXPECT_NE(dot.find("\"guest-kernel\" [", dot.find("Ring 3")), std::string::npos);
    EXPECT_LT(dot.find("\"guest-kernel\" ["), dot.find("Ring 0")) << "the kernel is in ring 3";
  }
}

// Every event the recorder can write, under every technique.
std::vector<PathEvent> every_event() {
  std::vector<PathEvent> events;
  const std::array levels = {PrivilegeLevel::Vmm, PrivilegeLevel::GuestKernel,
                             PrivilegeLevel::GuestUser, PrivilegeLevel::Unknown};
  for (std::size_t kind = 0; kind < static_cast<std::size_t>(EventKind::Count); ++kind) {
    for (std::size_t reason = 0; reason < static_cast<std::size_t>(EventReason::Count); ++reason) {
      for (const PrivilegeLevel from : levels) {
        for (const PrivilegeLevel to : levels) {
          for (const bool carries : {false, true}) {
            for (const char* detail : {"", "out dx, al", "rep insw"}) {
              PathEvent event;
              event.kind = static_cast<EventKind>(kind);
              event.reason = static_cast<EventReason>(reason);
              event.from = from;
              event.to = to;
              event.detail = detail;
              if (carries) {
                event.carried = CarriedWork{.kind = EventKind::MonitorTrap,
                                            .reason = event.reason,
                                            .to = to,
                                            .detail = detail};
              }
              events.push_back(event);
            }
          }
        }
      }
    }
  }
  return events;
}

TEST(ModeGraph, EveryWayIsMadeOfTheTechniquesEdges) {
  const auto events = every_event();
  for (const Technique technique : kTechniques) {
    const auto edges = mode_edges(technique);
    for (const PathEvent& event : events) {
      const ModePath path = event_path(technique, event);
      EXPECT_FALSE(path.caption.empty());
      for (const Hop& hop : path.hops) {
        const bool is_edge = std::any_of(edges.begin(), edges.end(),
                                         [&](const ModeEdge& edge) { return edge.hop == hop; });
        ASSERT_TRUE(is_edge) << technique_name(technique) << ": " << hop_edge_id(hop) << " for "
                             << event_kind_name(event.kind) << " "
                             << event_reason_name(event.reason) << ": " << path.caption;
      }
    }
  }
}

PathEvent event_of(EventKind kind, EventReason reason, PrivilegeLevel from, PrivilegeLevel to,
                   const std::string& detail = "") {
  PathEvent event;
  event.kind = kind;
  event.reason = reason;
  event.from = from;
  event.to = to;
  event.detail = detail;
  return event;
}

std::vector<std::string> hop_ids(const ModePath& path) {
  std::vector<std::string> ids;
  for (const Hop& hop : path.hops)
    ids.push_back(hop_edge_id(hop));
  return ids;
}

// The ids of the edges drawn in the highlight colour.
std::vector<std::string> highlighted_ids(const std::string& dot) {
  std::vector<std::string> ids;
  for (const std::string& id : ids_with_prefix(dot, "path-")) {
    if (statement_with_id(dot, id).find("color=\"#ff1493\"") != std::string::npos)
      ids.push_back(id);
  }
  return ids;
}

TEST(ModeGraph, ASystemCallUnderFullIsTwoTrapsWay) {
  using enum PrivilegeLevel;
  const ModePath path = event_path(
      Technique::Full,
      event_of(EventKind::MonitorTrap, EventReason::SystemCall, GuestUser, GuestKernel, "syscall"));
  const std::vector<std::string> way = {
      "path-guest-user-monitor-stubs", "path-monitor-stubs-kvm", "path-kvm-run-loop",
      "path-run-loop-monitor-logic",   "path-monitor-logic-kvm", "path-kvm-guest-kernel"};
  EXPECT_EQ(hop_ids(path), way);
  EXPECT_NE(path.caption.find("guest user → monitor stub → KVM → run loop → monitor → KVM → "
                              "guest kernel"),
            std::string::npos)
      << path.caption;
  std::vector<std::string> sorted = way;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> lit =
      highlighted_ids(mode_graph_dot(Technique::Full, &path, "", test_style()));
  std::sort(lit.begin(), lit.end());
  EXPECT_EQ(lit, sorted) << "those edges and no others";

  // The kernel's iretq back: a privileged instruction, kernel -> user.
  const ModePath back = event_path(
      Technique::Full, event_of(EventKind::MonitorTrap, EventReason::PrivilegedInstruction,
                                GuestKernel, GuestUser, "iretq"));
  EXPECT_EQ(hop_ids(back).front(), "path-guest-kernel-monitor-stubs");
  EXPECT_EQ(hop_ids(back).back(), "path-kvm-guest-user");
}

TEST(ModeGraph, WhatTheMonitorTouchesOnTheWay) {
  using enum PrivilegeLevel;
  auto contains = [](const ModePath& path, const std::string& id) {
    const auto ids = hop_ids(path);
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  // An emulated out reaches a device model; cli does not.
  EXPECT_TRUE(
      contains(event_path(Technique::Full,
                          event_of(EventKind::MonitorTrap, EventReason::PrivilegedInstruction,
                                   GuestKernel, GuestKernel, "out dx, al")),
               "path-monitor-logic-devices"));
  EXPECT_TRUE(
      contains(event_path(Technique::Bt, event_of(EventKind::MonitorTrap, EventReason::CallOut,
                                                  GuestKernel, GuestKernel, "rep outsb")),
               "path-monitor-logic-devices"));
  EXPECT_FALSE(contains(event_path(Technique::Full, event_of(EventKind::MonitorTrap,
                                                             EventReason::PrivilegedInstruction,
                                                             GuestKernel, GuestKernel, "cli")),
                        "path-monitor-logic-devices"));
  EXPECT_TRUE(contains(
      event_path(Technique::Full,
                 event_of(EventKind::MonitorTrap, EventReason::ShadowFill, GuestUser, GuestUser)),
      "path-monitor-logic-page-tables"));
  const ModePath translated = event_path(
      Technique::Bt,
      event_of(EventKind::Translation, EventReason::BlockTranslated, GuestKernel, GuestKernel));
  EXPECT_TRUE(contains(translated, "path-monitor-logic-translator"));
  EXPECT_TRUE(contains(translated, "path-translator-translation-cache"));
  // para: a validated page-table update, and the iret hypercall to user mode.
  const ModePath update = event_path(
      Technique::Para,
      event_of(EventKind::Hypercall, EventReason::HypercallMmuUpdate, GuestKernel, GuestKernel));
  EXPECT_EQ(hop_ids(update).front(), "path-guest-kernel-monitor-stubs");
  EXPECT_TRUE(contains(update, "path-monitor-logic-page-tables"));
  const ModePath iret = event_path(
      Technique::Para,
      event_of(EventKind::Hypercall, EventReason::HypercallIret, GuestKernel, GuestUser));
  EXPECT_EQ(hop_ids(iret).back(), "path-kvm-guest-user");
  // The exit that carried a port_io hypercall goes the hypercall's way.
  PathEvent exit = event_of(EventKind::VmExit, EventReason::IoOut, GuestKernel, Vmm);
  exit.carried = CarriedWork{.kind = EventKind::Hypercall,
                             .reason = EventReason::HypercallPortIo,
                             .to = GuestKernel,
                             .detail = "port_io(0x3f8, 0x1) = 0"};
  const ModePath carried = event_path(Technique::Para, exit);
  EXPECT_TRUE(contains(carried, "path-monitor-logic-devices"));
  EXPECT_EQ(hop_ids(carried).front(), "path-guest-kernel-monitor-stubs");
  EXPECT_NE(carried.caption.find("carrying hypercall hc-port-io (port_io(0x3f8, 0x1) = 0)"),
            std::string::npos)
      << carried.caption;
}

TEST(ModeGraph, ExitsInterruptsAndWhatIsNotOnTheWay) {
  using enum PrivilegeLevel;
  EXPECT_EQ(hop_ids(event_path(Technique::Hvm,
                               event_of(EventKind::VmExit, EventReason::IoOut, GuestKernel, Vmm))),
            (std::vector<std::string>{"path-guest-kernel-kvm", "path-kvm-run-loop",
                                      "path-run-loop-devices", "path-run-loop-kvm",
                                      "path-kvm-guest-kernel"}));
  EXPECT_EQ(hop_ids(event_path(Technique::Hvm,
                               event_of(EventKind::InterruptInjection,
                                        EventReason::ExternalInterrupt, Vmm, GuestKernel))),
            (std::vector<std::string>{"path-run-loop-kvm", "path-kvm-guest-kernel"}));
  EXPECT_EQ(hop_ids(event_path(Technique::Full,
                               event_of(EventKind::InterruptInjection,
                                        EventReason::ExternalInterrupt, Vmm, GuestKernel))),
            (std::vector<std::string>{"path-run-loop-monitor-logic", "path-monitor-logic-kvm",
                                      "path-kvm-guest-kernel"}));
  // A hlt under full traps into the monitor; under hvm it is an exit.
  EXPECT_EQ(hop_ids(event_path(Technique::Full,
                               event_of(EventKind::GuestHalt, EventReason::Halt, GuestKernel, Vmm)))
                .front(),
            "path-guest-kernel-monitor-stubs");
  EXPECT_EQ(hop_ids(event_path(Technique::Hvm,
                               event_of(EventKind::GuestHalt, EventReason::Halt, GuestKernel, Vmm)))
                .front(),
            "path-guest-kernel-kvm");
  // No monitor under hvm, no way for a blocked DMA.
  const ModePath trap =
      event_path(Technique::Hvm,
                 event_of(EventKind::MonitorTrap, EventReason::SystemCall, GuestUser, GuestKernel));
  EXPECT_TRUE(trap.hops.empty());
  EXPECT_NE(trap.caption.find("not part of how hvm works"), std::string::npos) << trap.caption;
  EXPECT_TRUE(event_path(Technique::Full,
                         event_of(EventKind::IommuFault, EventReason::IommuNotMapped, Vmm, Vmm))
                  .hops.empty());
  for (const Technique technique : kTechniques)
    EXPECT_FALSE(common_path_caption(technique).empty());
}

TEST(ModeGraph, AVmExitCarryingATrapFromTheTrace) {
  const TraceModel model = testing::load_text(testing::kSampleTrace);
  // Event 0: the stub's exit from user code that carried the syscall.
  const PathEvent exit = path_event_of(model, 0);
  EXPECT_EQ(exit.kind, EventKind::VmExit);
  ASSERT_TRUE(exit.carried.has_value());
  EXPECT_EQ(exit.carried->kind, EventKind::MonitorTrap);
  EXPECT_EQ(exit.carried->reason, EventReason::SystemCall);
  EXPECT_EQ(exit.carried->detail, "syscall");
  EXPECT_EQ(exit.carried->to, PrivilegeLevel::GuestKernel);
  EXPECT_EQ(hop_ids(event_path(Technique::Full, exit)),
            (std::vector<std::string>{"path-guest-user-monitor-stubs", "path-monitor-stubs-kvm",
                                      "path-kvm-run-loop", "path-run-loop-monitor-logic",
                                      "path-monitor-logic-kvm", "path-kvm-guest-kernel"}));
  // Event 3: the trap itself, with its decoded instruction.
  const PathEvent trap = path_event_of(model, 3);
  EXPECT_EQ(trap.detail, "out dx, al");
  EXPECT_FALSE(trap.carried.has_value());
  // Event 6: a plain port exit from user code; event 7: the hlt exit, whose
  // wait and interrupt are not monitor work.
  EXPECT_FALSE(path_event_of(model, 6).carried.has_value());
  EXPECT_EQ(path_event_of(model, 6).from, PrivilegeLevel::GuestUser);
  EXPECT_FALSE(path_event_of(model, 7).carried.has_value());
  EXPECT_EQ(path_event_of(model, 9).address, 0x20u);
}

TEST(HypervisorModels, BothTypesAndWhereVmlabSits) {
  const std::string dot = hypervisor_models_dot(test_style());
  EXPECT_NE(dot.find("Type 1: bare metal"), std::string::npos);
  EXPECT_NE(dot.find("Type 2: hosted"), std::string::npos);
  EXPECT_NE(dot.find("vmlab: the VMM process"), std::string::npos);
  EXPECT_NE(dot.find("KVM, in the host kernel"), std::string::npos);
  EXPECT_NE(dot.find("KVM is often called type 1"), std::string::npos);
}

TEST(Labels, LevelsAndLengths) {
  EXPECT_EQ(level_title(GuestKernel), "Guest kernel");
  EXPECT_EQ(level_title(GuestUnknown), "Guest (level unknown)");
  EXPECT_EQ(duration_words(850), "850 ns");
  EXPECT_EQ(duration_words(12'345), "12.3 µs");
  EXPECT_EQ(duration_words(4'560'000), "4.56 ms");
  EXPECT_EQ(duration_words(123'000'000'000), "123 s");
}

}  // namespace
}  // namespace vmlab::viz
