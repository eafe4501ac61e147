// `vmlab scorecard` measured for real, under hvm and full on a few
// workloads: every part ran, what the techniques are shows in the figures,
// and the evidence scores the same after a trip through its JSON.
#include <gtest/gtest.h>

#include <sstream>

#include "../support/kvm_available.hpp"
#include "vmlab/measure/scorecard.hpp"
#include "vmlab/reference.hpp"

namespace vmlab {
namespace {

using measure::Score;

TEST(Scorecard, MeasuresHvmAndFullAgainstTheThreeRequirements) {
  VMLAB_REQUIRE_KVM();
  measure::ScorecardOptions options;
  options.techniques = {"hvm", "full"};
  options.workloads = {{"hello", 1}, {"syscalls", 50}, {"hypercall", 10}};
  std::size_t last_done = 0, last_total = 0;
  options.progress = [&](std::size_t done, std::size_t total, const std::string&) {
    EXPECT_GE(done, last_done) << "progress only goes forward";
    last_done = done;
    last_total = total;
  };
  auto evidence = measure::measure_scorecard(options);
  ASSERT_TRUE(evidence.ok()) << evidence.error().message;
  EXPECT_EQ(last_done, last_total) << "the end is reported";
  EXPECT_FALSE(evidence->platform_line.empty());

  const measure::Scorecard card = measure::score(*evidence);
  ASSERT_EQ(card.rows.size(), 2u);
  const measure::TechniqueScore& hvm = card.rows[0];
  const measure::TechniqueScore& full = card.rows[1];
  EXPECT_EQ(hvm.technique, "hvm");
  EXPECT_EQ(full.technique, "full");

  if (reference_machine_available()) {
    ASSERT_EQ(hvm.equivalence.kind, Score::Kind::Measured) << hvm.equivalence.explanation;
    // hvm's guest sees the machine; full's deprivileged kernel sees the x86
    // holes (pushf, sgdt, mov from cs: on every host).
    EXPECT_EQ(hvm.equivalence.satisfied, hvm.equivalence.total) << hvm.equivalence.explanation;
    EXPECT_LT(full.equivalence.satisfied, full.equivalence.total);
    EXPECT_TRUE(full.equivalence.explanation.find("sgdt") != std::string::npos)
        << full.equivalence.explanation;
    // Two result lines compared; hypercall runs only under para.
    EXPECT_NE(hvm.equivalence.explanation.find("2/2 result lines"), std::string::npos)
        << hvm.equivalence.explanation;
  } else {
    EXPECT_EQ(hvm.equivalence.kind, Score::Kind::Missing);
    EXPECT_NE(hvm.equivalence.explanation.find("QEMU"), std::string::npos);
  }

  // full runs nearly every guest instruction directly; hvm on kvm_pvm leaves
  // the kernel's to KVM's emulator, elsewhere only I/O.
  ASSERT_EQ(full.efficiency.kind, Score::Kind::Measured) << full.efficiency.explanation;
  EXPECT_GT(full.efficiency.satisfied * 10, full.efficiency.total * 9)
      << full.efficiency.explanation;
  ASSERT_EQ(hvm.efficiency.kind, Score::Kind::Measured) << hvm.efficiency.explanation;
  if (evidence->backend == "kvm_pvm") {
    EXPECT_LT(hvm.efficiency.satisfied * 2, hvm.efficiency.total) << hvm.efficiency.explanation;
  } else {
    EXPECT_GT(hvm.efficiency.satisfied * 10, hvm.efficiency.total * 9)
        << hvm.efficiency.explanation;
  }

  for (const auto* row : {&hvm, &full}) {
    ASSERT_EQ(row->safety.kind, Score::Kind::Measured) << row->safety.explanation;
    EXPECT_EQ(row->safety.satisfied, row->safety.total) << row->safety.explanation;
    EXPECT_GT(row->safety.total, 3u) << "the hostile attempts and the DMA attacks";
  }

  std::ostringstream json;
  measure::write_scorecard_json(*evidence, json);
  auto read = measure::parse_scorecard_json(json.str());
  ASSERT_TRUE(read.ok()) << read.error().message;
  std::ostringstream again;
  measure::write_scorecard_json(*read, again);
  EXPECT_EQ(again.str(), json.str());
}

}  // namespace
}  // namespace vmlab
