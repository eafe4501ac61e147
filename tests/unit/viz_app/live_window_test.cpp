// A live run from the window, with the real vmlab: Run > Live run's
// controller starts a guest, its events reach the document and the views
// while it runs, Stop ends it cleanly, and the dialog offers what vmlab
// lists and turns a choice into vmlab's options.
#include <gtest/gtest.h>

#include <QSettings>
#include <QStatusBar>

#include "../../support/kvm_available.hpp"
#include "../../support/scratch_files.hpp"
#include "../viz_models/qt_test_support.hpp"
#include "vmlab/viz/app/live_run_dialog.hpp"
#include "vmlab/viz/app/main_window.hpp"
#include "vmlab/viz/app/reasons_view.hpp"

namespace vmlab::viz {
namespace {

const QString kVmlab = QStringLiteral(VMLAB_CLI_PATH);

class LiveWindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope,
                       QString::fromStdString(m_directory.path().string()));
  }
  vmlab::testing::ScratchDirectory m_directory{"vmlab-viz-live-"};
};

TEST_F(LiveWindowTest, AGuestStartedFromTheWindowShowsItsEventsAsTheyArrive) {
  VMLAB_REQUIRE_KVM();
  MainWindow window;
  window.show();
  bool ended = false;
  int exit_code = -2;
  QObject::connect(&window, &MainWindow::live_run_finished, &window, [&](int code) {
    ended = true;
    exit_code = code;
  });
  QString failure;
  QObject::connect(&window, &MainWindow::live_run_failed, &window,
                   [&](const QString& message) { failure = message; });
  LiveRunOptions options;
  options.cpu = QStringLiteral("full");
  options.workload = QStringLiteral("syscalls");
  options.count = 10'000'000;  // far more than the test waits for
  window.start_live_run(kVmlab, options);

  // Events arrive while the guest runs, and keep arriving.
  ASSERT_TRUE(testing::wait_until(
      [&] { return window.document().trace() != nullptr || !failure.isEmpty(); }, 30'000));
  ASSERT_TRUE(failure.isEmpty()) << failure.toStdString();
  const std::size_t first = window.document().trace()->events().size();
  ASSERT_TRUE(testing::wait_until(
      [&] { return window.document().trace()->events().size() > first; }, 30'000));
  EXPECT_FALSE(ended) << "the guest is still running";
  EXPECT_TRUE(window.statusBar()->currentMessage().startsWith("live: cpu=full workload=syscalls"))
      << window.statusBar()->currentMessage().toStdString();
  // The counters grow with it: the reasons chart counts system calls.
  const auto* trace = window.document().trace();
  EXPECT_EQ(trace->info().run_description, "cpu=full workload=syscalls n=10000000");
  std::uint64_t system_calls = 0;
  for (const auto& count : window.document().aggregates().counts) {
    if (count.reason == EventReason::SystemCall) system_calls = count.count;
  }
  EXPECT_GT(system_calls, 0u);
  // tools/render-screenshots asks for the README's picture of a live run.
  if (const QString pictures = qEnvironmentVariable("VMLAB_VIZ_SCREENSHOT_DIR");
      !pictures.isEmpty()) {
    window.resize(1500, 950);
    testing::wait_until([] { return false; }, 1500);  // a few more snapshots, drawn
    EXPECT_TRUE(window.grab().save(pictures + QStringLiteral("/vmlab-viz-live.png")));
  }

  window.stop_live_run();
  ASSERT_TRUE(testing::wait_until([&] { return ended; }, 30'000));
  EXPECT_EQ(exit_code, 130);
  EXPECT_EQ(window.document().trace()->events().size(), window.live_run().events())
      << "the window shows the whole run once it has ended";
  EXPECT_TRUE(window.statusBar()->currentMessage().startsWith("Live run ended: stopped on request"))
      << window.statusBar()->currentMessage().toStdString();
}

TEST_F(LiveWindowTest, TheDialogOffersWhatVmlabListsAndGivesItsOptions) {
  auto choices = query_run_choices(kVmlab);
  ASSERT_TRUE(choices) << choices.error().message;
  LiveRunDialog dialog(kVmlab, *choices);
  // Its defaults: system calls under full, with the workload's own N.
  const LiveRunOptions defaults = dialog.options();
  EXPECT_EQ(defaults.cpu, "full");
  EXPECT_EQ(defaults.workload, "syscalls");
  EXPECT_EQ(defaults.count, 1000u);
  EXPECT_TRUE(defaults.disk_path.isEmpty());

  LiveRunOptions wanted;
  wanted.cpu = QStringLiteral("hvm");
  wanted.workload = QStringLiteral("disk-read");
  wanted.count = 32;
  wanted.umip = true;  // not for hvm: the dialog turns it off
  wanted.disk_model = QStringLiteral("ata");
  wanted.disk_path = QStringLiteral("/tmp/d.img");
  wanted.timeout_seconds = 30;
  dialog.choose(wanted);
  const LiveRunOptions chosen = dialog.options();
  EXPECT_EQ(chosen.arguments(),
            (QStringList{"run", "--cpu", "hvm", "--workload", "disk-read", "-n", "32", "--disk",
                         "/tmp/d.img", "--disk-model", "ata", "--timeout", "30"}));
}

}  // namespace
}  // namespace vmlab::viz
