#include "vmlab/viz/graphs.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <initializer_list>

#include "vmlab/viz/labels.hpp"

namespace vmlab::viz {

namespace {

// The levels that have a rank of their own in the transition graph, in the
// timeline's order from the top. Halted sits beside the monitor, one rank
// from each level a hlt wait is entered from (the VMM under hvm, the
// monitor under the others); an unreported guest level beside the kernel.
constexpr std::array kRankedLevels = {TimelineLane::Vmm, TimelineLane::Monitor,
                                      TimelineLane::GuestKernel, TimelineLane::GuestUser};

std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", value);
  return text;
}

// The attributes of one DOT statement: `[name=value, ...]`.
class Attributes {
 public:
  Attributes& quoted(std::string_view name, std::string_view value) {
    return raw(name, dot_quoted(value));
  }
  Attributes& raw(std::string_view name, std::string_view value) {
    m_text += m_text.empty() ? "[" : ", ";
    m_text.append(name).append("=").append(value);
    return *this;
  }
  std::string text() const { return m_text.empty() ? std::string() : m_text + "]"; }

 private:
  std::string m_text;
};

std::string node_statement(std::string_view id, const Attributes& attributes) {
  return "  " + dot_quoted(id) + " " + attributes.text() + ";\n";
}

std::string edge_statement(std::string_view from, std::string_view to,
                           const Attributes& attributes) {
  return "  " + dot_quoted(from) + " -> " + dot_quoted(to) + " " + attributes.text() + ";\n";
}

// What every graph starts with: the font, the colours, a margin round it.
std::string graph_header(std::string_view name, const GraphStyle& style, std::string_view rankdir) {
  std::string dot = "digraph " + std::string(name) + " {\n";
  dot += "  graph " +
         Attributes()
             .raw("rankdir", rankdir)
             .quoted("bgcolor", style.background)
             .quoted("fontname", style.font)
             .quoted("fontcolor", style.text)
             .raw("fontsize", "12")
             .raw("pad", "0.25")
             .raw("nodesep", "0.5")
             .raw("ranksep", "0.6")
             .text() +
         ";\n";
  dot += "  node " +
         Attributes()
             .raw("shape", "box")
             .quoted("style", "rounded,filled")
             .quoted("fontname", style.font)
             .quoted("fontcolor", style.text)
             .raw("fontsize", "12")
             .quoted("margin", "0.16,0.08")
             .raw("penwidth", "1.4")
             .text() +
         ";\n";
  dot += "  edge " +
         Attributes()
             .quoted("fontname", style.font)
             .quoted("fontcolor", style.text)
             .raw("fontsize", "10")
             .quoted("color", style.edge)
             .raw("arrowsize", "0.8")
             .text() +
         ";\n";
  return dot;
}

// ---- How a technique works: where each part sits.

enum class Place : std::uint8_t { VmRing3, VmRing0, VmMemory, HostKernel, HostUser };

Place place_of(Technique technique, Component component) {
  switch (component) {
    case Component::GuestUser:
      return Place::VmRing3;
    case Component::GuestKernel:
      return technique == Technique::Hvm ? Place::VmRing0 : Place::VmRing3;
    case Component::MonitorStubs:
      return Place::VmRing0;
    case Component::PageTables:
    case Component::TranslationCache:
    case Component::SharedPage:
      return Place::VmMemory;
    case Component::Kvm:
      return Place::HostKernel;
    case Component::RunLoop:
    case Component::MonitorLogic:
    case Component::Translator:
    case Component::Devices:
    case Component::Count:
      break;
  }
  return Place::HostUser;
}

// The lane whose colours a part takes: the level the timeline counts its
// time at (a trap's stub and the logic it reaches are both the monitor's).
std::optional<TimelineLane> lane_of_component(Technique technique, Component component) {
  switch (component) {
    case Component::GuestUser:
      return TimelineLane::GuestUser;
    case Component::GuestKernel:
      return TimelineLane::GuestKernel;
    case Component::PageTables:
      // para's are the guest's own tables; full's and bt's the monitor's shadows.
      return technique == Technique::Para ? TimelineLane::GuestKernel : TimelineLane::Monitor;
    case Component::MonitorStubs:
    case Component::TranslationCache:
    case Component::MonitorLogic:
    case Component::Translator:
      return TimelineLane::Monitor;
    case Component::RunLoop:
    case Component::Devices:
      return TimelineLane::Vmm;
    case Component::SharedPage:
    case Component::Kvm:
    case Component::Count:
      break;
  }
  return std::nullopt;
}

std::string component_label(Technique technique, Component component,
                            std::string_view kvm_backend) {
  switch (component) {
    case Component::GuestUser:
      return "Guest user code";
    case Component::GuestKernel:
      switch (technique) {
        case Technique::Hvm:
          return "Guest kernel\n(unmodified)";
        case Technique::Full:
          return "Guest kernel\n(unmodified, deprivileged)";
        case Technique::Bt:
          return "Guest kernel\n(unmodified, run only\nas translated code)";
        case Technique::Para:
          return "Guest kernel\n(paravirtualized:\npv_ops make hypercalls)";
      }
      break;
    case Component::MonitorStubs:
      return "Monitor stubs\none `out 0xe8` per vector;\nthe real GDT, IDT, TSS";
    case Component::PageTables:
      return technique == Technique::Para ? "The guest's page tables\n(read-only to it, validated)"
                                          : "Shadow page tables\n(a kernel and a user view)";
    case Component::TranslationCache:
      return "Translation cache\n(blocks, chained)";
    case Component::SharedPage:
      return "Shared page\n(virtual IF: upcall_mask)";
    case Component::Kvm:
      return kvm_backend.empty() ? "KVM" : "KVM (" + std::string(kvm_backend) + ")";
    case Component::RunLoop:
      return "Run loop\nKVM_RUN, decodes each exit";
    case Component::MonitorLogic:
      switch (technique) {
        case Technique::Hvm:
          break;
        case Technique::Full:
          return "Monitor logic\ndecodes and emulates against\nthe virtual CPU, reflects\n"
                 "events into the guest kernel";
        case Technique::Bt:
          return "Monitor logic (full's)\nemulates call-outs, reflects\n"
                 "events into the guest kernel";
        case Technique::Para:
          return "Monitor\nhypercall handlers,\npage-table validator";
      }
      break;
    case Component::Translator:
      return "Translator\n(Zydis: a guest block\nin, a TC block out)";
    case Component::Devices:
      return "Device models\nUART, ATA, PIC, PIT, virtio";
    case Component::Count:
      break;
  }
  return "?";
}

// What a caption calls a part.
std::string_view component_words(Technique technique, Component component) {
  switch (component) {
    case Component::GuestUser:
      return "guest user";
    case Component::GuestKernel:
      return "guest kernel";
    case Component::MonitorStubs:
      return "monitor stub";
    case Component::PageTables:
      return technique == Technique::Para ? "page tables" : "shadow page tables";
    case Component::TranslationCache:
      return "translation cache";
    case Component::SharedPage:
      return "shared page";
    case Component::Kvm:
      return "KVM";
    case Component::RunLoop:
      return "run loop";
    case Component::MonitorLogic:
      return "monitor";
    case Component::Translator:
      return "translator";
    case Component::Devices:
      return "device model";
    case Component::Count:
      break;
  }
  return "?";
}

std::optional<Component> guest_component(PrivilegeLevel level) {
  switch (level) {
    case PrivilegeLevel::GuestKernel:
      return Component::GuestKernel;
    case PrivilegeLevel::GuestUser:
      return Component::GuestUser;
    case PrivilegeLevel::Vmm:
    case PrivilegeLevel::Monitor:
    case PrivilegeLevel::Unknown:
    case PrivilegeLevel::Count:
      break;
  }
  return std::nullopt;
}

bool one_of(EventReason reason, std::initializer_list<EventReason> reasons) {
  return std::find(reasons.begin(), reasons.end(), reason) != reasons.end();
}

// Builds a way hop by hop, and the caption's "a → b → c" with it. A side
// trip (the monitor calling a device model) reads "monitor (→ device model)".
class PathBuilder {
 public:
  explicit PathBuilder(Technique technique) : m_technique(technique) {}

