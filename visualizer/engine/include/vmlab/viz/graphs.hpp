// vmlab-viz's two Graphviz pictures, written as DOT text (the app lays them
// out with libgvc and shows the SVG):
//
// - the transition graph of a range: the levels as nodes, each change of
//   level the range holds (TransitionMatrix) as an edge "N× · time";
// - how a CPU technique works: which part runs in which ring and CPU mode,
//   every way between them, and the way one event travelled, highlighted;
//   and beside it the two hypervisor models, with vmlab's place in one.
//
// What the pictures say follows DESIGN.md 1 and the modes' sources: under
// full, bt and para the monitor is two parts, one-instruction CPL0 stubs in
// the VM (an `out` to port 0xe8 each) and its logic in the VMM process, so
// every trap leaves the VM through KVM (modes/full/full_mode.hpp).
//
// No Qt and no Graphviz here: the tests read the DOT. Nodes and edges carry
// ids that Graphviz copies into the SVG (id="..."), for the app's tests.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/events.hpp"
#include "vmlab/viz/aggregates.hpp"

namespace vmlab::viz {

// Colours as "#rrggbb" (the app's palette), and the font Graphviz measures
// text in and the SVG names.
struct GraphStyle {
  std::array<std::string, kLaneCount> level_fill;  // a level's node (its timeline band)
  std::array<std::string, kLaneCount> level_border;
  std::string text = "#1f1f1f";
  std::string edge = "#202020";
  std::string highlight = "#ff1493";  // the selected event's way
  std::string unvisited = "#a0a0a0";  // a level the range never entered
  std::string neutral_fill = "#eeeeee";
  std::string background = "#ffffff";
  std::string font = "DejaVu Sans";
};

// `text` as a DOT double-quoted string: " and \ escaped, a line break as \n.
// (A backslash starts an escape in a Graphviz label, so a lone one would
// otherwise change what the label says.)
std::string dot_quoted(std::string_view text);

// ---- The transition graph

// Ids in the DOT and the SVG: "level-guest-user", "transition-guest-user-monitor".
std::string level_node_id(TimelineLane lane);
std::string transition_edge_id(TimelineLane from, TimelineLane to);
// An edge's pen width: 1 for one transition, 6 for the most any edge has,
// on a log scale between (a run's counts span orders of magnitude).
double transition_pen_width(std::uint64_t count, std::uint64_t most);

// A node per level, labelled with its time: the stays after the changes
// into it, as each edge counts them (time before the range's first change
// is not in the matrix). An edge per changing pair, labelled with its count
// and those stays, its width by count. The VMM, the monitor, both guest
// levels and halted are always drawn, in the timeline's order from the top,
// so the picture keeps its shape from one selection to the next: one that
// no change in the range enters or leaves is greyed, "not seen". Under hvm
// that says no monitor ran, and often that guest user code never exited:
// its system calls go to the kernel without the VMM seeing them, and the
// timeline counts the guest's time at the level it exited from. The lane
// for a level KVM did not report is drawn only when the range has it.
std::string transition_graph_dot(const TransitionMatrix& transitions, const GraphStyle& style);

// ---- How a technique works

enum class Technique : std::uint8_t { Hvm, Full, Bt, Para };
// From the trace header's run line, "cpu=full workload=syscalls n=200" (the
// runner writes "cpu=" + --cpu first); nullopt for a run that names none of
// vmlab's techniques.
std::optional<Technique> technique_of(std::string_view run_description);
std::string_view technique_name(Technique technique);   // "full"
std::string_view technique_title(Technique technique);  // "trap-and-emulate"
// "kvm_pvm" from "platform: kvm_pvm (software KVM backend ...) on ...";
// empty for a line that names no backend vmlab knows.
std::string kvm_backend_of(std::string_view platform_line);

// The parts of the picture.
enum class Component : std::uint8_t {
  GuestUser,
  GuestKernel,
  MonitorStubs,      // full, bt, para: the CPL0 stubs in the VM
  PageTables,        // full, bt: the shadow tables; para: the guest's own, validated
  TranslationCache,  // bt
  SharedPage,        // para: the virtual interrupt flag
  Kvm,
  RunLoop,
  MonitorLogic,  // full, bt, para: in the VMM process
  Translator,    // bt
  Devices,
  Count,
};
std::string_view component_id(Component component);  // "monitor-stubs"
bool has_component(Technique technique, Component component);

// One step of a way through the picture: an edge of it.
struct Hop {
  Component from = Component::GuestUser;
  Component to = Component::GuestUser;
  friend bool operator==(const Hop&, const Hop&) = default;
};
// The edge's id in the DOT and the SVG: "path-guest-user-monitor-stubs".
std::string hop_edge_id(Hop hop);

// A technique's edges, each with what goes along it.
struct ModeEdge {
  Hop hop;
  std::string_view label;
  bool dotted = false;  // where code runs from, not a transfer of control
};
std::vector<ModeEdge> mode_edges(Technique technique);

// The monitor work a VM exit carried: a trap, hypercall or translation
// starting inside it (the timeline counts such an exit as the monitor's).
struct CarriedWork {
  EventKind kind = EventKind::MonitorTrap;
  EventReason reason = EventReason::Unknown;
  PrivilegeLevel to = PrivilegeLevel::Unknown;  // where the monitor resumed the guest
  std::string detail;
};

// An event, as much of it as its way depends on.
struct PathEvent {
  EventKind kind = EventKind::VmExit;
  EventReason reason = EventReason::Unknown;
  PrivilegeLevel from = PrivilegeLevel::Unknown;
  PrivilegeLevel to = PrivilegeLevel::Unknown;
  std::uint64_t address = 0;           // an injected interrupt's vector
  std::string detail;                  // a trap's decoded instruction ("out dx, al")
  std::optional<CarriedWork> carried;  // a VM exit's: its way is the work's
};
// Event `index` of `trace`, with the monitor work a VM exit carried.
PathEvent path_event_of(const TraceModel& trace, EventIndex index);

struct ModePath {
  std::vector<Hop> hops;  // in the order travelled; empty: nothing to highlight
  std::string caption;    // what happened, in a sentence or two
};
// The way `event` went under `technique`, each hop an edge of mode_edges().
ModePath event_path(Technique technique, const PathEvent& event);
// What the technique's usual way is, for the picture with no event picked.
std::string common_path_caption(Technique technique);

// The technique's parts, in clusters by ring and CPU mode (the VM; the host
// kernel; the VMM process in host user space), every edge of mode_edges(),
// those of `highlighted` in the style's highlight colour and thicker.
// `kvm_backend` (kvm_backend_of) names KVM and the VM's CPU mode.
std::string mode_graph_dot(Technique technique, const ModePath* highlighted,
                           std::string_view kvm_backend, const GraphStyle& style);

// Type 1 (bare metal) and type 2 (hosted) hypervisors as stacks, with where
// vmlab's VMM process and KVM sit in the second.
std::string hypervisor_models_dot(const GraphStyle& style);

}  // namespace vmlab::viz
