// The live view's controller with the real vmlab: a guest started from it
// streams its events while it runs, the snapshots grow, Stop ends the guest
// cleanly and the last snapshot holds the whole run; a run vmlab refuses
// fails with vmlab's words. And the choices the run dialog offers, as
// `vmlab info --choices` lists them.
#include "vmlab/viz/models/live_run.hpp"

#include <gtest/gtest.h>

#include <QSignalSpy>
#include <QTest>

#include "../../support/kvm_available.hpp"
#include "vmlab/viz/models/vmlab_program.hpp"

namespace vmlab::viz {
namespace {

const QString kVmlab = QStringLiteral(VMLAB_CLI_PATH);

TEST(RunChoices, AreWhatVmlabInfoChoicesLists) {
  auto choices = query_run_choices(kVmlab);
  ASSERT_TRUE(choices) << choices.error().message;
  std::vector<QString> cpus;
  for (const auto& cpu : choices->cpus)
    cpus.push_back(cpu.value);
  EXPECT_EQ(cpus, (std::vector<QString>{"hvm", "full", "bt", "para"}));
  const auto syscalls = std::find_if(choices->workloads.begin(), choices->workloads.end(),
                                     [](const auto& each) { return each.name == "syscalls"; });
  ASSERT_NE(syscalls, choices->workloads.end());
  EXPECT_EQ(syscalls->default_count, 1000u);
  EXPECT_FALSE(choices->disk_models.empty());
  // Compare's default set, at its own Ns.
  ASSERT_FALSE(choices->compare_workloads.empty());
  EXPECT_EQ(choices->compare_workloads.front(), (std::pair<QString, std::uint64_t>{"hello", 1}));
  EXPECT_NE(std::find(choices->compare_workloads.begin(), choices->compare_workloads.end(),
                      std::pair<QString, std::uint64_t>{"syscalls", 5000}),
            choices->compare_workloads.end());
}

TEST(RunChoices, AMalformedAnswerIsRefusedByItsLine) {
  EXPECT_FALSE(parse_run_choices(QStringLiteral("usage: vmlab ...\n")));
  auto bad = parse_run_choices(
      QStringLiteral("# vmlab-choices 1\n--cpu\thvm\thardware\n--workload\tsyscalls\tmany\tx\n"));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("line 3"), std::string::npos) << bad.error().message;
  auto bad_count = parse_run_choices(
      QStringLiteral("# vmlab-choices 1\n--cpu\thvm\thardware\n--workload\thello\t1\tx\n"
                     "--compare-workload\thello\tone\n"));
  ASSERT_FALSE(bad_count);
  EXPECT_NE(bad_count.error().message.find("line 4"), std::string::npos);
}

TEST(LiveRunOptions, AreVmlabRunsArguments) {
  LiveRunOptions options;
  options.cpu = QStringLiteral("bt");
  options.workload = QStringLiteral("disk-read");
  options.count = 64;
  options.umip = true;
  options.disk_path = QStringLiteral("/tmp/d.img");
  options.disk_model = QStringLiteral("ata");
  options.timeout_seconds = 20;
  EXPECT_EQ(options.arguments(),
            (QStringList{"run", "--cpu", "bt", "--workload", "disk-read", "-n", "64", "--umip",
                         "--disk", "/tmp/d.img", "--disk-model", "ata", "--timeout", "20"}));
  EXPECT_EQ(options.description(), QStringLiteral("cpu=bt workload=disk-read n=64 disk=ata"));
}

TEST(LiveRun, ShowsAGuestsEventsWhileItRunsAndStopsItCleanly) {
  VMLAB_REQUIRE_KVM();
  LiveRun run;
  QSignalSpy snapshots(&run, &LiveRun::snapshot);
  QSignalSpy finished(&run, &LiveRun::finished);
  QSignalSpy failed(&run, &LiveRun::failed);
  LiveRunOptions options;
  options.cpu = QStringLiteral("full");
  options.workload = QStringLiteral("timer");
  options.count = 100000;  // 1000 s of ticks: it runs until stopped
  ASSERT_TRUE(run.start(kVmlab, options));

  // Two snapshots while the guest runs, the second with more events.
  QTRY_VERIFY_WITH_TIMEOUT(snapshots.size() >= 2, 30'000);
  ASSERT_TRUE(failed.isEmpty()) << failed.first().first().toString().toStdString();
  EXPECT_TRUE(run.running());
  EXPECT_TRUE(finished.isEmpty()) << "the guest is still running";
  const auto first = snapshots.at(0).at(0).value<std::shared_ptr<const TraceModel>>();
  const auto second = snapshots.at(1).at(0).value<std::shared_ptr<const TraceModel>>();
  ASSERT_TRUE(first && second);
  EXPECT_GT(first->events().size(), 0u);
  EXPECT_GT(second->events().size(), first->events().size()) << "the run grows as it goes";
  EXPECT_EQ(second->info().run_description, "cpu=full workload=timer n=100000");

  run.stop();
  QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 30'000);
  EXPECT_EQ(finished.first().at(0).toInt(), 130) << run.errors().toStdString();
  EXPECT_TRUE(finished.first().at(1).toString().startsWith("stopped on request after"))
      << finished.first().at(1).toString().toStdString();
  EXPECT_FALSE(run.running());
  const auto last = snapshots.last().at(0).value<std::shared_ptr<const TraceModel>>();
  EXPECT_EQ(last->events().size(), run.events()) << "the last snapshot holds every event";
  EXPECT_FALSE(last->truncated()) << last->truncation_message();
  EXPECT_TRUE(run.summary().contains("guest status:  stopped on request"))
      << run.summary().toStdString();

  // What was read is a trace file of the whole run.
  auto saved = TraceModel::load_file(run.trace_path().toStdString());
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_EQ(saved->events().size(), run.events());
}

TEST(LiveRun, ShowsNoMoreThanItsBoundButKeepsEveryEventInItsTrace) {
  VMLAB_REQUIRE_KVM();
  LiveRun run;
  run.set_maximum_events(300);
  QSignalSpy finished(&run, &LiveRun::finished);
  QSignalSpy failed(&run, &LiveRun::failed);
  LiveRunOptions options;
  options.cpu = QStringLiteral("full");
  options.workload = QStringLiteral("syscalls");
  options.count = 2000;  // about 8,000 events
  ASSERT_TRUE(run.start(kVmlab, options));
  QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty() || !failed.isEmpty(), 60'000);
  ASSERT_TRUE(failed.isEmpty()) << failed.first().first().toString().toStdString();
  EXPECT_EQ(finished.first().at(0).toInt(), 0) << run.errors().toStdString();
  EXPECT_EQ(run.events(), 300u);
  EXPECT_GT(run.unshown(), 1000u);
  auto saved = TraceModel::load_file(run.trace_path().toStdString());
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_EQ(saved->events().size(), run.events() + run.unshown());
  EXPECT_FALSE(saved->truncated());
}

TEST(LiveRun, ARunVmlabRefusesFailsWithItsMessage) {
  LiveRun run;
  QSignalSpy failed(&run, &LiveRun::failed);
  QSignalSpy finished(&run, &LiveRun::finished);
  LiveRunOptions options;
  options.workload = QStringLiteral("no-such-workload");
  ASSERT_TRUE(run.start(kVmlab, options));
  QTRY_VERIFY_WITH_TIMEOUT(!failed.isEmpty(), 30'000);
  EXPECT_TRUE(failed.first().first().toString().contains("no-such-workload"))
      << failed.first().first().toString().toStdString();
  EXPECT_TRUE(finished.isEmpty());
  EXPECT_FALSE(run.running());
}

TEST(LiveRun, AProgramThatIsNotThereFails) {
  LiveRun run;
  QSignalSpy failed(&run, &LiveRun::failed);
  ASSERT_TRUE(run.start(QStringLiteral("/nonexistent/vmlab"), LiveRunOptions{}));
  QTRY_VERIFY_WITH_TIMEOUT(!failed.isEmpty(), 10'000);
  EXPECT_TRUE(failed.first().first().toString().contains("/nonexistent/vmlab"));
}

}  // namespace
}  // namespace vmlab::viz