  void go(std::optional<Component> from, std::optional<Component> to) {
    if (!from || !to) return;
    add({*from, *to});
    if (m_chain.empty() || m_last != *from) {
      if (!m_chain.empty()) m_chain += " … ";
      m_chain += component_words(m_technique, *from);
    }
    m_chain += " → ";
    m_chain += component_words(m_technique, *to);
    m_last = *to;
  }
  // From the part the way is at, and back to it.
  void side_trip(Component to) {
    if (m_last == Component::Count) return;  // no way yet to step off
    add({m_last, to});
    m_chain += " (→ ";
    m_chain += component_words(m_technique, to);
    m_chain += ")";
  }
  // A guest level → stub → KVM → run loop → the monitor logic.
  void into_monitor(PrivilegeLevel from) {
    go(guest_component(from), Component::MonitorStubs);
    go(Component::MonitorStubs, Component::Kvm);
    go(Component::Kvm, Component::RunLoop);
    go(Component::RunLoop, Component::MonitorLogic);
  }
  // The monitor resumes the guest at `to` (through KVM).
  void out_of_monitor(PrivilegeLevel to) {
    go(Component::MonitorLogic, Component::Kvm);
    go(Component::Kvm, guest_component(to));
  }
  void into_vmm(PrivilegeLevel from) {
    go(guest_component(from), Component::Kvm);
    go(Component::Kvm, Component::RunLoop);
  }
  void out_of_vmm(PrivilegeLevel to) {
    go(Component::RunLoop, Component::Kvm);
    go(Component::Kvm, guest_component(to));
  }

  ModePath finish(std::string_view what) const {
    ModePath path;
    path.hops = m_hops;
    path.caption = std::string(what);
    if (!m_chain.empty()) path.caption += " Its way: " + m_chain + ".";
    return path;
  }

 private:
  void add(Hop hop) {
    if (std::find(m_hops.begin(), m_hops.end(), hop) == m_hops.end()) m_hops.push_back(hop);
  }

