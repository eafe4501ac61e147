// The scorecard's arithmetic on hand-made evidence, and a recorded scorecard
// (tests/data: `vmlab scorecard --json` on an Intel Xeon kvm_pvm host) read
// back, scored again and refused when it is corrupt. No KVM: scoring runs
// nothing.
#include "vmlab/measure/scorecard.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace vmlab::measure {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string file_text(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

Comparison same(const std::string& name) {
  return {name, "x", "x", "", ""};
}

Comparison different(const std::string& name) {
  return {name, "seen", "native", "", ""};
}

CensusRun census_run(std::uint64_t kernel, std::uint64_t user) {
  CensusRun run;
  run.workload = "syscalls:20";
  run.census.kernel_steps = kernel;
  run.census.user_steps = user;
  return run;
}

TechniqueEvidence technique(const std::string& name) {
  TechniqueEvidence evidence;
  evidence.technique = name;
  return evidence;
}

TechniqueScore scored(const TechniqueEvidence& evidence, const std::string& backend = "kvm_pvm") {
  ScorecardEvidence card;
  card.platform_line = "platform: test";
  card.backend = backend;
  card.techniques = {evidence};
  return score(card).rows.at(0);
}

TEST(ScoreText, PercentsRoundDownUntilEverythingIsSatisfied) {
  Score score;
  score.kind = Score::Kind::Measured;
  score.satisfied = 33;
  score.total = 34;
  EXPECT_EQ(score.text(), "97% (33/34)");
  score.satisfied = 9999;
  score.total = 10000;
  EXPECT_EQ(score.text(), "99% (9,999/10,000)") << "not 100% while one failed";
  score.satisfied = 0;
  EXPECT_EQ(score.text(), "0% (0/10,000)");
  score.satisfied = score.total;
  EXPECT_EQ(score.text(), "100% (10,000/10,000)");
  score.kind = Score::Kind::Missing;
  EXPECT_EQ(score.text(), "missing");
}

TEST(Equivalence, CountsWhatWasComparedAndNamesWhatDiffers) {
  TechniqueEvidence full = technique("full");
  full.probes = {same("sldt"), different("sgdt"), different("smsw")};
  full.probes.push_back({"lar-cs", "", "0x0", "n/a: not run here", ""});
  full.workloads = {same("syscalls:100"), same("pio:100")};
  full.workloads.push_back({"hypercall:100", "a", "b", "para only", ""});
  const Score equivalence = scored(full).equivalence;
  EXPECT_EQ(equivalence.kind, Score::Kind::Measured);
  EXPECT_EQ(equivalence.satisfied, 3u);
  EXPECT_EQ(equivalence.total, 5u) << "n/a cells are not compared";
  EXPECT_TRUE(contains(equivalence.explanation, "1/3 probe answers")) << equivalence.explanation;
  EXPECT_TRUE(contains(equivalence.explanation, "2/2 result lines")) << equivalence.explanation;
  EXPECT_TRUE(contains(equivalence.explanation, "differ: sgdt, smsw")) << equivalence.explanation;
  EXPECT_TRUE(contains(equivalence.explanation, "lar-cs, hypercall:100"))
      << equivalence.explanation;
}

TEST(Equivalence, AnEmptyNativeAnswerNeverMatches) {
  TechniqueEvidence hvm = technique("hvm");
  hvm.workloads = {{"hello:1", "", "", "", ""}};
  EXPECT_EQ(scored(hvm).equivalence.satisfied, 0u);
}

TEST(Equivalence, SubstitutedProbesAreSaidToBe) {
  TechniqueEvidence para = technique("para");
  para.probes = {same("sgdt")};
  para.probes.back().substitute = "the GDT it registered";
  const Score equivalence = scored(para).equivalence;
  EXPECT_EQ(equivalence.satisfied, 1u);
  EXPECT_TRUE(contains(equivalence.explanation, "modified guest")) << equivalence.explanation;
}

TEST(Equivalence, QemuIsTheReferenceAndAMissingReferenceIsMissing) {
  EXPECT_EQ(scored(technique("qemu-tcg")).equivalence.kind, Score::Kind::Reference);
  TechniqueEvidence hvm = technique("hvm");
  hvm.equivalence_missing = "no native reference: QEMU could not run";
  const Score equivalence = scored(hvm).equivalence;
  EXPECT_EQ(equivalence.kind, Score::Kind::Missing);
  EXPECT_EQ(equivalence.explanation, hvm.equivalence_missing);
}

TEST(Efficiency, FullCountsStepsDirectAndTheMonitorsEmulationsHandled) {
  TechniqueEvidence full = technique("full");
  CensusRun run = census_run(100, 50);
  run.traps = {{"privileged-instruction", 5},
               {"page-table-write", 3},
               {"system-call", 2},
               {"shadow-fill", 7},
               {"reflected-exception", 4}};
  full.census = {run, run};
  const Score efficiency = scored(full).efficiency;
  EXPECT_EQ(efficiency.satisfied, 300u);
  EXPECT_EQ(efficiency.total, 320u) << "fills and reflections emulate no instruction";
  EXPECT_EQ(efficiency.text(), "93% (300/320)");
}

