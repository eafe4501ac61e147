// GoogleTest's main with a QGuiApplication around the tests (models give
// fonts and colours; the platform is the offscreen one, set by ctest).
// Listing the tests needs no application, so the build's test discovery
// runs without a platform.
#include <gtest/gtest.h>

#include <QGuiApplication>

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (GTEST_FLAG_GET(list_tests)) return RUN_ALL_TESTS();
  QGuiApplication application(argc, argv);
  return RUN_ALL_TESTS();
}
