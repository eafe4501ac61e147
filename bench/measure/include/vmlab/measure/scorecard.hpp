// `vmlab scorecard`: every technique, and QEMU's TCG, against Popek and
// Goldberg's three requirements for a virtual machine monitor (CACM 17(7),
// 1974), measured on this machine:
//
//   equivalence  the guest sees what it would see on the real machine: the
//                share of probe cells and of workload result lines identical
//                to QEMU's (the native reference);
//   efficiency   "a statistically dominant subset of the virtual processor's
//                instructions" runs directly on the real one: the share of
//                the guest's instructions (counted by single-stepping a small
//                run) that no monitor, translator or KVM emulator handled;
//   safety       the monitor stays in control of the resources: the hostile
//                guest's attempts and the passthrough disk's DMA attacks that
//                were contained, out of those made.
//
// Measuring (measure_scorecard) keeps what the runs showed as evidence;
// scoring (score) is arithmetic on that evidence, so a scorecard read back
// from its JSON scores exactly as the run that wrote it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/cpu_mode.hpp"
#include "vmlab/result.hpp"

namespace vmlab::measure {

// The scorecard's techniques, in the order of its table.
std::vector<std::string> scorecard_techniques();  // hvm, full, bt, para, qemu-tcg
std::string scorecard_technique_list();           // the same as "hvm, full, ..."

// One thing compared with the native machine: a probe's answer, or a
// workload's result line without its cycle count.
struct Comparison {
  std::string name;            // "sgdt", "syscalls:100"
  std::string value;           // what the technique showed (empty: nothing)
  std::string expected;        // what the native machine showed, or the VMM's leaves (cpuid)
  std::string not_applicable;  // why it is not compared; empty: it is
  // para: what the paravirtualized kernel does instead of the instruction
  // (its value is that, not the instruction's answer); empty elsewhere.
  std::string substitute;
};

// One run single-stepped (InstructionCensus) and the same run without
// stepping, whose counts say what handled the instructions that did not run
// directly.
struct CensusRun {
  std::string workload;  // "syscalls:20"
  InstructionCensus census;
  // hvm on a backend that cannot step user code (user_mode_counted false):
  // the user instructions full counted for the same run, the same guest code.
  std::optional<std::uint64_t> user_steps_from_full;
  std::map<std::string, std::uint64_t> traps;  // the monitor's traps by reason
  std::uint64_t hypercalls = 0;
  std::uint64_t call_outs = 0;       // bt: the translator's call-outs taken
  std::uint64_t insn_emulation = 0;  // KVM's instruction emulator (kvm_stats)
};

// The hostile workload: one VMLAB-HOSTILE line per attempt, `check` the
// attempts that ended as the guest expects on a machine that contains it.
struct HostileRun {
  std::uint64_t attempts = 0;
  std::uint64_t as_expected = 0;
  bool survived = false;            // the guest exited normally; the VMM did not crash
  std::string integrity_violation;  // the monitor's region changed (empty: intact)
  std::string failure;              // how the run ended, when it did not survive
};

// The dma-attack workload on the passthrough disk: each target's outcome.
struct DmaRun {
  std::map<std::string, std::string> outcomes;  // target -> "blocked", "reached"
  bool survived = false;
  std::string failure;
};

struct TechniqueEvidence {
  std::string technique;
  std::string missing;  // why nothing could be measured (empty: measured)
  std::vector<Comparison> probes;
  std::vector<Comparison> workloads;
  std::string equivalence_missing;  // e.g. no native reference
  std::vector<CensusRun> census;
  std::string efficiency_missing;
  std::optional<HostileRun> hostile;
  std::optional<DmaRun> dma;
  std::string dma_missing;  // why there is no DMA attack (empty: see dma)
};

struct ScorecardEvidence {
  std::string platform_line;
  std::string backend;  // "kvm_pvm", "kvm_intel": what the explanations talk about
  std::string date;
  std::vector<TechniqueEvidence> techniques;
};

// One cell of the table.
struct Score {
  enum class Kind {
    Measured,        // satisfied of total
    Reference,       // the technique is the yardstick (QEMU's equivalence)
    ByConstruction,  // true of the technique, not measured (QEMU's efficiency)
    NotApplicable,   // nothing to measure (QEMU has no passthrough DMA)
    Missing,         // could not be measured here: `explanation` says why
  };
  Kind kind = Kind::Missing;
  std::uint64_t satisfied = 0;
  std::uint64_t total = 0;
  std::uint64_t not_applicable = 0;  // left out of total, shown beside it
  std::string explanation;           // one line: what was counted, and what it means
  // "97% (33/34)", "100% (31/31, 4 n/a)", "reference", "0% (by construction)",
  // "n/a", "missing".
  std::string text() const;
};

struct TechniqueScore {
  std::string technique;
  std::string missing;
  Score equivalence;
  Score efficiency;
  Score safety;
};

struct Scorecard {
  std::string platform_line;
  std::vector<TechniqueScore> rows;
};

// Pure arithmetic on the evidence: no run, no host, no clock.
Scorecard score(const ScorecardEvidence& evidence);

// The DMA targets that are attacks under `technique`: memory the guest does
// not own (the monitor's region, past RAM, the reserved low MiB), and under
// para the page tables too, which the monitor validates and the device must
// not write behind its back (guest/README.md, "DMA attack").
std::vector<std::string> dma_attack_targets(const std::string& technique);

struct ScorecardOptions {
  std::vector<std::string> techniques;  // empty: scorecard_techniques()
  // The workloads whose result lines are compared (empty: the built-in
  // guest's workloads that need no disk, small counts).
  std::vector<std::pair<std::string, std::uint64_t>> workloads;
  // (done, total, what starts next); done == total once at the end.
  std::function<void(std::size_t, std::size_t, const std::string&)> progress;
};

// The workloads compared by default, and the census's runs.
std::vector<std::pair<std::string, std::uint64_t>> default_scorecard_workloads();
std::vector<std::pair<std::string, std::uint64_t>> census_workloads();

// Runs everything the scorecard needs. A technique, or a requirement of
// one, that cannot be measured is kept with the reason; the call fails only
// when /dev/kvm itself is unusable.
Result<ScorecardEvidence> measure_scorecard(const ScorecardOptions& options);

void print_scorecard(const Scorecard& scorecard, std::ostream& out);
// JSON: "format": "vmlab-scorecard", the evidence and the scores beside it.
void write_scorecard_json(const ScorecardEvidence& evidence, std::ostream& out);
// The evidence of a JSON file write_scorecard_json wrote (the scores are
// recomputed); MeasureError::kMalformed names the first field at fault.
Result<ScorecardEvidence> parse_scorecard_json(std::string_view text);
Result<ScorecardEvidence> read_scorecard_file(const std::string& path);

}  // namespace vmlab::measure
