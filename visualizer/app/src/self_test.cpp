#include "vmlab/viz/app/self_test.hpp"

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QGuiApplication>
#include <QScreen>
#include <QWheelEvent>
#include <QWindow>
#include <cstdarg>
#include <cstdio>

#include "vmlab/viz/app/command_line.hpp"
#include "vmlab/viz/app/main_window.hpp"
#include "vmlab/viz/app/output_file.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

constexpr int kPatience = 30000;  // ms for each step

bool wait_for(const std::function<bool()>& done) {
  QElapsedTimer timer;
  timer.start();
  while (!done()) {
    if (timer.elapsed() > kPatience) return false;
    QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
  }
  return true;
}

// Events keep coming for a while (layout, exposure, repaints): let them.
void settle(int milliseconds) {
  QElapsedTimer timer;
  timer.start();
  while (timer.elapsed() < milliseconds)
    QCoreApplication::processEvents(QEventLoop::AllEvents, 10);
}

// Each line out at once: a crash must not take the ones before it along.
__attribute__((format(printf, 1, 2))) void say(const char* format, ...) {
  std::va_list arguments;
  va_start(arguments, format);
  std::vprintf(format, arguments);
  va_end(arguments);
  std::fflush(stdout);
}

int fail(const char* what) {
  std::fprintf(stderr, "vmlab-viz self-test: %s\n", what);
  return viz_exit::kSoftware;
}

}  // namespace

int run_self_test(const QString& trace, const QString& screenshot) {
  say("self-test: platform %s\n", qPrintable(QGuiApplication::platformName()));
  MainWindow window;
  window.resize(1400, 900);
  window.show();
  if (!wait_for(
          [&] { return window.windowHandle() != nullptr && window.windowHandle()->isExposed(); })) {
    return fail("the window was never shown");
  }
  bool opened = false;
  QString failure;
  QObject::connect(&window, &MainWindow::trace_opened, [&] { opened = true; });
  QObject::connect(&window, &MainWindow::open_failed, [&](const QString& why) { failure = why; });
  window.open_trace(trace);
  if (!wait_for([&] { return opened || !failure.isEmpty(); }))
    return fail("the trace never loaded");
  if (!opened) return fail(qPrintable(QStringLiteral("the trace did not load: ") + failure));
  say("self-test: loaded %zu events\n", window.document().trace()->events().size());

  // Three notches of the wheel at the middle of the timeline, as a mouse sends them.
  TimelineCanvas& canvas = window.timeline().canvas();
  const TimeRange before = canvas.view_range();
  const QPointF middle(canvas.width() / 2.0, canvas.height() / 2.0);
  for (int notch = 0; notch < 3; ++notch) {
    QWheelEvent wheel(middle, canvas.mapToGlobal(middle), QPoint(), QPoint(0, 120), Qt::NoButton,
                      Qt::NoModifier, Qt::NoScrollPhase, false);
    QCoreApplication::sendEvent(&canvas, &wheel);
  }
  const TimeRange after = canvas.view_range();
  say("self-test: zoomed from %s to %s\n", qPrintable(duration_text(before.length())),
      qPrintable(duration_text(after.length())));
  if (after.length() * 2 >= before.length()) return fail("the wheel did not zoom the timeline in");
  settle(500);

  // The window as the display server has it, frame and all.
  QScreen* screen = window.screen();
  if (screen == nullptr) return fail("the window is on no screen");
  QImage image = screen->grabWindow(window.winId()).toImage();
  if (image.isNull()) return fail("the screenshot is empty");
  image.setText(QStringLiteral("Software"), to_qstring(kSoftwareName));
  const Status saved =
      write_output(QFile::encodeName(screenshot).toStdString(),
                   [&](const QString& temporary) { return image.save(temporary, "PNG"); });
  if (!saved) return fail(saved.error().message.c_str());
  say("self-test: screenshot %s, %dx%d\n", qPrintable(screenshot), image.width(), image.height());
  window.close();
  return 0;
}

}  // namespace vmlab::viz