  Technique m_technique;
  std::vector<Hop> m_hops;
  std::string m_chain;
  Component m_last = Component::Count;
};

// Whether a trap's decoded instruction reads or writes a port ("out dx, al",
// "rep outsb", "in al, 0x60"): its emulation reaches a device model.
bool is_port_instruction(std::string_view detail) {
  if (detail.rfind("rep ", 0) == 0) detail.remove_prefix(4);
  const std::string_view mnemonic = detail.substr(0, detail.find(' '));
  return mnemonic == "in" || mnemonic == "out" || mnemonic.rfind("ins", 0) == 0 ||
         mnemonic.rfind("outs", 0) == 0;
}

std::string event_words(EventKind kind, EventReason reason, std::string_view detail) {
  std::string words =
      std::string(event_kind_name(kind)) + " " + std::string(event_reason_name(reason));
  if (!detail.empty()) words += " (" + std::string(detail) + ")";
  return words;
}

std::string levels_words(const PathEvent& event) {
  return std::string(privilege_level_name(event.from)) + " → " +
         std::string(privilege_level_name(event.to));
}

// The monitor's own work on the way: a trap's, a hypercall's, a translation's.
void monitor_side_trips(Technique technique, EventReason reason, std::string_view detail,
                        PathBuilder& path) {
  using enum EventReason;
  if (one_of(reason, {PrivilegedInstruction, CallOut}) && is_port_instruction(detail)) {
    path.side_trip(Component::Devices);
  } else if (one_of(reason, {ShadowFill, PageTableWrite, HypercallMmuUpdate,
                             HypercallUpdateVaMapping, HypercallNewBaseptr}) &&
             has_component(technique, Component::PageTables)) {
    path.side_trip(Component::PageTables);
  } else if (one_of(reason, {HypercallPortIo, HypercallConsoleIo})) {
    path.side_trip(Component::Devices);
  } else if (one_of(reason, {TranslatedCodeWrite, BlockTranslated, BranchChained, IndirectMiss,
                             CodeInvalidated}) &&
             has_component(technique, Component::Translator)) {
    path.go(Component::MonitorLogic, Component::Translator);
    path.go(Component::Translator, Component::TranslationCache);
  }
}

ModePath exit_path(Technique technique, const PathEvent& event) {
  PathBuilder path(technique);
  const std::string name = "A VM exit, " + std::string(event_reason_name(event.reason)) +
                           ", from " + std::string(privilege_level_name(event.from)) + ".";
  if (event.carried && technique != Technique::Hvm) {
    // A stub's `out`: the exit is how the monitor's work reached the VMM.
    const CarriedWork& work = *event.carried;
    path.into_monitor(event.from);
    monitor_side_trips(technique, work.reason, work.detail, path);
    path.out_of_monitor(work.to);
    return path.finish("A VM exit at a monitor stub's `out`, carrying " +
                       event_words(work.kind, work.reason, work.detail) +
                       ": the trap left the VM this way, and the monitor resumed the guest at " +
                       std::string(privilege_level_name(work.to)) + ".");
  }
  using enum EventReason;
  if (one_of(event.reason, {IoIn, IoOut, MmioRead, MmioWrite})) {
    path.into_vmm(event.from);
    path.side_trip(Component::Devices);
    path.out_of_vmm(event.from);
    return path.finish(name +
                       " KVM passes port and MMIO accesses to the VMM, whose device "
                       "model answers; KVM_RUN resumes the guest after the instruction.");
  }
  if (event.reason == Halt) {
    path.into_vmm(event.from);
    path.out_of_vmm(event.from);
    return path.finish(name + " The VMM's vCPU thread sleeps until an interrupt is due.");
  }
  if (one_of(event.reason, {Shutdown, FailEntry, InternalError})) {
    path.into_vmm(event.from);
    return path.finish(name + " The run ends here.");
  }
  path.into_vmm(event.from);
  path.out_of_vmm(event.from);
  return path.finish(name + " KVM passes it to the VMM, which resumes the guest.");
}

struct TrapExplanation {
  EventReason reason;
  std::string_view text;
};
constexpr TrapExplanation kTrapExplanations[] = {
    {EventReason::SystemCall,
     "The monitor reflects the system call into the guest kernel as the CPU would have (the "
     "kernel runs at CPL3, so syscall cannot enter it)."},
    {EventReason::PrivilegedInstruction,
     "The instruction faulted at CPL3; the monitor emulates it against the virtual CPU and "
     "resumes after it."},
    {EventReason::ShadowFill,
     "A page fault the guest's own tables allow: the monitor builds the shadow entry and the "
     "guest goes on."},
    {EventReason::GuestPageFault,
     "A page fault of the guest's own: the monitor reflects it into the guest kernel."},
    {EventReason::PageTableWrite,
     "The guest wrote one of its page tables, which the monitor write-protects: it emulates "
     "the write and updates the shadow."},
    {EventReason::ReflectedException,
     "An exception of the guest's own: the monitor reflects it into the guest kernel."},
    {EventReason::CallOut,
     "Translated code called out (int3) for an instruction only the monitor may carry out, "
     "which it emulates."},
    {EventReason::TranslatedCodeWrite,
     "The guest wrote a page holding translated code: the translator drops its blocks."},
};

std::string_view trap_explanation(EventReason reason) {
  for (const TrapExplanation& explanation : kTrapExplanations) {
    if (explanation.reason == reason) return explanation.text;
  }
  return "The monitor handles it and resumes the guest.";
}

}  // namespace

