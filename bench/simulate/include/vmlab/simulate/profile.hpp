// A hardware profile: what each kind of transition costs on one platform,
// and the features that decide which transitions happen there at all. The
// published platforms are data files in bench/profiles/, every figure cited
// to its source; `vmlab calibrate` writes one for the machine it runs on.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/result.hpp"

namespace vmlab::simulate {

enum class SimulateError {
  kMalformedProfile = 1,  // not a profile, or a field at fault (named)
  kUnreadable,            // a file that could not be read (system_errno)
  kUnknownProfile,        // a name that is no profile in bench/profiles/
  kUnusableTrace,         // a trace the simulator cannot replay (named why)
};
constexpr const char* error_domain(SimulateError) {
  return "simulate";
}
using vmlab::make_error_code;

// How the platform runs a guest.
enum class PlatformKind {
  // The guest kernel at CPL0 in the CPU's guest mode (VT-x, AMD-V): only
  // what the hardware intercepts leaves it, as an exit to the hypervisor.
  Hardware,
  // A VMware-style monitor: user code runs directly, kernel code only as
  // translations, which call into the monitor for what they cannot do inline.
  BinaryTranslation,
  // This machine, measured: every event of a trace costs what it cost here,
  // by technique (vmlab calibrate).
  Calibrated,
};

std::string_view platform_kind_name(PlatformKind kind);

// What makes a transition disappear (the Intel SDM vol. 3C and AMD APM vol.
// 2 define each; the profiles cite where a platform got it).
enum class Feature {
  NestedPaging,        // EPT / NPT: guest page faults, CR3 and invlpg need no hypervisor
  TaggedTlb,           // VPID / ASID: no TLB flush on a world switch
  TprShadow,           // CR8 writes need no exit
  ApicVirtualization,  // APICv / AVIC: EOI and interrupt windows without an exit
  PostedInterrupts,    // an interrupt reaches a running guest without an exit
  Iommu,               // a passthrough device's DMA is remapped without the hypervisor
};

std::string_view feature_name(Feature feature);
std::optional<Feature> parse_feature(std::string_view name);

// What the platform does for a guest event: the transitions a profile costs.
enum class Transition {
  // Hardware: exits, each a round trip into the hypervisor and back.
  IoExit,
  MmioExit,
  HltExit,
  CpuidExit,
  MsrExit,
  CrExit,  // a write of CR0 or CR4 (and of CR8 without the TPR shadow)
  Cr3Exit,
  InvlpgExit,
  PageFaultExit,        // a guest page fault delivered through the hypervisor (shadow paging)
  HiddenPageFaultExit,  // a fault the shadow page tables cause, filled by the hypervisor
  PteWriteExit,         // a store to a write-protected guest page table
  InterruptExit,        // an external interrupt: exit, and an entry that injects it
  InterruptWindowExit,
  EoiExit,
  HypercallExit,
  OtherExit,
  // Not an exit: what delivering an exception costs in the CPU's guest mode
  // beyond doing it natively.
  GuestException,
  // Binary translation: the monitor's work for translated code.
  BtInline,           // a privileged instruction translated into ordinary code
  BtCallout,          // translated code calls the monitor to carry it out
  BtIo,               // a port access handled by the monitor's device model
  BtSystemCall,       // a user system call entering the translated kernel through the monitor
  BtPageFault,        // a guest page fault reflected by the monitor
  BtHiddenPageFault,  // a shadow fill
  BtPteWrite,         // a page-table store (adaptive translation: a callout)
  BtException,        // another exception reflected by the monitor
  BtInterrupt,        // an interrupt delivered into translated code
  BtTranslateBlock,   // a block translated
  BtIndirectMiss,     // an indirect branch whose target the lookup missed
  Count,
};

std::string_view transition_name(Transition transition);
std::optional<Transition> parse_transition(std::string_view name);
// Whether a platform of `kind` has the transition (a hardware profile costs
// exits, a translator's the monitor's work).
bool transition_belongs_to(Transition transition, PlatformKind kind);
// Whether the transition carries out the guest's instruction instead of
// the CPU (an emulated `in`, a translated `cli`): the instruction's own
// native cost is then not paid. A fault's transitions add to the guest's
// native handling of it.
bool transition_replaces_instruction(Transition transition);

// A figure and where it comes from.
struct Cost {
  // Cycles on the profile's clock (published platforms) or nanoseconds
  // (calibrated); none when no source gives the figure, which the
  // simulation then says instead of inventing one.
  std::optional<double> cycles;
  std::optional<double> ns;
  std::string basis;   // "measured", "derived", "estimate", "calibrated"
  std::string source;  // a key of Profile::sources
  std::string note;    // what the figure is, and how it was derived
};

struct Profile {
  std::string name;   // "vtx-2006": what --profile takes
  std::string title;  // "first-generation Intel VT-x, no EPT (2006)"
  PlatformKind kind = PlatformKind::Hardware;
  std::string cpu;      // the machine the figures are for
  std::string backend;  // Calibrated: the KVM backend it was measured on ("kvm_pvm")
  double clock_ghz = 0;
  std::set<Feature> features;
  std::map<std::string, std::string> sources;  // key -> citation
  // Hardware and BinaryTranslation: by transition.
  std::map<Transition, Cost> costs;
  // Calibrated: by technique, then by the trace's event class (EventClass
  // names, simulate.hpp), in nanoseconds: "vmm:CLASS" and "monitor:CLASS"
  // the VMM's and the monitor's time, "guest:CLASS" the time it adds at the
  // guest's own level (KVM's work for it inside KVM_RUN); "...:run" once per
  // run.
  std::map<std::string, std::map<std::string, Cost>> calibrated;
  // The published native cost of an operation, for the reference rows of a
  // comparison ("in" -> 3,209 cycles on Adams and Agesen's Pentium 4).
  std::map<std::string, Cost> native_operations;

  bool has(Feature feature) const { return features.count(feature) != 0; }
  // A cost in nanoseconds on this platform; none when the profile has no
  // figure for it.
  std::optional<double> ns(const Cost& cost) const;
};

// A profile file's text: "format": "vmlab-profile", version 1. Every cost
// must name a source the file lists, every key be a transition of its kind;
// a field at fault is named (kMalformedProfile).
Result<Profile> parse_profile(std::string_view text);
void write_profile(const Profile& profile, std::ostream& out);
Result<Profile> read_profile_file(const std::string& path);

// The profiles in `directory` (bench/profiles/ unless a test says
// otherwise), by name; a NAME that contains '/' or ends in .json is a file.
std::vector<std::string> profile_names(const std::string& directory = "");
Result<Profile> find_profile(const std::string& name_or_path, const std::string& directory = "");
std::string default_profile_directory();
// The calibrated profile of the machine a trace was recorded on (its
// platform line names the backend and the CPU), if `directory` has one.
std::optional<Profile> find_host_profile(const std::string& platform_line,
                                         const std::string& directory = "");

}  // namespace vmlab::simulate

VMLAB_ERROR_KINDS(vmlab::simulate::SimulateError);
