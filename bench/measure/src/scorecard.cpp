// The scorecard's arithmetic and its table: from evidence alone, so that a
// scorecard read back from JSON is the scorecard of the run that wrote it.
#include "vmlab/measure/scorecard.hpp"

#include <algorithm>
#include <cstdio>

#include "vmlab/measure/report.hpp"

namespace vmlab::measure {

namespace {

constexpr const char* kQemu = "qemu-tcg";
// The names an explanation lists before it says "and N more".
constexpr std::size_t kNamesListed = 6;

std::uint64_t count_of(const std::map<std::string, std::uint64_t>& counts, const char* key) {
  const auto found = counts.find(key);
  return found == counts.end() ? 0 : found->second;
}

std::string count_text(std::uint64_t value) {
  return with_separators(static_cast<double>(value));
}

std::string listed(const std::vector<std::string>& names) {
  std::string text;
  for (std::size_t index = 0; index < names.size() && index < kNamesListed; ++index) {
    text += (index == 0 ? "" : ", ") + names[index];
  }
  if (names.size() > kNamesListed) {
    text += " and " + std::to_string(names.size() - kNamesListed) + " more";
  }
  return text;
}

Score missing(std::string why) {
  Score score;
  score.kind = Score::Kind::Missing;
  score.explanation = std::move(why);
  return score;
}

Score measured(std::uint64_t satisfied, std::uint64_t total, std::string explanation) {
  if (total == 0) return missing("nothing was counted: " + explanation);
  Score score;
  score.kind = Score::Kind::Measured;
  score.satisfied = satisfied;
  score.total = total;
  score.explanation = std::move(explanation);
  return score;
}

Score equivalence_of(const TechniqueEvidence& evidence) {
  if (evidence.technique == kQemu) {
    Score score;
    score.kind = Score::Kind::Reference;
    score.explanation =
        "the native machine the others are compared with: QEMU's emulated PC runs the same image "
        "and command line";
    return score;
  }
  if (!evidence.equivalence_missing.empty()) return missing(evidence.equivalence_missing);
  struct Tally {
    std::uint64_t same = 0, compared = 0, substituted = 0;
    std::vector<std::string> different, not_applicable;
  };
  auto tally = [](const std::vector<Comparison>& comparisons) {
    Tally result;
    for (const auto& comparison : comparisons) {
      if (!comparison.not_applicable.empty()) {
        result.not_applicable.push_back(comparison.name);
        continue;
      }
      ++result.compared;
      if (!comparison.substitute.empty()) ++result.substituted;
      if (comparison.value == comparison.expected && !comparison.expected.empty()) {
        ++result.same;
      } else {
        result.different.push_back(comparison.name);
      }
    }
    return result;
  };
  const Tally probes = tally(evidence.probes);
  const Tally workloads = tally(evidence.workloads);
  if (probes.compared + workloads.compared == 0) return missing("nothing was compared");
  std::string text = std::to_string(probes.same) + "/" + std::to_string(probes.compared) +
                     " probe answers and " + std::to_string(workloads.same) + "/" +
                     std::to_string(workloads.compared) + " result lines as on the native machine";
  if (probes.substituted != 0) {
    text += " (" + std::to_string(probes.substituted) +
            " of the probes answered by the paravirtualized kernel's substitute, not by the "
            "instruction: equivalence for a modified guest)";
  }
  if (!probes.different.empty()) text += "; probes that differ: " + listed(probes.different);
  if (!workloads.different.empty()) {
    text += "; result lines that differ: " + listed(workloads.different);
  }
  std::vector<std::string> not_applicable = probes.not_applicable;
  not_applicable.insert(not_applicable.end(), workloads.not_applicable.begin(),
                        workloads.not_applicable.end());
  if (!not_applicable.empty()) text += "; not compared (n/a): " + listed(not_applicable);
  Score score = measured(probes.same + workloads.same, probes.compared + workloads.compared, text);
  score.not_applicable = not_applicable.size();
  return score;
}

// Instructions the monitor executed for the guest: one per trap of these
// kinds (shadow fills, reflected faults and interrupts emulate nothing; the
// instruction runs again directly).
std::uint64_t monitor_emulated(const CensusRun& run) {
  return count_of(run.traps, "privileged-instruction") + count_of(run.traps, "page-table-write") +
         count_of(run.traps, "system-call");
}

Score efficiency_of(const TechniqueEvidence& evidence, const std::string& backend) {
  if (evidence.technique == kQemu) {
    Score score;
    score.kind = Score::Kind::ByConstruction;
    score.total = 1;
    score.explanation =
        "TCG translates every guest instruction into host code before it runs: none runs "
        "directly (by construction; not single-stepped)";
    return score;
  }
  if (!evidence.efficiency_missing.empty()) return missing(evidence.efficiency_missing);
  if (evidence.census.empty()) return missing("no census run");
  std::vector<std::string> workloads;
  for (const auto& run : evidence.census)
    workloads.push_back(run.workload);
  const std::string runs = " (single-stepped: " + listed(workloads) + ")";
  std::uint64_t direct = 0, total = 0;
  if (evidence.technique == "hvm") {
    std::uint64_t emulated = 0, user_from_full = 0;
    bool clamped = false;
    for (const auto& run : evidence.census) {
      std::uint64_t user = run.census.user_steps;
      if (!run.census.user_mode_counted) {
        if (!run.user_steps_from_full) {
          return missing(
              "KVM stepped no user-mode instruction here and full's count of them is missing");
        }
        user = *run.user_steps_from_full;
        user_from_full += user;
      }
      const std::uint64_t instructions = run.census.kernel_steps + user;
      // insn_emulation counts the emulator's attempts (an I/O instruction's
      // exits among them), so it can exceed what the guest executed.
      clamped = clamped || run.insn_emulation > instructions;
      const std::uint64_t handled = std::min(run.insn_emulation, instructions);
      emulated += run.insn_emulation;
      direct += instructions - handled;
      total += instructions;
    }
    std::string text = "of " + count_text(total) + " guest instructions" + runs +
                       ", KVM's instruction emulator ran " + count_text(emulated) +
                       " (its insn_emulation statistic)";
    if (backend == "kvm_pvm") {
      text +=
          ": kvm_pvm has no VT-x or AMD-V and runs all the guest's CPL0 code in that emulator; "
          "only user code runs directly";
    } else {
      text += ": the rest ran directly in the CPU's guest mode";
    }
    if (user_from_full != 0) {
      text += "; the " + count_text(user_from_full) +
              " user instructions were counted under full, as this backend steps no user code";
    }
    if (clamped) text += "; where the emulator ran more than the guest executed, direct is 0";
    return measured(direct, total, text);
  }
  const bool translated = evidence.technique == "bt";
  std::uint64_t emulated = 0, hypercalls = 0, tc_steps = 0, call_outs = 0, kernel = 0, user = 0;
  for (const auto& run : evidence.census) {
    emulated += monitor_emulated(run);
    hypercalls += run.hypercalls;
    tc_steps += run.census.translated_steps;
    call_outs += run.call_outs;
    kernel += run.census.kernel_steps;
    user += run.census.user_steps;
  }
  direct = kernel + user;
  total = direct + emulated + hypercalls + tc_steps + call_outs;
  std::string text;
  if (translated) {
    text = count_text(user) + " user instructions ran directly" + runs +
           "; the kernel ran only as translations: " + count_text(tc_steps) +
           " instructions of translated code (most copied from the guest's), " +
           count_text(call_outs) + " call-outs, and the monitor emulated " + count_text(emulated);
  } else {
    text = count_text(direct) + " of " + count_text(total) + " guest instructions ran directly" +
           runs + ", the kernel deprivileged; the monitor emulated " + count_text(emulated) +
           " (privileged instructions, page-table stores, system calls)";
    if (hypercalls != 0) text += " and took " + count_text(hypercalls) + " hypercalls";
  }
  return measured(direct, total, text);
}

Score safety_of(const TechniqueEvidence& evidence) {
  std::uint64_t contained = 0, made = 0;
  std::vector<std::string> parts;
  if (const auto& hostile = evidence.hostile) {
    made += hostile->attempts;
    if (!hostile->survived) {
      parts.push_back("the hostile run did not end normally (" + hostile->failure +
                      "): none of its " + std::to_string(hostile->attempts) +
                      " attempts counts as contained");
    } else if (!hostile->integrity_violation.empty()) {
      parts.push_back("the monitor's region changed (" + hostile->integrity_violation +
                      "): none of the hostile attempts counts as contained");
    } else {
      contained += std::min(hostile->as_expected, hostile->attempts);
      parts.push_back(std::to_string(hostile->as_expected) + "/" +
                      std::to_string(hostile->attempts) +
                      " hostile attempts ended as a machine that contains them must end them");
    }
  }
  if (const auto& dma = evidence.dma) {
    std::vector<std::string> reached;
    std::uint64_t blocked = 0, attacks = 0;
    for (const auto& target : dma_attack_targets(evidence.technique)) {
      ++attacks;
      const auto outcome = dma->outcomes.find(target);
      if (dma->survived && outcome != dma->outcomes.end() && outcome->second == "blocked") {
        ++blocked;
      } else {
        reached.push_back(target);
      }
    }
    made += attacks;
    contained += blocked;
    std::string part = std::to_string(blocked) + "/" + std::to_string(attacks) +
                       " DMA attacks of the passthrough disk blocked by the IOMMU";
    if (!dma->survived) part += " (the run did not end normally: " + dma->failure + ")";
    if (!reached.empty()) part += "; not blocked: " + listed(reached);
    parts.push_back(part);
  } else if (evidence.technique == kQemu) {
    parts.push_back("no DMA attack: this configuration has no passthrough device");
  } else if (!evidence.dma_missing.empty()) {
    parts.push_back("no DMA attack: " + evidence.dma_missing);
  }
  if (made == 0) return missing("no attempt was made");
  std::string text;
  for (const auto& part : parts)
    text += (text.empty() ? "" : "; ") + part;
  return measured(contained, made, text);
}

}  // namespace

std::vector<std::string> scorecard_techniques() {
  return {"hvm", "full", "bt", "para", kQemu};
}

std::string scorecard_technique_list() {
  std::string text;
  for (const auto& name : scorecard_techniques())
    text += (text.empty() ? "" : ", ") + name;
  return text;
}

std::vector<std::string> dma_attack_targets(const std::string& technique) {
  std::vector<std::string> targets = {"monitor", "past-ram", "reserved"};
  if (technique == "para") targets.emplace_back("page-table");
  return targets;
}

std::string Score::text() const {
  switch (kind) {
    case Kind::Measured: {
      // Rounded down below 100: 99.7% is not "100%" while anything failed.
      const double share =
          total == 0 ? 0 : 100.0 * static_cast<double>(satisfied) / static_cast<double>(total);
      const int percent = satisfied == total ? 100 : std::min(99, static_cast<int>(share));
      const std::string left_out =
          not_applicable == 0 ? "" : ", " + std::to_string(not_applicable) + " n/a";
      return std::to_string(percent) + "% (" + count_text(satisfied) + "/" + count_text(total) +
             left_out + ")";
    }
    case Kind::Reference:
      return "reference";
    case Kind::ByConstruction:
      return std::to_string(total == 0 ? 0 : 100 * satisfied / total) + "% (by construction)";
    case Kind::NotApplicable:
      return "n/a";
    case Kind::Missing:
      return "missing";
  }
  return "missing";
}

Scorecard score(const ScorecardEvidence& evidence) {
  Scorecard scorecard;
  scorecard.platform_line = evidence.platform_line;
  for (const auto& technique : evidence.techniques) {
    TechniqueScore row;
    row.technique = technique.technique;
    row.missing = technique.missing;
    if (!technique.missing.empty()) {
      row.equivalence = row.efficiency = row.safety = missing(technique.missing);
    } else {
      row.equivalence = equivalence_of(technique);
      row.efficiency = efficiency_of(technique, evidence.backend);
      row.safety = safety_of(technique);
    }
    scorecard.rows.push_back(std::move(row));
  }
  return scorecard;
}

void print_scorecard(const Scorecard& scorecard, std::ostream& out) {
  char line[256];
  std::snprintf(line, sizeof line, "%-10s  %-24s  %-24s  %-24s\n", "technique", "equivalence",
                "efficiency", "safety");
  out << line;
  for (const auto& row : scorecard.rows) {
    if (!row.missing.empty()) {
      std::snprintf(line, sizeof line, "%-10s  missing: %s\n", row.technique.c_str(),
                    row.missing.c_str());
      out << line;
      continue;
    }
    std::snprintf(line, sizeof line, "%-10s  %-24s  %-24s  %-24s\n", row.technique.c_str(),
                  row.equivalence.text().c_str(), row.efficiency.text().c_str(),
                  row.safety.text().c_str());
    out << line;
  }
  out << "\nequivalence: the guest's view identical to the native machine's; efficiency: the "
         "share of its\ninstructions the CPU ran directly; safety: attacks on the monitor and "
         "the host contained\n(Popek and Goldberg, 1974).\n";
  for (const auto& row : scorecard.rows) {
    if (!row.missing.empty()) continue;
    out << "\n" << row.technique << "\n";
    for (const auto& [name, cell] :
         {std::pair{"equivalence", &row.equivalence}, std::pair{"efficiency", &row.efficiency},
          std::pair{"safety", &row.safety}}) {
      out << "  " << name << ": " << cell->text() << ": " << cell->explanation << "\n";
    }
  }
  out << "\n" << scorecard.platform_line << "\n";
}

}  // namespace vmlab::measure
