// Replaying a recorded run under a profile (profile.hpp): each event of the
// trace is put in a class (what the guest did: a trapped `cli`, a shadow
// fill, a port read), the profile's platform decides what that class becomes
// there (an exit, a translator callout, nothing at all because a feature
// removes it), and its costs add up beside the run's measured time.
//
// The guest's own work (its time at user and kernel level, and halted) is
// carried over as this machine ran it: the trace records what left the
// guest, not how long its instructions took. A `full` run is the best trace
// to replay: its kernel runs directly at CPL3 and every sensitive event is
// in the trace. Under `hvm` on kvm_pvm the kernel's time is KVM's emulation
// of it, and the page faults KVM handled itself are not in the trace; the
// simulation says so.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/events.hpp"
#include "vmlab/simulate/profile.hpp"
#include "vmlab/trace.hpp"

namespace vmlab::simulate {

// What the guest did, as the trace shows it, whatever the technique.
enum class EventClass {
  ExitIo,              // a port access that exited to the VMM (hvm)
  ExitEoi,             // an end-of-interrupt to the 8259 (out 0x20 or 0xa0, value 0x20)
  ExitMonitorChannel,  // full, bt, para: the monitor asking the VMM (port 0xe8): vmlab's own
  ExitMmio,
  ExitHlt,
  ExitInterruptWindow,
  ExitOther,
  Injection,          // the VMM delivered an interrupt
  TrapIo,             // the monitor emulated in/out
  TrapInterruptFlag,  // cli, sti, popf, pushf
  TrapReturn,         // iretq, sysretq, a far return
  TrapCr3,            // mov to cr3
  TrapInvlpg,
  TrapCr8,
  TrapCrWrite,  // mov to cr0 or cr4
  TrapCrRead,   // mov from a control register (cr2 in a fault handler)
  TrapMsr,
  TrapCpuid,
  TrapHlt,
  TrapDescriptor,  // lgdt, lidt, ltr, lldt, a segment register load
  TrapPrivilegedOther,
  TrapSystemCall,
  TrapPageFault,  // a true guest page fault, reflected
  TrapShadowFill,
  TrapPteWrite,
  TrapException,  // any other reflected exception
  TrapInterrupt,  // an external interrupt taken by the monitor
  TrapCallOut,    // bt: translated code asked the monitor
  TrapTranslatedCodeWrite,
  Hypercall,
  BtTranslate,  // bt: a block translated
  BtChain,
  BtIndirectMiss,
  BtInvalidate,
  DeviceWork,  // a device model's record (no transition of its own)
  IommuFault,
  Halt,  // the vCPU slept in hlt: halted time, carried over
  Count,
};

std::string_view event_class_name(EventClass event_class);
std::optional<EventClass> parse_event_class(std::string_view name);
EventClass classify(const Event& event, std::string_view detail);

// The technique of a trace's run ("cpu=full workload=pio n=100" -> "full").
std::string technique_of(const TraceInfo& trace);

// What `event_class` becomes on `profile`'s platform: a transition, or none
// (`why` says why: "runs in guest mode at CPL0", "removed by nested paging").
struct Fate {
  std::optional<Transition> transition;
  std::string why;
};
Fate fate_of(EventClass event_class, const Profile& profile);

// The time by level, as the trace header gives it and as predicted.
struct LevelTimes {
  std::array<double, static_cast<std::size_t>(PrivilegeLevel::Count)> ns{};
  double halted_ns = 0;
  double total() const;
  double at(PrivilegeLevel level) const { return ns[static_cast<std::size_t>(level)]; }
  // The guest's own levels (user, kernel, and unknown), and the VMM's and
  // the monitor's: what a profile's transitions cost.
  double guest() const;
  double transitions() const { return at(PrivilegeLevel::Vmm) + at(PrivilegeLevel::Monitor); }
  // Each guest level scaled by `factor` (0 to 1).
  void scale_guest(double factor);
};

// A trace's "# levels:" line, as LevelTimes.
LevelTimes levels_of(const TraceInfo& trace);

struct ReplayRow {
  EventClass event_class = EventClass::ExitOther;
  std::uint64_t count = 0;
  std::optional<Transition> becomes;  // Calibrated: none, the class is costed itself
  std::string why;                    // removed, or not costed: why
  std::optional<double> each_ns;      // none: the profile has no figure
  double total_ns = 0;
  PrivilegeLevel level = PrivilegeLevel::Vmm;  // where the cost goes
};

struct Prediction {
  std::string profile;
  std::string title;
  PlatformKind kind = PlatformKind::Hardware;
  LevelTimes predicted;
  std::vector<ReplayRow> rows;        // by class, in EventClass order
  std::uint64_t events_removed = 0;   // by a feature or the platform's design
  std::uint64_t events_uncosted = 0;  // kept, but the profile has no figure
  std::vector<std::string> notes;
};

struct Simulation {
  std::string trace_path;
  std::string platform_line;  // where the trace was recorded
  std::string run_description;
  std::string technique;
  std::uint64_t events = 0;
  std::uint64_t dropped = 0;  // the ring's oldest, not in the file: not replayed
  LevelTimes measured;
  std::string host_profile;  // the recording machine's calibrated profile (empty: none)
  // What the recording machine's transitions added at the guest's levels,
  // by its profile: taken out of the guest time of other platforms.
  double host_guest_overhead_ns = 0;
  std::vector<Prediction> predictions;
};

// Replays `trace` under each profile. `host`, the calibrated profile of the
// machine the trace was recorded on (find_host_profile), says what each
// event added at the guest's own level there; a prediction for another
// platform takes that out of the guest time it carries over. Fails only on
// a trace that cannot be replayed at all (no level times).
Result<Simulation> simulate(const Trace& trace, const std::vector<Profile>& profiles,
                            const std::optional<Profile>& host = std::nullopt);

// One operation's events, per operation: the difference between a trace of
// N operations and one of M, divided by N - M (boot and the rest cancel),
// to the nearest whole event (a fraction is a timer tick or a console line
// that ran meanwhile).
std::map<EventClass, double> events_per_operation(const Trace& small, std::uint64_t small_count,
                                                  const Trace& large, std::uint64_t large_count);

// What one operation costs on a platform, in its cycles: each transition
// its events become, plus its native cost (`native_cycles`) unless the
// platform carries out all of it (an emulated `in`: no fault whose native
// handler still runs). None where an event's
// transition has no figure in the profile.
struct OperationCost {
  std::optional<double> cycles;
  std::string explanation;  // "io-exit 15,826": what it is made of
};
OperationCost operation_cost(const Profile& profile, double native_cycles,
                             const std::map<EventClass, double>& per_operation);

void print_simulation(const Simulation& simulation, std::ostream& out);
// JSON: "format": "vmlab-simulation", version 1.
void write_simulation_json(const Simulation& simulation, std::ostream& out);

}  // namespace vmlab::simulate