std::string dot_quoted(std::string_view text) {
  std::string quoted = "\"";
  for (const char character : text) {
    switch (character) {
      case '"':
        quoted += "\\\"";
        break;
      case '\\':
        quoted += "\\\\";
        break;
      case '\n':
        quoted += "\\n";
        break;
      default:
        // Other control characters have no place in a label (a trace's
        // text could hold any); a space keeps the words apart.
        quoted += static_cast<unsigned char>(character) < 0x20 ? ' ' : character;
        break;
    }
  }
  return quoted + "\"";
}

// ---- The transition graph

std::string level_node_id(TimelineLane lane) {
  return "level-" + std::string(lane_name(lane));
}

std::string transition_edge_id(TimelineLane from, TimelineLane to) {
  return "transition-" + std::string(lane_name(from)) + "-" + std::string(lane_name(to));
}

double transition_pen_width(std::uint64_t count, std::uint64_t most) {
  constexpr double kThinnest = 1.0;
  constexpr double kThickest = 6.0;
  if (count <= 1 || most <= 1) return kThinnest;
  const double share =
      std::log(static_cast<double>(count)) / std::log(static_cast<double>(std::max(count, most)));
  return kThinnest + (kThickest - kThinnest) * share;
}

std::string transition_graph_dot(const TransitionMatrix& transitions, const GraphStyle& style) {
  std::array<std::uint64_t, kLaneCount> time_at{};
  std::array<bool, kLaneCount> visited{};
  std::uint64_t most = 0;
  for (std::size_t from = 0; from < kLaneCount; ++from) {
    for (std::size_t to = 0; to < kLaneCount; ++to) {
      const TransitionCell& cell =
          transitions.at(static_cast<TimelineLane>(from), static_cast<TimelineLane>(to));
      if (cell.count == 0) continue;
      visited[from] = visited[to] = true;
      time_at[to] += cell.time_ns;
      most = std::max(most, cell.count);
    }
  }

  std::string dot = graph_header("transitions", style, "TB");
  for (std::size_t index = 0; index < kLaneCount; ++index) {
    const auto lane = static_cast<TimelineLane>(index);
    if (lane == TimelineLane::GuestUnknown && !visited[index]) continue;
    Attributes node;
    node.quoted("id", level_node_id(lane));
    if (visited[index]) {
      node.quoted("label", std::string(level_title(lane)) + "\n" + duration_words(time_at[index]))
          .quoted("fillcolor", style.level_fill[index])
          .quoted("color", style.level_border[index]);
    } else {
      node.quoted("label", std::string(level_title(lane)) + "\nnot seen")
          .quoted("style", "rounded,dashed")
          .quoted("color", style.unvisited)
          .quoted("fontcolor", style.unvisited);
    }
    dot += node_statement(lane_name(lane), node);
  }
  // The timeline's order from the top, held by heavy invisible edges that
  // come first, so that the changes (which go both ways between most pairs)
  // do not turn the picture upside down.
  for (std::size_t index = 1; index < kRankedLevels.size(); ++index) {
    dot += edge_statement(lane_name(kRankedLevels[index - 1]), lane_name(kRankedLevels[index]),
                          Attributes().raw("style", "invis").raw("weight", "10"));
  }
  dot += "  { rank=same; " + dot_quoted(lane_name(TimelineLane::Monitor)) + "; " +
         dot_quoted(lane_name(TimelineLane::Halted)) + "; }\n";
  if (visited[static_cast<std::size_t>(TimelineLane::GuestUnknown)]) {
    dot += "  { rank=same; " + dot_quoted(lane_name(TimelineLane::GuestKernel)) + "; " +
           dot_quoted(lane_name(TimelineLane::GuestUnknown)) + "; }\n";
  }
  for (std::size_t from = 0; from < kLaneCount; ++from) {
    for (std::size_t to = 0; to < kLaneCount; ++to) {
      const auto from_lane = static_cast<TimelineLane>(from);
      const auto to_lane = static_cast<TimelineLane>(to);
      const TransitionCell& cell = transitions.at(from_lane, to_lane);
      if (cell.count == 0) continue;
      // Spaces either side keep the figures clear of a thick pen: Graphviz
      // puts a label's box against its edge.
      const std::string label =
          "   " + std::to_string(cell.count) + "× · " + duration_words(cell.time_ns) + "  ";
      dot +=
          edge_statement(lane_name(from_lane), lane_name(to_lane),
                         Attributes()
                             .quoted("id", transition_edge_id(from_lane, to_lane))
                             .quoted("label", label)
                             .raw("penwidth", number_text(transition_pen_width(cell.count, most))));
    }
  }
  if (most == 0) {
    dot += "  graph " +
           Attributes()
               .quoted("label", "No change of level in this range.")
               .raw("labelloc", "t")
               .text() +
           ";\n";
  }
  return dot + "}\n";
}

