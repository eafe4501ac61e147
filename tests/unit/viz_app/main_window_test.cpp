// The window off screen: a trace opened through the worker thread reaches
// every view, a selection narrows them all, a bad trace opens a message
// naming its line, a comparison opens by what the file holds (a malformed
// one a message naming its field), and the layout outlives the window.
#include "vmlab/viz/app/main_window.hpp"

#include <gtest/gtest.h>

#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QMessageBox>
#include <QMimeData>
#include <QSettings>
#include <QTableView>
#include <QTemporaryDir>
#include <QUrl>

#include "../../support/kvm_available.hpp"
#include "../../support/scratch_files.hpp"
#include "../viz_models/qt_test_support.hpp"
#include "comparison_sample.hpp"
#include "view_test_support.hpp"
#include "vmlab/viz/app/comparison_view.hpp"
#include "vmlab/viz/app/output_file.hpp"
#include "vmlab/viz/app/reasons_view.hpp"
#include "vmlab/viz/app/table_views.hpp"

namespace vmlab::viz {
namespace {

using vmlab::testing::contents_of;
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
  // Addresses are never cut, whatever rows the columns were sized from.
  auto* table = events.findChild<QTableView*>();
  ASSERT_NE(table, nullptr);
  EXPECT_GE(table->columnWidth(EventsModel::kGuestRip),
            table->fontMetrics().horizontalAdvance(QStringLiteral("0xffffff8000003072")));
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

TEST_F(MainWindowTest, AComparisonOpensByWhatTheFileHolds) {
  // Named like a trace: what it holds decides.
  write_file(m_directory / "results.trace", testing::kSmallComparison);
  MainWindow window;
  window.show();
  bool opened = false;
  QObject::connect(&window, &MainWindow::comparison_opened, [&] { opened = true; });
  window.open_file(path("results.trace"));
  ASSERT_TRUE(opened);
  EXPECT_EQ(window.document().trace(), nullptr) << "not read as a trace";
  ASSERT_TRUE(window.comparison().has_results());
  EXPECT_EQ(window.comparison().results().rows.size(), 6u);
  EXPECT_TRUE(window.windowTitle().startsWith(QStringLiteral("results.trace")));
  auto& view = static_cast<ComparisonView&>(*window.view(QStringLiteral("comparison")));
  EXPECT_EQ(view.workloads(), (QStringList{"syscalls", "pio"}));
  auto* dock = window.findChild<QDockWidget*>(QStringLiteral("comparison-dock"));
  ASSERT_NE(dock, nullptr);
  EXPECT_TRUE(dock->isVisible());
  EXPECT_TRUE(view.isVisible()) << "raised over the tables it shares a place with";

  // A trace, by the same door, is still a trace.
  bool traced = false;
  QObject::connect(&window, &MainWindow::trace_opened, [&] { traced = true; });
  window.open_file(path("sample.trace"));
  ASSERT_TRUE(testing::wait_until([&] { return traced; }));
  EXPECT_EQ(window.document().trace()->events().size(), 10u);
  EXPECT_TRUE(window.comparison().has_results()) << "each has its own document";
}

TEST_F(MainWindowTest, AComparisonDroppedOnTheWindowOpens) {
  write_file(m_directory / "results.json", testing::kSmallComparison);
  MainWindow window;
  window.show();
  bool opened = false;
  QObject::connect(&window, &MainWindow::comparison_opened, [&] { opened = true; });
  QMimeData data;
  data.setUrls({QUrl::fromLocalFile(path("results.json"))});
  const QPoint middle = window.rect().center();
  QDragEnterEvent enter(middle, Qt::CopyAction, &data, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(&window, &enter);
  EXPECT_TRUE(enter.isAccepted());
  QDropEvent drop(QPointF(middle), Qt::CopyAction, &data, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(&window, &drop);
  EXPECT_TRUE(opened);
  EXPECT_EQ(window.comparison().path(), path("results.json"));
}

TEST_F(MainWindowTest, AMalformedComparisonOpensAMessageNamingItsField) {
  write_file(m_directory / "good.json", testing::kSmallComparison);
  std::string bad = testing::kSmallComparison;
  bad.replace(bad.find("\"vmm\": 1.5"), 10, "\"vmm\": \"1.5\"");
  write_file(m_directory / "bad.json", bad);
  write_file(m_directory / "cut.json", std::string(testing::kSmallComparison).substr(0, 200));
  MainWindow window;
  window.show();
  window.open_file(path("good.json"));
  ASSERT_TRUE(window.comparison().has_results());
  QString failure;
  QObject::connect(&window, &MainWindow::open_failed, [&](const QString& why) { failure = why; });
  window.open_file(path("bad.json"));
  EXPECT_TRUE(failure.contains(
      QStringLiteral("bad.json: rows[0].share_percent.vmm: should be a number, not a string")))
      << failure.toStdString();
  auto* box = window.findChild<QMessageBox*>();
  ASSERT_NE(box, nullptr) << "the error is shown, not only logged";
  EXPECT_EQ(box->text(), failure);
  box->close();
  EXPECT_EQ(window.comparison().path(), path("good.json")) << "the view keeps what it showed";
  EXPECT_EQ(window.comparison().results().rows.size(), 6u);
  window.open_file(path("cut.json"));
  EXPECT_TRUE(failure.contains(QStringLiteral("cut.json: not a JSON document")))
      << failure.toStdString();
}

TEST_F(MainWindowTest, AComparisonIsSavedAsVmlabWroteIt) {
  write_file(m_directory / "results.json", testing::kSmallComparison);
  MainWindow window;
  window.show();
  EXPECT_EQ(window.save_comparison_as(path("none.json")).error().kind, VizError::kUsage);
  window.open_file(path("results.json"));
  ASSERT_TRUE(window.comparison().has_results());
  ASSERT_TRUE(window.save_comparison_as(path("kept.json")).ok());
  EXPECT_EQ(contents_of(m_directory / "kept.json"), testing::kSmallComparison);
  EXPECT_EQ(window.comparison().path(), path("kept.json"));
  EXPECT_TRUE(window.windowTitle().startsWith(QStringLiteral("kept.json")));
  EXPECT_EQ(window.save_comparison_as(path("absent/kept.json")).error().kind,
            VizError::kOutputUnwritable);
}

TEST_F(MainWindowTest, AComparisonRunFromTheWindowOpensInIt) {
  VMLAB_REQUIRE_KVM();
  // The vmlab the window finds (find_vmlab_program): this build's.
  const QByteArray saved = qgetenv("VMLAB_CLI");
  qputenv("VMLAB_CLI", VMLAB_CLI_PATH);
  std::filesystem::path results_directory;
  {
    MainWindow window;
    window.show();
    bool opened = false;
    QObject::connect(&window, &MainWindow::comparison_opened, [&] { opened = true; });
    RunComparisonDialog* dialog = window.run_comparison_dialog();
    ASSERT_NE(dialog, nullptr);
    EXPECT_TRUE(dialog->program_text().contains(QStringLiteral(VMLAB_CLI_PATH)));
    EXPECT_EQ(window.run_comparison_dialog(), dialog) << "one dialog at a time";
    QTableWidget& workloads = dialog->workloads();
    for (int row = 0; row < workloads.rowCount(); ++row) {
      const bool chosen = workloads.item(row, 0)->text() == QLatin1String("pio");
      workloads.item(row, 0)->setCheckState(chosen ? Qt::Checked : Qt::Unchecked);
      if (chosen) workloads.item(row, 1)->setText(QStringLiteral("50"));
    }
    for (QCheckBox* box : dialog->cpus())
      box->setChecked(box->text() == QLatin1String("hvm"));
    dialog->run();
    ASSERT_TRUE(
        testing::wait_until([&] { return opened || !dialog->errors_text().isEmpty(); }, 120000));
    ASSERT_TRUE(opened) << dialog->errors_text().toStdString();
    const ComparisonResults& results = window.comparison().results();
    ASSERT_EQ(results.rows.size(), 2u) << "hvm and hvm+kirq";
    EXPECT_EQ(results.rows[0].workload, "pio");
    EXPECT_EQ(results.rows[0].n, 50u);
    results_directory =
        std::filesystem::path(window.comparison().path().toStdString()).parent_path();
    EXPECT_TRUE(std::filesystem::exists(results_directory / "comparison.json"));
    EXPECT_TRUE(testing::wait_until([&] {
      return window.findChild<RunComparisonDialog*>() == nullptr;
    })) << "the dialog closes once its results are open";
  }
  qputenv("VMLAB_CLI", saved);
  if (saved.isEmpty()) qunsetenv("VMLAB_CLI");
  EXPECT_FALSE(std::filesystem::exists(results_directory))
      << "a run's results go with the window unless saved";
}

}  // namespace
}  // namespace vmlab::viz
