// GoogleTest's main with a QApplication around the tests: the views are
// widgets, drawn on the offscreen platform (set by ctest). Listing the
// tests needs no application, so the build's test discovery runs without
// a platform.
#include <gtest/gtest.h>

#include <QApplication>

namespace {

// The offscreen platform cannot pass size hints to a window manager it
// does not have; it says so for every window. Nothing else is hidden.
QtMessageHandler g_default_handler = nullptr;
void filter_messages(QtMsgType type, const QMessageLogContext& context, const QString& message) {
  if (message.contains(QLatin1String("does not support propagateSizeHints"))) return;
  g_default_handler(type, context, message);
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (GTEST_FLAG_GET(list_tests)) return RUN_ALL_TESTS();
  g_default_handler = qInstallMessageHandler(filter_messages);
  QApplication application(argc, argv);
  return RUN_ALL_TESTS();
}
