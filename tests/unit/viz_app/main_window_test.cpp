// The window off screen: a trace opened through the worker thread reaches
// every view, a selection narrows them all, a bad trace opens a message
// naming its line, and the layout outlives the window.
#include "vmlab/viz/app/main_window.hpp"

#include <gtest/gtest.h>

#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QMessageBox>
#include <QMimeData>
#include <QSettings>
#include <QTemporaryDir>
#include <QUrl>

#include "../../support/scratch_files.hpp"
#include "../viz_models/qt_test_support.hpp"
#include "view_test_support.hpp"
#include "vmlab/viz/app/reasons_view.hpp"
#include "vmlab/viz/app/table_views.hpp"

namespace vmlab::viz {
namespace {

using vmlab::testing::ScratchDirectory;
using vmlab::testing::write_file;

class MainWindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The window's settings go to the scratch directory, not the user's.
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope,
                       QString::fromStdString(m_directory.path().string()));
    write_file(m_directory / "sample.trace", testing::kSampleTrace);
  }
  QString path(const std::string& name) const {
    return QString::fromStdString((m_directory / name).string());
  }
  // Opens `name` and waits for the window to say how it went.
  bool open(MainWindow& window, const std::string& name, QString* failure = nullptr) {
    bool opened = false;
    bool failed = false;
    QObject context;
    QObject::connect(&window, &MainWindow::trace_opened, &context, [&] { opened = true; });
    QObject::connect(&window, &MainWindow::open_failed, &context, [&](const QString& why) {
      failed = true;
      if (failure != nullptr) *failure = why;
    });
    window.open_trace(path(name));
    EXPECT_TRUE(testing::wait_until([&] { return opened || failed; }));
    return opened;
  }

  ScratchDirectory m_directory{"vmlab-viz-window-"};
};

TEST_F(MainWindowTest, ATraceReachesEveryViewAndASelectionNarrowsThem) {
  MainWindow window;
  window.show();
  ASSERT_TRUE(open(window, "sample.trace"));
  ASSERT_NE(window.document().trace(), nullptr);
  EXPECT_EQ(window.document().trace()->events().size(), 10u);
  EXPECT_TRUE(window.windowTitle().startsWith(QStringLiteral("sample.trace")));
  for (const ViewKind& kind : view_kinds())
    EXPECT_NE(window.view(kind.name), nullptr) << kind.name.toStdString();

  auto& reasons = static_cast<ReasonsView&>(*window.view(QStringLiteral("reasons")));
  auto& events = static_cast<EventsView&>(*window.view(QStringLiteral("events")));
  EXPECT_EQ(reasons.count_categories().size(), 6);
  EXPECT_EQ(events.model().rowCount(), 10);
  EXPECT_EQ(window.timeline().canvas().view_range().end_ns, 9000u);

  // The timeline's selection (the document's range) narrows the others.
  window.document().set_range({3000, 4300});
  EXPECT_EQ(reasons.count_categories().size(), 2);
  EXPECT_EQ(events.model().rowCount(), 4);
  // A search lists its matches; activating one shows it in the timeline.
  window.timeline().find(QStringLiteral("iretq"));
  EXPECT_EQ(events.model().rowCount(), 1);
  EXPECT_EQ(events.model().event_at(0), 5u);
  window.document().clear_range();
  EXPECT_EQ(events.model().rowCount(), 10) << "a new range lists its events again";
}

TEST_F(MainWindowTest, ATraceDroppedOnTheWindowOpens) {
  MainWindow window;
  window.show();
  bool opened = false;
  QObject::connect(&window, &MainWindow::trace_opened, [&] { opened = true; });
  QMimeData data;
  data.setUrls({QUrl::fromLocalFile(path("sample.trace"))});
  const QPoint middle = window.rect().center();
  QDragEnterEvent enter(middle, Qt::CopyAction, &data, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(&window, &enter);
  EXPECT_TRUE(enter.isAccepted()) << "a local file is welcome";
  QDropEvent drop(QPointF(middle), Qt::CopyAction, &data, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(&window, &drop);
  ASSERT_TRUE(testing::wait_until([&] { return opened; }));
  EXPECT_EQ(window.document().trace()->events().size(), 10u);
  EXPECT_EQ(window.document().path(), path("sample.trace"));
  // Not a file: refused at the door.
  QMimeData text;
  text.setText(QStringLiteral("hello"));
  QDragEnterEvent refused(middle, Qt::CopyAction, &text, Qt::LeftButton, Qt::NoModifier);
  refused.setAccepted(false);
  QCoreApplication::sendEvent(&window, &refused);
  EXPECT_FALSE(refused.isAccepted());
}

TEST_F(MainWindowTest, ABadTraceOpensAMessageNamingItsLine) {
  std::string text = testing::kSampleTrace;
  text.replace(text.find("6000\t400"), 8, "6000\tfour");  // line 13: a duration not a number
  write_file(m_directory / "bad.trace", text);
  MainWindow window;
  window.show();
  QString failure;
  EXPECT_FALSE(open(window, "bad.trace", &failure));
  EXPECT_TRUE(failure.contains(QStringLiteral("line 13"))) << failure.toStdString();
  auto* box = window.findChild<QMessageBox*>();
  ASSERT_NE(box, nullptr) << "the error is shown, not only logged";
  EXPECT_TRUE(box->text().contains(QStringLiteral("line 13"))) << box->text().toStdString();
  EXPECT_EQ(window.document().trace(), nullptr) << "nothing half-loaded";
  box->close();
  // The window is still usable: a good trace opens after it.
  EXPECT_TRUE(open(window, "sample.trace"));
  QString missing;
  EXPECT_FALSE(open(window, "absent.trace", &missing));
  EXPECT_TRUE(missing.contains(QStringLiteral("absent.trace")));
}

TEST_F(MainWindowTest, TheLayoutOutlivesTheWindow) {
  QSize saved;
  {
    MainWindow window;
    window.show();
    window.resize(1200, 800);
    QCoreApplication::processEvents();
    saved = window.size();  // as large as the docks let it be
    EXPECT_NE(saved, QSize(1500, 950)) << "not the first run's size";
    auto* dock = window.findChild<QDockWidget*>(QStringLiteral("reasons-dock"));
    ASSERT_NE(dock, nullptr);
    dock->hide();
    window.close();
  }
  MainWindow again;
  again.show();
  EXPECT_EQ(again.size(), saved);
  auto* dock = again.findChild<QDockWidget*>(QStringLiteral("reasons-dock"));
  ASSERT_NE(dock, nullptr);
  EXPECT_FALSE(dock->isVisible()) << "the hidden dock stays hidden";
}

}  // namespace
}  // namespace vmlab::viz
