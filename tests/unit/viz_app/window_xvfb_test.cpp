// The real window on a real X server: xvfb-run starts Xvfb, vmlab-viz
// opens the trace through its loader, zooms with the wheel and takes a
// screenshot of itself as the server shows it (vmlab-viz
// --self-test-screenshot), and the test reads the screenshot back for the
// bands and the connectors. Skipped where xvfb-run is not installed.
#include <gtest/gtest.h>

#include <QImage>
#include <QProcess>
#include <QSet>
#include <QStandardPaths>

#include "../../support/scratch_files.hpp"
#include "../viz_engine/sample_trace.hpp"
#include "vmlab/viz/app/palette.hpp"

namespace vmlab::viz {
namespace {

using vmlab::testing::ScratchDirectory;
using vmlab::testing::write_file;

TEST(Window, OpensZoomsAndTakesAScreenshotUnderXvfb) {
  const QString xvfb_run = QStandardPaths::findExecutable(QStringLiteral("xvfb-run"));
  if (xvfb_run.isEmpty()) GTEST_SKIP() << "xvfb-run is not installed (Debian: xvfb, xauth)";
  ScratchDirectory directory("vmlab-viz-xvfb-");
  write_file(directory / "sample.trace", testing::kSampleTrace);
  const QString screenshot = QString::fromStdString((directory / "window.png").string());

  QProcess process;
  QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
  // The X server's platform, and settings that are not the user's.
  environment.remove(QStringLiteral("QT_QPA_PLATFORM"));
  environment.insert(QStringLiteral("XDG_CONFIG_HOME"),
                     QString::fromStdString((directory / "config").string()));
  // Under the sanitizers, libdbus's one leak (xvfb_lsan.supp) is not ours.
  QString leaks = environment.value(QStringLiteral("LSAN_OPTIONS"));
  if (!leaks.isEmpty()) leaks += QLatin1Char(':');
  environment.insert(QStringLiteral("LSAN_OPTIONS"),
                     leaks + QStringLiteral("suppressions=" VMLAB_XVFB_LSAN_SUPPRESSIONS));
  process.setProcessEnvironment(environment);
  process.start(xvfb_run, {QStringLiteral("-a"), QStringLiteral("-s"),
                           QStringLiteral("-screen 0 1600x1000x24"), QStringLiteral(VMLAB_VIZ_PATH),
                           QStringLiteral("--self-test-screenshot"), screenshot,
                           QString::fromStdString((directory / "sample.trace").string())});
  ASSERT_TRUE(process.waitForFinished(120000)) << "vmlab-viz under Xvfb did not finish";
  const QString out = QString::fromLocal8Bit(process.readAllStandardOutput());
  const QString errors = QString::fromLocal8Bit(process.readAllStandardError());
  ASSERT_EQ(process.exitCode(), 0) << out.toStdString() << errors.toStdString();
  EXPECT_TRUE(out.contains(QStringLiteral("self-test: platform xcb"))) << out.toStdString();
  EXPECT_TRUE(out.contains(QStringLiteral("loaded 10 events"))) << out.toStdString();
  EXPECT_TRUE(out.contains(QStringLiteral("zoomed from"))) << out.toStdString();

  const QImage image(screenshot);
  ASSERT_FALSE(image.isNull());
  EXPECT_GE(image.width(), 1000);
  EXPECT_GE(image.height(), 600);
  // What the screen showed: the five bands and the connectors between them.
  QSet<QRgb> colours;
  for (int y = 0; y < image.height(); ++y) {
    for (int x = 0; x < image.width(); ++x)
      colours.insert(image.pixel(x, y) & 0xffffffu);
  }
  for (const TimelineLane lane :
       {TimelineLane::Vmm, TimelineLane::Monitor, TimelineLane::GuestKernel,
        TimelineLane::GuestUser, TimelineLane::Halted}) {
    EXPECT_TRUE(colours.contains(palette::lane_band(lane).rgb() & 0xffffffu))
        << "no " << lane_name(lane) << " band in the screenshot";
  }
  EXPECT_TRUE(colours.contains(palette::connector().rgb() & 0xffffffu));
  EXPECT_TRUE(colours.contains(palette::count_bars().rgb() & 0xffffffu)) << "the reasons chart";
}

}  // namespace
}  // namespace vmlab::viz