// ---- How a technique works

std::optional<Technique> technique_of(std::string_view run_description) {
  // The first word: "cpu=NAME".
  const std::string_view word = run_description.substr(0, run_description.find(' '));
  if (word.rfind("cpu=", 0) != 0) return std::nullopt;
  const std::string_view name = word.substr(4);
  for (const Technique technique :
       {Technique::Hvm, Technique::Full, Technique::Bt, Technique::Para}) {
    if (name == technique_name(technique)) return technique;
  }
  return std::nullopt;
}

std::string_view technique_name(Technique technique) {
  switch (technique) {
    case Technique::Hvm:
      return "hvm";
    case Technique::Full:
      return "full";
    case Technique::Bt:
      return "bt";
    case Technique::Para:
      return "para";
  }
  return "?";
}

std::string_view technique_title(Technique technique) {
  // cli/src/options.cpp's words for --cpu.
  switch (technique) {
    case Technique::Hvm:
      return "hardware-assisted";
    case Technique::Full:
      return "trap-and-emulate";
    case Technique::Bt:
      return "binary translation";
    case Technique::Para:
      return "paravirtualization";
  }
  return "?";
}

std::string kvm_backend_of(std::string_view platform_line) {
  // vmm/src/platform.cpp, PlatformInfo::one_line: "platform: BACKEND (...) on ...".
  constexpr std::string_view kPrefix = "platform: ";
  if (platform_line.rfind(kPrefix, 0) != 0) return {};
  platform_line.remove_prefix(kPrefix.size());
  const std::string_view backend = platform_line.substr(0, platform_line.find(' '));
  for (const std::string_view known : {"kvm_intel", "kvm_amd", "kvm_pvm"}) {
    if (backend == known) return std::string(backend);
  }
  return {};
}

std::string_view component_id(Component component) {
  switch (component) {
    case Component::GuestUser:
      return "guest-user";
    case Component::GuestKernel:
      return "guest-kernel";
    case Component::MonitorStubs:
      return "monitor-stubs";
    case Component::PageTables:
      return "page-tables";
    case Component::TranslationCache:
      return "translation-cache";
    case Component::SharedPage:
      return "shared-page";
    case Component::Kvm:
      return "kvm";
    case Component::RunLoop:
      return "run-loop";
    case Component::MonitorLogic:
      return "monitor-logic";
    case Component::Translator:
      return "translator";
    case Component::Devices:
      return "devices";
    case Component::Count:
      break;
  }
  return "?";
}

bool has_component(Technique technique, Component component) {
  switch (component) {
    case Component::GuestUser:
    case Component::GuestKernel:
    case Component::Kvm:
    case Component::RunLoop:
    case Component::Devices:
      return true;
    case Component::MonitorStubs:
    case Component::MonitorLogic:
      return technique != Technique::Hvm;
    case Component::PageTables:
      return technique != Technique::Hvm;
    case Component::TranslationCache:
    case Component::Translator:
      return technique == Technique::Bt;
    case Component::SharedPage:
      return technique == Technique::Para;
    case Component::Count:
      break;
  }
  return false;
}

std::string hop_edge_id(Hop hop) {
  return "path-" + std::string(component_id(hop.from)) + "-" + std::string(component_id(hop.to));
}

std::vector<ModeEdge> mode_edges(Technique technique) {
  using enum Component;
  std::vector<ModeEdge> edges;
  // Inside the VM.
  if (technique == Technique::Hvm) {
    edges.push_back({{GuestUser, GuestKernel}, "syscall, faults,\ninterrupts (no exit)"});
    edges.push_back({{GuestKernel, GuestUser}, "iretq"});
  } else {
    edges.push_back({{GuestUser, MonitorStubs}, "syscall,\n#GP, #PF"});
  }
  switch (technique) {
    case Technique::Hvm:
      break;
    case Technique::Full:
      edges.push_back(
          {{GuestKernel, MonitorStubs}, "privileged instruction:\n#GP, #NP (iretq), #PF"});
      break;
    case Technique::Bt:
      edges.push_back({{GuestKernel, MonitorStubs}, "call-out (int3),\nmissing block, fault"});
      edges.push_back({{TranslationCache, GuestKernel}, "kernel code\nruns from here", true});
      break;
    case Technique::Para:
      edges.push_back({{GuestKernel, MonitorStubs}, "hypercall (syscall in\nvirtual kernel mode)"});
      edges.push_back({{GuestKernel, SharedPage}, "cli, sti: stores\n(no exit)"});
      break;
  }
  // Out of it and back, through KVM.
  if (technique != Technique::Hvm) edges.push_back({{MonitorStubs, Kvm}, "out 0xe8:\nVM exit"});
  const std::string_view exit_label =
      technique == Technique::Hvm ? "VM exit:\nin/out, MMIO, hlt" : "VM exit:\nMMIO, kick";
  edges.push_back({{GuestKernel, Kvm}, exit_label});
  edges.push_back({{GuestUser, Kvm}, "VM exit"});
  edges.push_back({{Kvm, GuestKernel}, "VM entry"});
  edges.push_back({{Kvm, GuestUser}, "VM entry"});
  edges.push_back({{Kvm, RunLoop}, "exit passed up"});
  edges.push_back(
      {{RunLoop, Kvm}, technique == Technique::Hvm ? "KVM_RUN\n(KVM_INTERRUPT)" : "KVM_RUN"});
  edges.push_back({{RunLoop, Devices}, technique == Technique::Hvm ? "in/out, MMIO" : "MMIO"});
  // The monitor, in the VMM process.
  if (technique != Technique::Hvm) {
    edges.push_back({{RunLoop, MonitorLogic}, "a stub's exit"});
    edges.push_back({{MonitorLogic, Kvm}, "resume: registers\nin sync-regs"});
    edges.push_back({{MonitorLogic, Devices},
                     technique == Technique::Para ? "port_io,\nconsole_io" : "emulated\nin/out"});
    edges.push_back(
        {{MonitorLogic, PageTables},
         technique == Technique::Para ? "validates\nmmu_update" : "builds, keeps\nin step"});
  }
  if (technique == Technique::Bt) {
    edges.push_back({{MonitorLogic, Translator}, "a block\nis missing"});
    edges.push_back({{Translator, TranslationCache}, "translated\nblocks"});
  }
  return edges;
}

