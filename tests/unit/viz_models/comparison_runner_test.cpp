// `vmlab compare` driven as the window drives it: its command line and
// progress lines, a real comparison run to its results, one cancelled
// mid-run leaving no file behind, and a failing vmlab's own words.
#include "vmlab/viz/models/comparison_runner.hpp"

#include <gtest/gtest.h>

#include "../../support/kvm_available.hpp"
#include "../../support/scratch_files.hpp"
#include "qt_test_support.hpp"
#include "vmlab/viz/comparison.hpp"

namespace vmlab::viz {
namespace {

using vmlab::testing::ScratchDirectory;

QString q(const std::filesystem::path& path) {
  return QString::fromStdString(path.string());
}

TEST(ComparisonRunner, TheCommandLineAndTheProgressLine) {
  ComparisonRequest request;
  request.workloads = {"syscalls:100", "pio"};
  request.cpus = {"hvm", "full"};
  request.irqchips = {"vmm"};
  request.memory = "32M";
  EXPECT_EQ(compare_arguments(request, "/tmp/r.json"),
            (QStringList{"compare", "--workloads", "syscalls:100,pio", "--cpu", "hvm,full",
                         "--irqchip", "vmm", "--mem", "32M", "--json", "/tmp/r.json"}));
  EXPECT_EQ(compare_arguments({}, "r.json"), (QStringList{"compare", "--json", "r.json"}));

  const auto step = parse_progress_line("[3/16] bt: syscalls n=500 ok (0.13 s)");
  ASSERT_TRUE(step.has_value());
  EXPECT_EQ(step->done, 3);
  EXPECT_EQ(step->total, 16);
  EXPECT_TRUE(parse_progress_line("[2/2] para: timer n=20 failed: timed out (60.00 s)"));
  EXPECT_FALSE(parse_progress_line("vmlab: --cpu: 'x' is not one of hvm, full"));
  EXPECT_FALSE(parse_progress_line("[17/16] more done than there are"));
  EXPECT_FALSE(parse_progress_line("[1/0] none in all"));
}

// Runs `runner` until it ends; what it reported.
struct RunOutcome {
  std::vector<std::pair<int, int>> progress;
  QString finished;
  QString failure;
  bool cancelled = false;
  bool ended() const { return !finished.isEmpty() || !failure.isEmpty() || cancelled; }
};

void follow(ComparisonRunner& runner, RunOutcome& outcome, QObject& context) {
  QObject::connect(&runner, &ComparisonRunner::progress, &context,
                   [&outcome](int done, int total) { outcome.progress.emplace_back(done, total); });
  QObject::connect(&runner, &ComparisonRunner::finished, &context,
                   [&outcome](const QString& path) { outcome.finished = path; });
  QObject::connect(&runner, &ComparisonRunner::failed, &context,
                   [&outcome](const QString& message) { outcome.failure = message; });
  QObject::connect(&runner, &ComparisonRunner::cancelled, &context,
                   [&outcome] { outcome.cancelled = true; });
}

TEST(ComparisonRunner, RunsARealComparisonToItsResults) {
  VMLAB_REQUIRE_KVM();
  ScratchDirectory directory("vmlab-viz-runner-");
  ComparisonRunner runner;
  RunOutcome outcome;
  QObject context;
  follow(runner, outcome, context);
  ComparisonRequest request;
  request.workloads = {"syscalls:100"};
  request.cpus = {"hvm", "full"};
  request.irqchips = {"vmm"};
  const QString json = q(directory / "results.json");
  ASSERT_TRUE(runner.start(QStringLiteral(VMLAB_CLI_PATH), request, json));
  EXPECT_TRUE(runner.running());
  EXPECT_FALSE(runner.start(QStringLiteral(VMLAB_CLI_PATH), request, json)) << "one run at a time";
  ASSERT_TRUE(testing::wait_until([&] { return outcome.ended(); }, 120000));
  ASSERT_TRUE(outcome.failure.isEmpty()) << outcome.failure.toStdString();
  EXPECT_FALSE(runner.running());
  EXPECT_EQ(outcome.finished, json);
  EXPECT_EQ(outcome.progress, (std::vector<std::pair<int, int>>{{1, 2}, {2, 2}}));

  auto results = read_comparison_file(json.toStdString());
  ASSERT_TRUE(results.ok()) << results.error().message;
  ASSERT_EQ(results->rows.size(), 2u);
  EXPECT_EQ(results->rows[0].cpu, "hvm");
  EXPECT_EQ(results->rows[1].cpu, "full");
  for (const ComparisonRow& row : results->rows) {
    EXPECT_TRUE(row.ok) << row.cpu << ": " << row.failure;
    EXPECT_EQ(row.workload, "syscalls");
    EXPECT_EQ(row.n, 100u);
  }
  EXPECT_EQ(results->rows[0].relative_to_hvm, std::optional<double>(1.0));
  EXPECT_GT(results->rows[1].monitor_traps_per_op, 1.0) << "full traps each system call";
  EXPECT_NE(results->platform_line.find("platform: "), std::string::npos);
}

TEST(ComparisonRunner, ACancelledRunLeavesNoFileBehind) {
  VMLAB_REQUIRE_KVM();
  ScratchDirectory directory("vmlab-viz-cancel-");
  ComparisonRunner runner;
  RunOutcome outcome;
  QObject context;
  follow(runner, outcome, context);
  qint64 vmlab_process = 0;
  QObject::connect(&runner, &ComparisonRunner::progress, &context,
                   [&] { vmlab_process = runner.process_id(); });
  // A disk model, so vmlab has its scratch image too; the timer's run is
  // long (3 s) enough to be cancelled in.
  ComparisonRequest request;
  request.workloads = {"disk-write:64", "timer:300"};
  request.cpus = {"hvm"};
  request.irqchips = {"vmm"};
  request.disk_models = {"virtio"};
  ASSERT_TRUE(runner.start(QStringLiteral(VMLAB_CLI_PATH), request, q(directory / "results.json")));
  ASSERT_TRUE(
      testing::wait_until([&] { return !outcome.progress.empty() || outcome.ended(); }, 60000));
  ASSERT_FALSE(outcome.ended()) << outcome.failure.toStdString();
  ASSERT_NE(vmlab_process, 0);
  const auto scratch_image = std::filesystem::temp_directory_path() /
                             ("vmlab-compare-" + std::to_string(vmlab_process) + ".img");
  EXPECT_TRUE(std::filesystem::exists(scratch_image)) << "the check below would prove nothing";
  // vmlab's temporary results file, beside the target until the end.
  EXPECT_EQ(directory.entries().size(), 1u);
  runner.cancel();
  ASSERT_TRUE(testing::wait_until([&] { return outcome.ended(); }, 20000));
  EXPECT_TRUE(outcome.cancelled) << outcome.failure.toStdString();
  EXPECT_TRUE(outcome.finished.isEmpty());
  EXPECT_EQ(directory.entries(), std::vector<std::string>{}) << "no results, no temporary file";
  EXPECT_FALSE(std::filesystem::exists(scratch_image)) << scratch_image;
}

TEST(ComparisonRunner, AFailingVmlabSaysWhy) {
  ScratchDirectory directory("vmlab-viz-failing-");
  ComparisonRunner runner;
  RunOutcome outcome;
  QObject context;
  follow(runner, outcome, context);
  ComparisonRequest request;
  request.workloads = {"syscalls:10"};
  request.timeout_seconds = "-5";  // refused before any run, with or without KVM
  ASSERT_TRUE(runner.start(QStringLiteral(VMLAB_CLI_PATH), request, q(directory / "results.json")));
  ASSERT_TRUE(testing::wait_until([&] { return outcome.ended(); }, 30000));
  EXPECT_TRUE(outcome.failure.startsWith(QStringLiteral("vmlab compare failed (exit status 64)")))
      << outcome.failure.toStdString();
  EXPECT_TRUE(outcome.failure.contains(QStringLiteral("--timeout")))
      << outcome.failure.toStdString();
  EXPECT_EQ(directory.entries(), std::vector<std::string>{});

  RunOutcome missing;
  QObject other;
  follow(runner, missing, other);
  ASSERT_TRUE(
      runner.start(QStringLiteral("/nonexistent/vmlab"), request, q(directory / "results.json")));
  ASSERT_TRUE(testing::wait_until([&] { return missing.ended(); }, 30000));
  EXPECT_TRUE(missing.failure.startsWith(QStringLiteral("cannot start /nonexistent/vmlab")))
      << missing.failure.toStdString();
  EXPECT_FALSE(runner.running());
}

}  // namespace
}  // namespace vmlab::viz