TEST(Efficiency, ParasHypercallsAreHandledToo) {
  TechniqueEvidence para = technique("para");
  CensusRun run = census_run(100, 50);
  run.hypercalls = 10;
  para.census = {run};
  const Score efficiency = scored(para).efficiency;
  EXPECT_EQ(efficiency.satisfied, 150u);
  EXPECT_EQ(efficiency.total, 160u);
  EXPECT_TRUE(contains(efficiency.explanation, "10 hypercalls")) << efficiency.explanation;
}

TEST(Efficiency, BtRunsOnlyUserCodeDirectly) {
  TechniqueEvidence bt = technique("bt");
  CensusRun run = census_run(0, 50);
  run.census.translated_steps = 300;
  run.call_outs = 20;
  run.traps = {{"system-call", 2}};
  bt.census = {run};
  const Score efficiency = scored(bt).efficiency;
  EXPECT_EQ(efficiency.satisfied, 50u);
  EXPECT_EQ(efficiency.total, 372u);
  EXPECT_TRUE(contains(efficiency.explanation, "300 instructions of translated code"))
      << efficiency.explanation;
}

TEST(Efficiency, HvmSubtractsKvmsEmulatorAndTakesUserStepsFromFullWhereItMust) {
  TechniqueEvidence hvm = technique("hvm");
  CensusRun run = census_run(100, 0);
  run.census.user_mode_counted = false;
  run.user_steps_from_full = 50;
  run.insn_emulation = 120;
  hvm.census = {run};
  Score efficiency = scored(hvm).efficiency;
  EXPECT_EQ(efficiency.satisfied, 30u);
  EXPECT_EQ(efficiency.total, 150u);
  EXPECT_TRUE(contains(efficiency.explanation, "kvm_pvm")) << efficiency.explanation;
  EXPECT_TRUE(contains(efficiency.explanation, "counted under full")) << efficiency.explanation;

  // The emulator's attempts can exceed the instructions: none direct, said.
  hvm.census[0].insn_emulation = 400;
  efficiency = scored(hvm).efficiency;
  EXPECT_EQ(efficiency.satisfied, 0u);
  EXPECT_EQ(efficiency.total, 150u);
  EXPECT_TRUE(contains(efficiency.explanation, "direct is 0")) << efficiency.explanation;

  // Hardware that steps user code and emulates only I/O: nothing about kvm_pvm.
  hvm.census[0] = census_run(100, 50);
  hvm.census[0].insn_emulation = 3;
  efficiency = scored(hvm, "kvm_intel").efficiency;
  EXPECT_EQ(efficiency.satisfied, 147u);
  EXPECT_FALSE(contains(efficiency.explanation, "kvm_pvm")) << efficiency.explanation;

  hvm.census[0].census.user_mode_counted = false;
  EXPECT_EQ(scored(hvm).efficiency.kind, Score::Kind::Missing) << "no user count at all";
}

TEST(Efficiency, QemuIsZeroByConstruction) {
  const Score efficiency = scored(technique("qemu-tcg")).efficiency;
  EXPECT_EQ(efficiency.kind, Score::Kind::ByConstruction);
  EXPECT_EQ(efficiency.text(), "0% (by construction)");
}

TEST(Safety, HostileAttemptsAndDmaAttacksAddUp) {
  TechniqueEvidence full = technique("full");
  full.hostile = HostileRun{16, 16, true, "", ""};
  full.dma = DmaRun{{{"control", "reached"},
                     {"monitor", "blocked"},
                     {"past-ram", "blocked"},
                     {"reserved", "blocked"},
                     {"page-table", "reached"}},
                    true,
                    ""};
  const Score safety = scored(full).safety;
  EXPECT_EQ(safety.satisfied, 19u);
  EXPECT_EQ(safety.total, 19u) << "the control DMA and full's own page table are no attacks";

  TechniqueEvidence para = full;
  para.technique = "para";
  const Score para_safety = scored(para).safety;
  EXPECT_EQ(para_safety.satisfied, 19u);
  EXPECT_EQ(para_safety.total, 20u) << "under para the page tables are the monitor's";
  EXPECT_TRUE(contains(para_safety.explanation, "not blocked: page-table"))
      << para_safety.explanation;
}

TEST(Safety, ABrokenMonitorOrACrashContainsNothing) {
  TechniqueEvidence full = technique("full");
  full.hostile = HostileRun{16, 16, true, "the GDT changed", ""};
  Score safety = scored(full).safety;
  EXPECT_EQ(safety.satisfied, 0u);
  EXPECT_EQ(safety.total, 16u);
  EXPECT_TRUE(contains(safety.explanation, "the GDT changed")) << safety.explanation;

  full.hostile = HostileRun{9, 9, false, "", "the guest crashed"};
  full.dma = DmaRun{{{"monitor", "blocked"}}, false, "timed out"};
  safety = scored(full).safety;
  EXPECT_EQ(safety.satisfied, 0u);
  EXPECT_EQ(safety.total, 12u);
}