PathEvent path_event_of(const TraceModel& trace, EventIndex index) {
  const EventStore& events = trace.events();
  PathEvent event;
  event.kind = events.kind(index);
  event.reason = events.reason(index);
  event.from = events.from(index);
  event.to = events.to(index);
  event.address = events.address(index);
  event.detail = std::string(trace.detail(index));
  if (event.kind != EventKind::VmExit) return event;
  // The events are in start order: those starting inside the exit follow
  // the first one at its start. A trap or hypercall says where the guest
  // went; a translation alone (a block chained at an exit site) is the
  // monitor's work too.
  const std::uint64_t end = events.end_ns(index);
  std::optional<EventIndex> carried;
  for (EventIndex other = events.first_at_or_after(events.time_ns(index));
       other < events.size() && events.time_ns(other) < end; ++other) {
    const EventKind kind = events.kind(other);
    if (kind == EventKind::MonitorTrap || kind == EventKind::Hypercall) {
      carried = other;
      break;
    }
    if (kind == EventKind::Translation && !carried) carried = other;
  }
  if (carried) {
    event.carried = CarriedWork{.kind = events.kind(*carried),
                                .reason = events.reason(*carried),
                                .to = events.to(*carried),
                                .detail = std::string(trace.detail(*carried))};
  }
  return event;
}

ModePath event_path(Technique technique, const PathEvent& event) {
  const bool has_monitor = technique != Technique::Hvm;
  const std::string name = event_words(event.kind, event.reason, event.detail);
  PathBuilder path(technique);
  switch (event.kind) {
    case EventKind::VmExit:
      return exit_path(technique, event);
    case EventKind::MonitorTrap:
    case EventKind::Hypercall:
      if (!has_monitor) break;
      path.into_monitor(event.from);
      monitor_side_trips(technique, event.reason, event.detail, path);
      path.out_of_monitor(event.to);
      return path.finish(
          "A " + name + ", " + levels_words(event) + ". " +
          std::string(event.kind == EventKind::Hypercall
                          ? std::string_view("The kernel asked the monitor by hypercall; it "
                                             "validates and carries out the request.")
                          : trap_explanation(event.reason)));
    case EventKind::Translation:
      if (technique != Technique::Bt) break;
      path.into_monitor(PrivilegeLevel::GuestKernel);
      monitor_side_trips(technique, event.reason, event.detail, path);
      path.out_of_monitor(PrivilegeLevel::GuestKernel);
      return path.finish("A translation, " + std::string(event_reason_name(event.reason)) +
                         ": the kernel reached code with no block (or a branch to chain), the "
                         "monitor asked the translator, and the kernel goes on in the cache.");
    case EventKind::InterruptInjection:
      if (has_monitor) {
        path.go(Component::RunLoop, Component::MonitorLogic);
        path.out_of_monitor(PrivilegeLevel::GuestKernel);
        return path.finish("An interrupt, vector " + std::to_string(event.address) +
                           ": the monitor builds the exception frame on the guest kernel's "
                           "stack, as the CPU would, and resumes the kernel at its handler.");
      }
      path.out_of_vmm(PrivilegeLevel::GuestKernel);
      return path.finish("An interrupt, vector " + std::to_string(event.address) +
                         ": the VMM injects it with KVM_INTERRUPT and KVM delivers it through "
                         "the guest's IDT on entry.");
    case EventKind::GuestHalt:
      if (has_monitor) {
        path.into_monitor(event.from);
        path.out_of_monitor(PrivilegeLevel::GuestKernel);
        return path.finish(
            "The guest kernel's hlt, asleep: it trapped, and the monitor "
            "put the vCPU thread to sleep until an interrupt was due.");
      }
      path.into_vmm(event.from);
      path.out_of_vmm(PrivilegeLevel::GuestKernel);
      return path.finish(
          "The guest kernel's hlt, asleep: a hlt exit, and the VMM's vCPU thread "
          "slept until an interrupt was due.");
    case EventKind::DeviceAccess:
      path.go(Component::RunLoop, Component::Devices);
      return path.finish("A " + name + ": a device model's work for the guest.");
    case EventKind::IommuFault:
      return path.finish("A " + name +
                         ": a DMA the IOMMU model blocked, on the device's own "
                         "thread, not on the vCPU's way.");
    case EventKind::Count:
      break;
  }
  return path.finish("A " + name + ": not part of how " + std::string(technique_name(technique)) +
                     " works.");
}

