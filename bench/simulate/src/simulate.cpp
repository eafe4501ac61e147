// The replay: classes of events, what each becomes on a platform, and the
// sums.
#include "vmlab/simulate/simulate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace vmlab::simulate {

namespace {

constexpr std::string_view kClassNames[] = {
    "exit-io",
    "exit-eoi",
    "exit-monitor-channel",
    "exit-mmio",
    "exit-hlt",
    "exit-interrupt-window",
    "exit-other",
    "injection",
    "trap-io",
    "trap-interrupt-flag",
    "trap-return",
    "trap-cr3",
    "trap-invlpg",
    "trap-cr8",
    "trap-cr-write",
    "trap-cr-read",
    "trap-msr",
    "trap-cpuid",
    "trap-hlt",
    "trap-descriptor",
    "trap-privileged-other",
    "trap-system-call",
    "trap-page-fault",
    "trap-shadow-fill",
    "trap-pte-write",
    "trap-exception",
    "trap-interrupt",
    "trap-call-out",
    "trap-translated-code-write",
    "hypercall",
    "bt-translate",
    "bt-chain",
    "bt-indirect-miss",
    "bt-invalidate",
    "device-work",
    "iommu-fault",
    "halt",
};
static_assert(std::size(kClassNames) == static_cast<std::size_t>(EventClass::Count));

// The monitor's port to its VMM (modes/monitor, monitor_region.hpp).
constexpr std::uint64_t kMonitorPort = 0xe8;
// The 8259's command ports and its non-specific EOI command (Intel 8259A
// data sheet, OCW2).
constexpr std::uint64_t kMasterPicCommand = 0x20;
constexpr std::uint64_t kSlavePicCommand = 0xa0;
constexpr std::uint64_t kNonSpecificEoi = 0x20;

// A privileged instruction (or a bt call-out) by its mnemonic, as the
// monitor's decoder prints it ("mov cr3, rdi", "in al, dx").
EventClass classify_instruction(std::string_view text) {
  if (text.starts_with("in ") || text.starts_with("out ") || text.starts_with("ins") ||
      text.starts_with("outs")) {
    return EventClass::TrapIo;
  }
  if (text == "cli" || text == "sti" || text.starts_with("popf") || text.starts_with("pushf")) {
    return EventClass::TrapInterruptFlag;
  }
  if (text.starts_with("iret") || text.starts_with("sysret") || text.starts_with("ret far")) {
    return EventClass::TrapReturn;
  }
  if (text.starts_with("mov cr3")) return EventClass::TrapCr3;
  if (text.starts_with("invlpg")) return EventClass::TrapInvlpg;
  if (text.starts_with("mov cr8")) return EventClass::TrapCr8;
  if (text.starts_with("mov cr")) return EventClass::TrapCrWrite;
  if (text.starts_with("mov ") && text.find(", cr") != std::string_view::npos) {
    return EventClass::TrapCrRead;
  }
  if (text == "rdmsr" || text == "wrmsr") return EventClass::TrapMsr;
  if (text == "cpuid") return EventClass::TrapCpuid;
  if (text == "hlt") return EventClass::TrapHlt;
  if (text.starts_with("lgdt") || text.starts_with("lidt") || text.starts_with("ltr") ||
      text.starts_with("lldt") || text.starts_with("mov ss") || text.starts_with("mov ds") ||
      text.starts_with("mov es") || text.starts_with("mov fs") || text.starts_with("mov gs") ||
      text.starts_with("pop ss")) {
    return EventClass::TrapDescriptor;
  }
  return EventClass::TrapPrivilegedOther;
}

Fate removed(std::string why) {
  return Fate{std::nullopt, std::move(why)};
}

Fate becomes(Transition transition) {
  return Fate{transition, {}};
}

constexpr const char* kGuestMode = "runs in the CPU's guest mode at CPL0: no exit";
constexpr const char* kVmlabChannel =
    "vmlab's monitor asking its VMM: the platform has no such monitor";
constexpr const char* kTranslatorWork = "a translator's own work: the platform has none";
constexpr const char* kRecordOnly = "a record of work another event did: no transition";
constexpr const char* kInjectionCounted = "the injection is counted instead";

Fate hardware_fate(EventClass event_class, const Profile& profile) {
  const bool nested = profile.has(Feature::NestedPaging);
  switch (event_class) {
    case EventClass::ExitIo:
    case EventClass::TrapIo:
      return becomes(Transition::IoExit);
    case EventClass::ExitEoi:
      return profile.has(Feature::ApicVirtualization)
                 ? removed(
                       "removed by APIC virtualization, as a local APIC's EOI would be (the "
                       "guest's 8259 EOI is a port write)")
                 : becomes(Transition::EoiExit);
    case EventClass::ExitMonitorChannel:
      return removed(kVmlabChannel);
    case EventClass::ExitMmio:
      return becomes(Transition::MmioExit);
    case EventClass::ExitHlt:
    case EventClass::TrapHlt:
      return becomes(Transition::HltExit);
    case EventClass::ExitInterruptWindow:
      return profile.has(Feature::ApicVirtualization)
                 ? removed(
                       "removed by APIC virtualization: the CPU delivers the pending "
                       "interrupt when the guest can take it")
                 : becomes(Transition::InterruptWindowExit);
    case EventClass::ExitOther:
    case EventClass::TrapPrivilegedOther:
    case EventClass::TrapCallOut:
      return becomes(Transition::OtherExit);
    case EventClass::Injection:
      return profile.has(Feature::PostedInterrupts)
                 ? removed("removed by posted interrupts: delivered to the running guest")
                 : becomes(Transition::InterruptExit);
    case EventClass::TrapInterruptFlag:
    case EventClass::TrapReturn:
    case EventClass::TrapCrRead:
    case EventClass::TrapDescriptor:
    case EventClass::TrapSystemCall:
      return removed(kGuestMode);
    case EventClass::TrapException:
      // Delivered through the guest's IDT in guest mode, with no exit.
      return becomes(Transition::GuestException);
    case EventClass::TrapCr3:
      return nested ? removed("removed by nested paging: the guest owns CR3")
                    : becomes(Transition::Cr3Exit);
    case EventClass::TrapInvlpg:
      return nested ? removed("removed by nested paging: the guest's TLB is its own")
                    : becomes(Transition::InvlpgExit);
    case EventClass::TrapCr8:
      return profile.has(Feature::TprShadow) ? removed("removed by the TPR shadow")
                                             : becomes(Transition::CrExit);
    case EventClass::TrapCrWrite:
      return becomes(Transition::CrExit);
    case EventClass::TrapMsr:
      return becomes(Transition::MsrExit);
    case EventClass::TrapCpuid:
      return becomes(Transition::CpuidExit);
    case EventClass::TrapPageFault:
      return nested ? removed("removed by nested paging: delivered through the guest's IDT")
                    : becomes(Transition::PageFaultExit);
    case EventClass::TrapShadowFill:
      return nested ? removed("removed by nested paging: there are no shadow page tables")
                    : becomes(Transition::HiddenPageFaultExit);
    case EventClass::TrapPteWrite:
      return nested ? removed("removed by nested paging: page tables are not write-protected")
                    : becomes(Transition::PteWriteExit);
    case EventClass::TrapInterrupt:
      return removed(kInjectionCounted);
    case EventClass::Hypercall:
      return becomes(Transition::HypercallExit);
    case EventClass::TrapTranslatedCodeWrite:
    case EventClass::BtTranslate:
    case EventClass::BtChain:
    case EventClass::BtIndirectMiss:
    case EventClass::BtInvalidate:
      return removed(kTranslatorWork);
    case EventClass::DeviceWork:
    case EventClass::IommuFault:
      return removed(kRecordOnly);
    case EventClass::Halt:
      return removed("halted time, carried over");
    case EventClass::Count:
      break;
  }
  return removed(kRecordOnly);
}

Fate translator_fate(EventClass event_class) {
  switch (event_class) {
    case EventClass::ExitIo:
    case EventClass::ExitEoi:
    case EventClass::TrapIo:
      return becomes(Transition::BtIo);
    case EventClass::ExitMonitorChannel:
      return removed(kVmlabChannel);
    case EventClass::ExitMmio:
    case EventClass::ExitHlt:
    case EventClass::ExitOther:
    case EventClass::TrapReturn:
    case EventClass::TrapCr3:
    case EventClass::TrapInvlpg:
    case EventClass::TrapCrWrite:
    case EventClass::TrapMsr:
    case EventClass::TrapCpuid:
    case EventClass::TrapHlt:
    case EventClass::TrapDescriptor:
    case EventClass::TrapPrivilegedOther:
    case EventClass::TrapCallOut:
    case EventClass::TrapTranslatedCodeWrite:
    case EventClass::Hypercall:
      return becomes(Transition::BtCallout);
    case EventClass::ExitInterruptWindow:
      return removed("the monitor sees the virtual interrupt flag itself");
    case EventClass::Injection:
      return becomes(Transition::BtInterrupt);
    case EventClass::TrapInterruptFlag:
    case EventClass::TrapCr8:
    case EventClass::TrapCrRead:
      return becomes(Transition::BtInline);
    case EventClass::TrapSystemCall:
      return becomes(Transition::BtSystemCall);
    case EventClass::TrapPageFault:
      return becomes(Transition::BtPageFault);
    case EventClass::TrapShadowFill:
      return becomes(Transition::BtHiddenPageFault);
    case EventClass::TrapPteWrite:
      return becomes(Transition::BtPteWrite);
    case EventClass::TrapException:
      return becomes(Transition::BtException);
    case EventClass::TrapInterrupt:
      return removed(kInjectionCounted);
    case EventClass::BtTranslate:
      return becomes(Transition::BtTranslateBlock);
    case EventClass::BtIndirectMiss:
      return becomes(Transition::BtIndirectMiss);
    case EventClass::BtChain:
    case EventClass::BtInvalidate:
      return removed("part of translating, costed with the block");
    case EventClass::DeviceWork:
    case EventClass::IommuFault:
      return removed(kRecordOnly);
    case EventClass::Halt:
      return removed("halted time, carried over");
    case EventClass::Count:
      break;
  }
  return removed(kRecordOnly);
}

// A calibrated profile's costs by the level they were measured at
// ("vmm:CLASS", "monitor:CLASS"; calibrate.cpp).
constexpr std::pair<std::string_view, PrivilegeLevel> kCalibratedLevels[] = {
    {"vmm:", PrivilegeLevel::Vmm},
    {"monitor:", PrivilegeLevel::Monitor},
};

std::size_t level_index(PrivilegeLevel level) {
  return static_cast<std::size_t>(level);
}

// "1.23 ms", "456 us", "789 ns".
std::string duration_text(double ns) {
  char text[32];
  if (ns >= 1e6) {
    std::snprintf(text, sizeof text, "%.2f ms", ns / 1e6);
  } else if (ns >= 1e3) {
    std::snprintf(text, sizeof text, "%.1f us", ns / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.0f ns", ns);
  }
  return text;
}

}  // namespace

std::string_view event_class_name(EventClass event_class) {
  return kClassNames[static_cast<std::size_t>(event_class)];
}

std::optional<EventClass> parse_event_class(std::string_view name) {
  for (std::size_t index = 0; index < std::size(kClassNames); ++index) {
    if (kClassNames[index] == name) return static_cast<EventClass>(index);
  }
  return std::nullopt;
}

namespace {

// A VM exit by its reason and port.
EventClass classify_exit(const Event& event) {
  const EventReason reason = event.reason;
  if (reason == EventReason::IoIn || reason == EventReason::IoOut) {
    if (event.address == kMonitorPort) return EventClass::ExitMonitorChannel;
    if (reason == EventReason::IoOut &&
        (event.address == kMasterPicCommand || event.address == kSlavePicCommand) &&
        (event.value & 0xff) == kNonSpecificEoi) {
      return EventClass::ExitEoi;
    }
    return EventClass::ExitIo;
  }
  if (reason == EventReason::MmioRead || reason == EventReason::MmioWrite) {
    return EventClass::ExitMmio;
  }
  if (reason == EventReason::Halt) return EventClass::ExitHlt;
  if (reason == EventReason::InterruptWindowOpen) return EventClass::ExitInterruptWindow;
  return EventClass::ExitOther;
}

// A monitor trap by its reason (and an instruction's mnemonic).
EventClass classify_trap(const Event& event, std::string_view detail) {
  constexpr std::pair<EventReason, EventClass> kByReason[] = {
      {EventReason::ShadowFill, EventClass::TrapShadowFill},
      {EventReason::GuestPageFault, EventClass::TrapPageFault},
      {EventReason::PageTableWrite, EventClass::TrapPteWrite},
      {EventReason::SystemCall, EventClass::TrapSystemCall},
      {EventReason::ReflectedException, EventClass::TrapException},
      {EventReason::ExternalInterrupt, EventClass::TrapInterrupt},
      {EventReason::TranslatedCodeWrite, EventClass::TrapTranslatedCodeWrite},
  };
  if (event.reason == EventReason::PrivilegedInstruction) return classify_instruction(detail);
  if (event.reason == EventReason::CallOut) {
    const EventClass instruction = classify_instruction(detail);
    return instruction == EventClass::TrapPrivilegedOther ? EventClass::TrapCallOut : instruction;
  }
  for (const auto& [reason, event_class] : kByReason) {
    if (event.reason == reason) return event_class;
  }
  return EventClass::TrapPrivilegedOther;
}

EventClass classify_translation(const Event& event) {
  if (event.reason == EventReason::BlockTranslated) return EventClass::BtTranslate;
  if (event.reason == EventReason::BranchChained) return EventClass::BtChain;
  if (event.reason == EventReason::IndirectMiss) return EventClass::BtIndirectMiss;
  return EventClass::BtInvalidate;
}

}  // namespace

EventClass classify(const Event& event, std::string_view detail) {
  switch (event.kind) {
    case EventKind::VmExit:
      return classify_exit(event);
    case EventKind::MonitorTrap:
      return classify_trap(event, detail);
    case EventKind::Hypercall:
      return EventClass::Hypercall;
    case EventKind::InterruptInjection:
      return EventClass::Injection;
    case EventKind::DeviceAccess:
      return EventClass::DeviceWork;
    case EventKind::IommuFault:
      return EventClass::IommuFault;
    case EventKind::Translation:
      return classify_translation(event);
    case EventKind::GuestHalt:
      return EventClass::Halt;
    case EventKind::Count:
      break;
  }
  return EventClass::ExitOther;
}

std::string technique_of(const TraceInfo& trace) {
  const std::string& run = trace.run_description;
  const std::size_t start = run.find("cpu=");
  if (start == std::string::npos) return {};
  const std::size_t end = run.find(' ', start);
  return run.substr(start + 4, end == std::string::npos ? std::string::npos : end - start - 4);
}

Fate fate_of(EventClass event_class, const Profile& profile) {
  switch (profile.kind) {
    case PlatformKind::Hardware:
      return hardware_fate(event_class, profile);
    case PlatformKind::BinaryTranslation:
      return translator_fate(event_class);
    case PlatformKind::Calibrated:
      if (event_class == EventClass::Halt) return removed("halted time, carried over");
      if (event_class == EventClass::DeviceWork) return removed(kRecordOnly);
      return Fate{std::nullopt, {}};
  }
  return removed(kRecordOnly);
}

constexpr PrivilegeLevel kGuestLevels[] = {PrivilegeLevel::GuestKernel, PrivilegeLevel::GuestUser,
                                           PrivilegeLevel::Unknown};

double LevelTimes::guest() const {
  double sum = 0;
  for (auto level : kGuestLevels)
    sum += at(level);
  return sum;
}

void LevelTimes::scale_guest(double factor) {
  for (auto level : kGuestLevels)
    ns[static_cast<std::size_t>(level)] *= factor;
}

LevelTimes levels_of(const TraceInfo& trace) {
  LevelTimes times;
  for (std::size_t index = 0; index < trace.level_time_ns.size(); ++index)
    times.ns[index] = static_cast<double>(trace.level_time_ns[index]);
  times.halted_ns = static_cast<double>(trace.halted_ns);
  return times;
}

double LevelTimes::total() const {
  double sum = halted_ns;
  for (double time : ns)
    sum += time;
  return sum;
}

Result<Simulation> simulate(const Trace& trace, const std::vector<Profile>& profiles,
                            const std::optional<Profile>& host) {
  Simulation simulation;
  simulation.platform_line = trace.platform_line;
  simulation.run_description = trace.run_description;
  simulation.technique = technique_of(trace);
  simulation.events = trace.events.size();
  simulation.dropped = trace.dropped;
  simulation.measured = levels_of(trace);
  if (simulation.measured.total() <= 0) {
    return Error{SimulateError::kUnusableTrace,
                 "the trace has no time by level (its '# levels:' line): nothing to compare a "
                 "prediction with"};
  }

  std::array<std::uint64_t, static_cast<std::size_t>(EventClass::Count)> counts{};
  for (const auto& event : trace.events)
    ++counts[static_cast<std::size_t>(classify(event, trace.detail(event)))];

  // The recording machine's own cost of each event at the guest's level.
  const std::map<std::string, Cost>* host_costs = nullptr;
  if (host) {
    auto found = host->calibrated.find(simulation.technique);
    if (found != host->calibrated.end()) host_costs = &found->second;
  }
  if (host_costs != nullptr) {
    simulation.host_profile = host->name;
    for (std::size_t index = 0; index < counts.size(); ++index) {
      auto found = host_costs->find("guest:" +
                                    std::string(event_class_name(static_cast<EventClass>(index))));
      if (found == host_costs->end() || counts[index] == 0) continue;
      simulation.host_guest_overhead_ns +=
          host->ns(found->second).value_or(0) * static_cast<double>(counts[index]);
    }
  }
  // The guest's levels less that overhead, each in proportion to its time.
  LevelTimes guest_work = simulation.measured;
  const double guest = simulation.measured.guest();
  guest_work.scale_guest(
      guest > 0 ? std::max(0.0, guest - simulation.host_guest_overhead_ns) / guest : 1);

  for (const auto& profile : profiles) {
    Prediction prediction;
    prediction.profile = profile.name;
    prediction.title = profile.title;
    prediction.kind = profile.kind;
    // The guest's own work and the halted time, as the recording machine
    // ran them; for another platform without what its transitions added.
    prediction.predicted =
        profile.kind == PlatformKind::Calibrated ? simulation.measured : guest_work;
    prediction.predicted.ns[level_index(PrivilegeLevel::Vmm)] = 0;
    prediction.predicted.ns[level_index(PrivilegeLevel::Monitor)] = 0;
    const auto* calibrated = [&]() -> const std::map<std::string, Cost>* {
      auto found = profile.calibrated.find(simulation.technique);
      return found == profile.calibrated.end() ? nullptr : &found->second;
    }();
    if (profile.kind == PlatformKind::Calibrated) {
      if (calibrated == nullptr) {
        prediction.notes.push_back(
            "the profile has no calibration for " +
            (simulation.technique.empty() ? std::string("this trace's") : simulation.technique) +
            " runs: nothing is costed");
      } else {
        // Once per run: the VMM's start and end, the monitor's set-up.
        for (auto [prefix, level] : kCalibratedLevels) {
          if (auto run = calibrated->find(std::string(prefix) + "run"); run != calibrated->end()) {
            prediction.predicted.ns[level_index(level)] += profile.ns(run->second).value_or(0);
          }
        }
      }
    }
    for (std::size_t index = 0; index < counts.size(); ++index) {
      if (counts[index] == 0) continue;
      ReplayRow row;
      row.event_class = static_cast<EventClass>(index);
      row.count = counts[index];
      const Fate fate = fate_of(row.event_class, profile);
      row.becomes = fate.transition;
      row.why = fate.why;
      std::optional<Cost> cost;
      // Calibrated: what the class cost the VMM and the monitor here.
      std::array<double, static_cast<std::size_t>(PrivilegeLevel::Count)> split{};
      if (profile.kind == PlatformKind::Calibrated) {
        bool found_any = false;
        double each = 0, largest = -1;
        for (auto [prefix, level] : kCalibratedLevels) {
          if (!row.why.empty() || calibrated == nullptr) break;
          auto found = calibrated->find(std::string(prefix) +
                                        std::string(event_class_name(row.event_class)));
          if (found == calibrated->end()) continue;
          found_any = true;
          const double part = profile.ns(found->second).value_or(0);
          split[level_index(level)] = part;
          each += part;
          if (part > largest) {
            largest = part;
            row.level = level;
          }
        }
        if (found_any) {
          cost = Cost{std::nullopt, each, "calibrated", "", ""};
        } else if (row.why.empty() && calibrated != nullptr &&
                   calibrated->count(std::string(kCalibratedLevels[0].first) + "run") != 0) {
          row.why = "part of the run's fixed cost (too few events to fit on their own)";
        } else if (row.why.empty()) {
          row.why = "no calibrated figure";
        }
      } else if (row.becomes) {
        row.level = *row.becomes == Transition::GuestException ? PrivilegeLevel::GuestKernel
                    : profile.kind == PlatformKind::Hardware   ? PrivilegeLevel::Vmm
                                                               : PrivilegeLevel::Monitor;
        auto found = profile.costs.find(*row.becomes);
        if (found != profile.costs.end()) cost = found->second;
        if (!cost) row.why = "the profile has no figure for it";
      }
      if (cost) {
        row.each_ns = profile.ns(*cost);
        if (!row.each_ns) row.why = "no published figure: " + cost->note;
      }
      const bool carried = row.event_class == EventClass::Halt ||
                           row.event_class == EventClass::DeviceWork ||
                           row.why.starts_with("part of the run");
      if (row.each_ns) {
        row.total_ns = *row.each_ns * static_cast<double>(row.count);
        if (profile.kind == PlatformKind::Calibrated) {
          for (std::size_t level = 0; level < split.size(); ++level)
            prediction.predicted.ns[level] += split[level] * static_cast<double>(row.count);
        } else {
          prediction.predicted.ns[level_index(row.level)] += row.total_ns;
        }
      } else if (carried) {
        // Costed elsewhere: the halted time, the exit a device record
        // belongs to, the run's fixed cost.
      } else if (profile.kind == PlatformKind::Calibrated || row.becomes) {
        prediction.events_uncosted += row.count;
      } else {
        prediction.events_removed += row.count;
      }
      prediction.rows.push_back(std::move(row));
    }
    if (profile.kind != PlatformKind::Calibrated) {
      prediction.notes.push_back(
          simulation.host_profile.empty()
              ? "guest time is carried over as the recording machine ran it, with what its own "
                "transitions cost inside KVM_RUN (no calibrated profile of that machine); the "
                "VMM's own start-up is not part of the prediction"
              : "guest time is carried over as the recording machine ran it, less what its "
                "transitions cost there inside KVM_RUN (" +
                    duration_text(simulation.host_guest_overhead_ns) + ", by " +
                    simulation.host_profile +
                    "); the VMM's own start-up is not part of the prediction");
      if (simulation.technique == "hvm" &&
          trace.platform_line.find("kvm_pvm") != std::string::npos) {
        prediction.notes.push_back(
            "an hvm trace from kvm_pvm: its kernel time is KVM's emulation of the kernel, and "
            "the page faults KVM handled itself are not in the trace; replay a full run's trace "
            "to see what this platform would do with them");
      }
    }
    if (profile.kind != PlatformKind::Calibrated && !simulation.host_profile.empty()) {
      if (guest > 0 && simulation.host_guest_overhead_ns >= 0.95 * guest) {
        prediction.notes.push_back(
            "the recording machine's own cost of these events is about all of its guest time (" +
            duration_text(simulation.host_guest_overhead_ns) + " of " + duration_text(guest) +
            "): the guest's own work is below what can be told from it, and the prediction is "
            "the platform's transitions with " +
            duration_text(prediction.predicted.guest()) + " of guest work left");
      }
    }
    if (prediction.events_uncosted != 0) {
      prediction.notes.push_back(std::to_string(prediction.events_uncosted) +
                                 " events are kept but not costed (the profile has no figure): "
                                 "the prediction is low by their cost");
    }
    if (simulation.dropped != 0) {
      prediction.notes.push_back("the trace dropped its " + std::to_string(simulation.dropped) +
                                 " oldest events: they are not replayed");
    }
    simulation.predictions.push_back(std::move(prediction));
  }
  return simulation;
}

std::map<EventClass, double> events_per_operation(const Trace& small, std::uint64_t small_count,
                                                  const Trace& large, std::uint64_t large_count) {
  std::map<EventClass, double> per_operation;
  if (large_count <= small_count) return per_operation;
  auto count = [](const Trace& trace, double sign, std::map<EventClass, double>& into) {
    for (const auto& event : trace.events)
      into[classify(event, trace.detail(event))] += sign;
  };
  count(large, 1, per_operation);
  count(small, -1, per_operation);
  const double operations = static_cast<double>(large_count - small_count);
  for (auto item = per_operation.begin(); item != per_operation.end();) {
    // An operation makes whole events; a fraction is other work that ran
    // meanwhile (a timer tick, a console line), not the operation's.
    item->second = std::round(item->second / operations);
    item = item->second <= 0 ? per_operation.erase(item) : std::next(item);
  }
  return per_operation;
}

OperationCost operation_cost(const Profile& profile, double native_cycles,
                             const std::map<EventClass, double>& per_operation) {
  OperationCost result;
  double cycles = 0;
  // An operation all of whose events the platform carries out (an emulated
  // `in`) is not executed natively; one that faults still runs its native
  // handler, and the platform's work adds to it.
  bool replacing = false, adding = false;
  std::string parts;
  for (const auto& [event_class, count] : per_operation) {
    const Fate fate = fate_of(event_class, profile);
    if (!fate.transition) continue;
    auto cost = profile.costs.find(*fate.transition);
    const std::optional<double> each =
        cost == profile.costs.end() ? std::nullopt
        : cost->second.cycles       ? cost->second.cycles
        : cost->second.ns           ? std::optional<double>(*cost->second.ns * profile.clock_ghz)
                                    : std::nullopt;
    if (!each) {
      result.explanation = std::string(transition_name(*fate.transition)) + " has no figure";
      return result;
    }
    (transition_replaces_instruction(*fate.transition) ? replacing : adding) = true;
    cycles += count * *each;
    char part[96];
    std::snprintf(part, sizeof part, "%s%.2g x %s %.0f", parts.empty() ? "" : " + ", count,
                  std::string(transition_name(*fate.transition)).c_str(), *each);
    parts += part;
  }
  if (!replacing || adding) {
    cycles += native_cycles;
    char part[64];
    std::snprintf(part, sizeof part, "%snative %.0f", parts.empty() ? "" : " + ", native_cycles);
    parts += part;
  }
  result.cycles = cycles;
  result.explanation = parts;
  return result;
}

void print_simulation(const Simulation& simulation, std::ostream& out) {
  out << "trace: " << (simulation.trace_path.empty() ? "(given)" : simulation.trace_path) << " ("
      << simulation.run_description << "), " << simulation.events << " events\n"
      << "recorded on " << simulation.platform_line << "\n";
  if (!simulation.host_profile.empty()) {
    out << "that machine's own cost of these events at the guest's level, by "
        << simulation.host_profile << ": " << duration_text(simulation.host_guest_overhead_ns)
        << " (taken out of the guest time of the other platforms)\n";
  }
  out << "\n";
  char cell[160];
  std::snprintf(cell, sizeof cell, "%-14s  %12s", "level", "measured");
  out << cell;
  for (const auto& prediction : simulation.predictions) {
    std::snprintf(cell, sizeof cell, "  %16s", prediction.profile.c_str());
    out << cell;
  }
  out << "\n";
  const std::pair<const char*, PrivilegeLevel> levels[] = {
      {"guest user", PrivilegeLevel::GuestUser},
      {"guest kernel", PrivilegeLevel::GuestKernel},
      {"monitor", PrivilegeLevel::Monitor},
      {"VMM", PrivilegeLevel::Vmm},
      {"unknown", PrivilegeLevel::Unknown}};
  auto row = [&](const char* name, auto value_of) {
    std::snprintf(cell, sizeof cell, "%-14s  %12s", name,
                  duration_text(value_of(simulation.measured)).c_str());
    out << cell;
    for (const auto& prediction : simulation.predictions) {
      std::snprintf(cell, sizeof cell, "  %16s",
                    duration_text(value_of(prediction.predicted)).c_str());
      out << cell;
    }
    out << "\n";
  };
  for (const auto& [name, level] : levels) {
    const auto index = level_index(level);
    if (simulation.measured.ns[index] == 0 &&
        std::none_of(simulation.predictions.begin(), simulation.predictions.end(),
                     [&](const Prediction& p) { return p.predicted.ns[index] != 0; })) {
      continue;
    }
    row(name, [index](const LevelTimes& times) { return times.ns[index]; });
  }
  row("halted", [](const LevelTimes& times) { return times.halted_ns; });
  row("total", [](const LevelTimes& times) { return times.total(); });
  std::snprintf(cell, sizeof cell, "%-14s  %12s", "vs measured", "1.00x");
  out << cell;
  for (const auto& prediction : simulation.predictions) {
    char ratio[32];
    const double times = prediction.predicted.total() / simulation.measured.total();
    std::snprintf(ratio, sizeof ratio, times < 0.1 ? "%.2gx" : "%.2fx", times);
    std::snprintf(cell, sizeof cell, "  %16s", ratio);
    out << cell;
  }
  out << "\n";

  for (const auto& prediction : simulation.predictions) {
    out << "\n"
        << prediction.profile << ": " << prediction.title << " ("
        << platform_kind_name(prediction.kind) << ")\n";
    std::snprintf(cell, sizeof cell, "  %-26s %9s  %-24s %10s %11s\n", "event", "count", "becomes",
                  "each", "total");
    out << cell;
    for (const auto& replay : prediction.rows) {
      const std::string becomes =
          replay.becomes ? std::string(transition_name(*replay.becomes))
          : prediction.kind == PlatformKind::Calibrated && replay.why.empty() ? "as measured"
                                                                              : "-";
      std::snprintf(cell, sizeof cell, "  %-26s %9llu  %-24s %10s %11s",
                    std::string(event_class_name(replay.event_class)).c_str(),
                    static_cast<unsigned long long>(replay.count), becomes.c_str(),
                    replay.each_ns ? duration_text(*replay.each_ns).c_str() : "-",
                    replay.each_ns ? duration_text(replay.total_ns).c_str() : "-");
      out << cell;
      if (!replay.why.empty()) out << "  " << replay.why;
      out << "\n";
    }
    out << "  " << prediction.events_removed << " events removed on this platform, "
        << prediction.events_uncosted << " kept without a figure\n";
    for (const auto& note : prediction.notes)
      out << "  note: " << note << "\n";
  }
}

void write_simulation_json(const Simulation& simulation, std::ostream& out) {
  using Ordered = nlohmann::ordered_json;
  auto levels_json = [](const LevelTimes& times) {
    Ordered item;
    for (std::size_t index = 0; index < times.ns.size(); ++index) {
      item[std::string(privilege_level_name(static_cast<PrivilegeLevel>(index)))] = times.ns[index];
    }
    item["halted"] = times.halted_ns;
    item["total"] = times.total();
    return item;
  };
  Ordered document;
  document["format"] = "vmlab-simulation";
  document["version"] = 1;
  document["platform"] = simulation.platform_line;
  document["trace"] = simulation.trace_path;
  document["run"] = simulation.run_description;
  document["technique"] = simulation.technique;
  document["events"] = simulation.events;
  document["dropped"] = simulation.dropped;
  document["measured_ns"] = levels_json(simulation.measured);
  document["host_profile"] = simulation.host_profile;
  document["host_guest_overhead_ns"] = simulation.host_guest_overhead_ns;
  Ordered predictions = Ordered::array();
  for (const auto& prediction : simulation.predictions) {
    Ordered item;
    item["profile"] = prediction.profile;
    item["title"] = prediction.title;
    item["kind"] = platform_kind_name(prediction.kind);
    item["predicted_ns"] = levels_json(prediction.predicted);
    item["events_removed"] = prediction.events_removed;
    item["events_uncosted"] = prediction.events_uncosted;
    Ordered rows = Ordered::array();
    for (const auto& replay : prediction.rows) {
      Ordered entry;
      entry["event"] = event_class_name(replay.event_class);
      entry["count"] = replay.count;
      entry["becomes"] = replay.becomes ? Ordered(transition_name(*replay.becomes)) : Ordered();
      entry["why"] = replay.why;
      entry["each_ns"] = replay.each_ns ? Ordered(*replay.each_ns) : Ordered();
      entry["total_ns"] = replay.total_ns;
      entry["level"] = privilege_level_name(replay.level);
      rows.push_back(entry);
    }
    item["events"] = rows;
    item["notes"] = prediction.notes;
    predictions.push_back(item);
  }
  document["predictions"] = predictions;
  out << document.dump(1) << "\n";
}

}  // namespace vmlab::simulate