TEST(Scorecard, AMissingTechniqueIsMissingInEveryCellAndSaysWhy) {
  TechniqueEvidence qemu = technique("qemu-tcg");
  qemu.missing = "qemu-system-x86_64 is not installed";
  const TechniqueScore row = scored(qemu);
  for (const Score* cell : {&row.equivalence, &row.efficiency, &row.safety}) {
    EXPECT_EQ(cell->kind, Score::Kind::Missing);
  }
  Scorecard card;
  card.platform_line = "platform: test";
  card.rows = {row};
  std::ostringstream out;
  print_scorecard(card, out);
  EXPECT_TRUE(contains(out.str(), "missing: qemu-system-x86_64 is not installed")) << out.str();
  EXPECT_TRUE(contains(out.str(), "platform: test")) << out.str();
}

class RecordedScorecard : public ::testing::Test {
 protected:
  void SetUp() override {
    auto read = read_scorecard_file(VMLAB_RECORDED_SCORECARD);
    ASSERT_TRUE(read.ok()) << read.error().message;
    evidence = std::move(*read);
  }
  ScorecardEvidence evidence;
};

TEST_F(RecordedScorecard, EveryTechniqueHasEveryCell) {
  const Scorecard card = score(evidence);
  std::vector<std::string> techniques;
  for (const auto& row : card.rows) {
    techniques.push_back(row.technique);
    EXPECT_TRUE(row.missing.empty()) << row.technique << ": " << row.missing;
    for (const Score* cell : {&row.equivalence, &row.efficiency, &row.safety}) {
      EXPECT_NE(cell->kind, Score::Kind::Missing) << row.technique << ": " << cell->explanation;
      EXPECT_FALSE(cell->explanation.empty()) << row.technique;
    }
  }
  EXPECT_EQ(techniques, scorecard_techniques());
  std::ostringstream out;
  print_scorecard(card, out);
  EXPECT_TRUE(contains(out.str(), evidence.platform_line)) << "every report names its platform";
}

TEST_F(RecordedScorecard, ScoresAsWhenItWasRecorded) {
  // The file keeps the scores of the run that wrote it beside the evidence.
  std::ostringstream written;
  write_scorecard_json(evidence, written);
  EXPECT_EQ(written.str(), file_text(VMLAB_RECORDED_SCORECARD))
      << "read back and written again, the file is the same: evidence and scores";
}

TEST_F(RecordedScorecard, ShowsTheTechniquesForWhatTheyAre) {
  std::map<std::string, TechniqueScore> rows;
  for (auto& row : score(evidence).rows)
    rows[row.technique] = row;
  // full's kernel, deprivileged, sees the x86 holes; bt's translator closes them.
  EXPECT_LT(rows["full"].equivalence.satisfied, rows["full"].equivalence.total);
  EXPECT_EQ(rows["bt"].equivalence.satisfied, rows["bt"].equivalence.total);
  // On kvm_pvm, KVM emulates hvm's kernel code; full runs almost all of it directly.
  EXPECT_TRUE(contains(rows["hvm"].efficiency.explanation, "kvm_pvm"));
  EXPECT_LT(rows["hvm"].efficiency.satisfied * 2, rows["hvm"].efficiency.total);
  EXPECT_GT(rows["full"].efficiency.satisfied * 10, rows["full"].efficiency.total * 9);
  for (const auto& [name, row] : rows) {
    EXPECT_EQ(row.safety.satisfied, row.safety.total) << name << ": " << row.safety.explanation;
  }
}

TEST(ScorecardJson, BadFilesAreRefusedNamingTheField) {
  struct Case {
    std::string text;
    std::string names;
  };
  const std::string head = R"({"format": "vmlab-scorecard", "version": 1, "platform": "p",
                               "backend": "kvm_pvm", "date": "d", )";
  for (const auto& [text, names] : {
           Case{"not json", "not a JSON document"},
           Case{R"({"format": "vmlab-operations", "version": 1})", "not a vmlab-scorecard file"},
           Case{R"({"format": "vmlab-scorecard", "version": 2})", "version"},
           Case{head + R"("techniques": 3})", "techniques: should be an array"},
           Case{head + R"("techniques": [{"technique": "hvm"}]})", "techniques[0].missing"},
           Case{head + R"("techniques": [{"technique": "hvm", "missing": "",
                "equivalence_missing": "", "probes": [{"name": "sgdt"}]}]})",
                "techniques[0].probes[0].value: is missing"},
           Case{head + R"("techniques": [{"technique": "hvm", "missing": "",
                "equivalence_missing": "", "probes": [], "workloads": [],
                "efficiency_missing": "", "census": [{"workload": "w", "kernel_steps": -4}]}]})",
                "techniques[0].census[0].kernel_steps: should be a whole number"},
       }) {
    auto parsed = parse_scorecard_json(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_TRUE(contains(parsed.error().message, names)) << parsed.error().message;
  }
  auto unreadable = read_scorecard_file("/nonexistent-vmlab-directory/s.json");
  ASSERT_FALSE(unreadable.ok());
  EXPECT_TRUE(contains(unreadable.error().message, "cannot open scorecard"));
}

}  // namespace
}  // namespace vmlab::measure