std::string common_path_caption(Technique technique) {
  switch (technique) {
    case Technique::Hvm:
      return "The unmodified kernel runs at CPL0, and system calls, faults and iretq stay "
             "in the VM. What leaves it is a VM exit: guest → KVM, which handles many itself "
             "and passes port I/O, MMIO and hlt up to the run loop → device model → KVM_RUN → "
             "guest.";
    case Technique::Full:
      return "A user system call is two traps: guest user → monitor stub (CPL0) → out "
             "0xe8 → KVM → run loop → monitor, which reflects it → KVM → guest kernel (CPL3); "
             "the kernel's iretq raises #NP and comes back the same way to guest user. Every "
             "privileged instruction traps and is emulated against the virtual CPU.";
    case Technique::Bt:
      return "The kernel runs only from the translation cache: cli, sti and the x86 holes "
             "became inline code (no exit); what only the monitor may do (port I/O, control "
             "registers, iretq) is a call-out: int3 → monitor stub → KVM → monitor, which "
             "emulates it; a block not yet translated goes to the translator.";
    case Technique::Para:
      return "The kernel knows it is virtualized: cli and sti are stores to the shared "
             "page; page-table updates, iret and port I/O are hypercalls: syscall in virtual "
             "kernel mode → monitor stub → KVM → the monitor's handlers, which validate them → "
             "KVM → guest.";
  }
  return {};
}

std::string mode_graph_dot(Technique technique, const ModePath* highlighted,
                           std::string_view kvm_backend, const GraphStyle& style) {
  std::string dot = graph_header("mode", style, "TB");
  dot += "  graph " +
         Attributes()
             .raw("compound", "true")
             .raw("newrank", "true")
             .raw("nodesep", "0.35")
             .raw("ranksep", "0.45")
             .text() +
         ";\n";
  // Where the VM runs: a CPU mode on VT-x and AMD-V, none under kvm_pvm
  // (PLATFORM.md, measured there).
  std::string vm_label = "The VM, in VMX non-root mode (Intel) or SVM guest mode (AMD)";
  std::string host_kernel_label = "Host kernel, ring 0 (root mode)";
  if (kvm_backend == "kvm_intel") vm_label = "The VM, in VMX non-root mode (Intel VT-x)";
  if (kvm_backend == "kvm_amd") vm_label = "The VM, in SVM guest mode (AMD-V)";
  if (kvm_backend == "kvm_pvm") {
    vm_label =
        "The VM, under kvm_pvm (no VT-x/AMD-V): its CPL3 code\nruns natively, its CPL0 "
        "code in KVM's instruction emulator";
    host_kernel_label = "Host kernel, ring 0";
  }
  auto node = [&](Component component) {
    Attributes attributes;
    attributes.quoted("id", component_id(component))
        .quoted("label", component_label(technique, component, kvm_backend));
    if (const auto lane = lane_of_component(technique, component)) {
      attributes.quoted("fillcolor", style.level_fill[static_cast<std::size_t>(*lane)])
          .quoted("color", style.level_border[static_cast<std::size_t>(*lane)]);
    } else {
      attributes.quoted("fillcolor", style.neutral_fill).quoted("color", style.edge);
    }
    if (place_of(technique, component) == Place::VmMemory) attributes.raw("shape", "note");
    return node_statement(component_id(component), attributes);
  };
  auto cluster = [&](std::string_view id, std::string_view label, Place place,
                     std::string_view fill) {
    std::string text = "  subgraph " + dot_quoted(std::string("cluster-") + std::string(id)) +
                       " {\n  graph " +
                       Attributes()
                           .quoted("label", label)
                           .raw("labeljust", "l")
                           .quoted("style", "rounded,filled")
                           .quoted("fillcolor", fill)
                           .quoted("color", style.unvisited)
                           .text() +
                       ";\n";
    for (std::size_t index = 0; index < static_cast<std::size_t>(Component::Count); ++index) {
      const auto component = static_cast<Component>(index);
      if (has_component(technique, component) && place_of(technique, component) == place)
        text += "  " + node(component);
    }
    return text;
  };
  dot += cluster("vm", vm_label, Place::VmMemory, "#f7f7f7");
  dot += cluster("ring3", "Ring 3 (CPL3)", Place::VmRing3, "#ffffff");
  dot += "  }\n";
  dot += cluster("ring0", "Ring 0 (CPL0)", Place::VmRing0, "#ffffff");
  dot += "  }\n";
  dot += "  }\n";
  dot += cluster("host-kernel", host_kernel_label, Place::HostKernel, "#f7f7f7");
  dot += "  }\n";
  dot += cluster("host-user", "Host user space, ring 3: the vmlab VMM process", Place::HostUser,
                 "#f7f7f7");
  dot += "  }\n";

  // The VM's memory beside its ring 0; the monitor's logic beside the
  // device models, below the run loop: the way out and back reads top to
  // bottom and up again.
  auto same_rank = [&](std::initializer_list<Component> components) {
    std::string group;
    for (const Component component : components) {
      if (has_component(technique, component))
        group += " " + dot_quoted(component_id(component)) + ";";
    }
    return group.empty() ? std::string() : "  { rank=same;" + group + " }\n";
  };
  dot += same_rank({Component::MonitorStubs, Component::PageTables, Component::TranslationCache,
                    Component::SharedPage});
  dot += same_rank({Component::MonitorLogic, Component::Translator, Component::Devices});

  for (const ModeEdge& edge : mode_edges(technique)) {
    const bool lit = highlighted != nullptr &&
                     std::find(highlighted->hops.begin(), highlighted->hops.end(), edge.hop) !=
                         highlighted->hops.end();
    Attributes attributes;
    attributes.quoted("id", hop_edge_id(edge.hop)).quoted("label", edge.label);
    if (edge.dotted) attributes.raw("style", "dotted");
    if (lit) {
      attributes.quoted("color", style.highlight)
          .quoted("fontcolor", style.highlight)
          .raw("penwidth", "3.5");
    }
    dot += edge_statement(component_id(edge.hop.from), component_id(edge.hop.to), attributes);
  }
  return dot + "}\n";
}

std::string hypervisor_models_dot(const GraphStyle& style) {
  const auto fill = [&](TimelineLane lane) {
    return style.level_fill[static_cast<std::size_t>(lane)];
  };
  const std::string user = fill(TimelineLane::GuestUser);
  const std::string kernel = fill(TimelineLane::GuestKernel);
  const std::string hypervisor = fill(TimelineLane::Monitor);
  const std::string vmm = fill(TimelineLane::Vmm);
  auto cell = [](std::string_view text, std::string_view colour, int columns = 1,
                 bool marked = false) {
    std::string html = "<td bgcolor=\"" + std::string(colour) + "\"";
    if (columns > 1) html += " colspan=\"" + std::to_string(columns) + "\"";
    if (marked) html += " border=\"2\"";
    html += ">";
    html += marked ? "<b>" + std::string(text) + "</b>" : std::string(text);
    return html + "</td>";
  };
  const std::string table =
      "<table border=\"0\" cellborder=\"1\" cellspacing=\"4\" "
      "cellpadding=\"7\" color=\"" +
      style.edge + "\">";
  const std::string type1 =
      table + "<tr><td colspan=\"2\" border=\"0\"><b>Type 1: bare metal</b></td></tr>" + "<tr>" +
      cell("guest apps", user) + cell("guest apps", user) + "</tr><tr>" + cell("guest OS", kernel) +
      cell("guest OS", kernel) + "</tr><tr>" +
      cell("hypervisor (Xen, VMware ESXi, Hyper-V)", hypervisor, 2) + "</tr><tr>" +
      cell("hardware", style.neutral_fill, 2) + "</tr></table>";
  const std::string type2 =
      table + "<tr><td colspan=\"3\" border=\"0\"><b>Type 2: hosted</b></td></tr>" + "<tr>" +
      cell("guest apps", user) + "<td border=\"0\"></td>" + "<td border=\"0\"></td></tr><tr>" +
      cell("guest kernel", kernel) + "<td border=\"0\"></td>" + "<td border=\"0\"></td></tr><tr>" +
      cell("vmlab: the VMM process<br/>(devices, monitor logic)", vmm, 1, true) +
      cell("other<br/>processes", style.neutral_fill) + cell("...", style.neutral_fill) +
      "</tr><tr>" + cell("KVM, in the host kernel", hypervisor, 1, true) +
      cell("host OS kernel (Linux)", style.neutral_fill, 2) + "</tr><tr>" +
      cell("hardware", style.neutral_fill, 3) + "</tr></table>";

  std::string dot = graph_header("hypervisors", style, "TB");
  dot += "  graph " +
         Attributes()
             .quoted("label",
                     "KVM is often called type 1: loaded, it makes the Linux kernel itself the "
                     "hypervisor.\nThe VMM (vmlab here, or QEMU) is still a user process "
                     "beside the others.")
             .raw("labelloc", "b")
             .raw("ranksep", "0.4")
             .text() +
         ";\n";
  dot += "  node [shape=plaintext, style=\"\"];\n";
  dot += "  \"type-1\" [id=\"type-1\", label=<" + type1 + ">];\n";
  dot += "  \"type-2\" [id=\"type-2\", label=<" + type2 + ">];\n";
  // One above the other: the panel stands beside the mode's picture.
  dot += "  \"type-1\" -> \"type-2\" [style=invis];\n";
  return dot + "}\n";
}

}  // namespace vmlab::viz
