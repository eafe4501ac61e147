// Run > Comparison... with the real vmlab: its choices are what that
// vmlab offers, the command line follows them and mistakes are refused
// before a run, a tiny comparison runs to its results with its progress,
// and Cancel stops vmlab leaving nothing behind.
#include "vmlab/viz/app/comparison_dialog.hpp"

#include <gtest/gtest.h>

#include <QSignalSpy>

#include "../../support/kvm_available.hpp"
#include "../../support/scratch_files.hpp"
#include "../viz_models/qt_test_support.hpp"

namespace vmlab::viz {
namespace {

using vmlab::testing::ScratchDirectory;

QString q(const std::filesystem::path& path) {
  return QString::fromStdString(path.string());
}

QString the_vmlab() {
  return QStringLiteral(VMLAB_CLI_PATH);
}

int row_of(QTableWidget& table, const QString& workload) {
  for (int row = 0; row < table.rowCount(); ++row) {
    if (table.item(row, 0)->text() == workload) return row;
  }
  return -1;
}

// Only `workloads` (NAME:N) and `cpus`, with the VMM's PIC and PIT.
void choose(RunComparisonDialog& dialog, const std::map<QString, QString>& workloads,
            const QStringList& cpus) {
  QTableWidget& table = dialog.workloads();
  for (int row = 0; row < table.rowCount(); ++row) {
    const auto chosen = workloads.find(table.item(row, 0)->text());
    table.item(row, 0)->setCheckState(chosen == workloads.end() ? Qt::Unchecked : Qt::Checked);
    if (chosen != workloads.end()) table.item(row, 1)->setText(chosen->second);
  }
  for (QCheckBox* box : dialog.cpus())
    box->setChecked(cpus.contains(box->text()));
  for (QCheckBox* box : dialog.findChildren<QCheckBox*>()) {
    if (box->text() == QLatin1String("kernel")) box->setChecked(false);
  }
}

TEST(RunComparisonDialog, OffersWhatItsVmlabOffers) {
  ScratchDirectory directory("vmlab-viz-dialog-");
  const QString json = q(directory / "results.json");
  RunComparisonDialog dialog(the_vmlab(), json);
  EXPECT_EQ(dialog.program_text(),
            QStringLiteral("Runs %1 (VMLAB_CLI names another).").arg(the_vmlab()));
  QStringList cpus;
  for (const QCheckBox* box : dialog.cpus()) {
    cpus << box->text();
    EXPECT_TRUE(box->isChecked());
  }
  EXPECT_EQ(cpus, (QStringList{"hvm", "full", "bt", "para"}));
  ASSERT_EQ(dialog.disk_models().size(), 3u);
  for (const QCheckBox* box : dialog.disk_models())
    EXPECT_FALSE(box->isChecked()) << "no disk unless asked for";
  QTableWidget& table = dialog.workloads();
  EXPECT_GE(table.rowCount(), 15);
  const int syscalls = row_of(table, "syscalls");
  ASSERT_GE(syscalls, 0);
  EXPECT_EQ(table.item(syscalls, 0)->checkState(), Qt::Checked) << "compare's own default set";
  EXPECT_EQ(table.item(syscalls, 1)->text(), QStringLiteral("5000")) << "at compare's N";
  EXPECT_EQ(table.item(row_of(table, "dma-attack"), 0)->checkState(), Qt::Unchecked);
  EXPECT_TRUE(dialog.problem().isEmpty()) << dialog.problem().toStdString();
  EXPECT_TRUE(dialog.command_text().startsWith(
      QStringLiteral("Command: %1 compare --workloads hello:1,syscalls:5000,").arg(VMLAB_CLI_PATH)))
      << dialog.command_text().toStdString();
  EXPECT_TRUE(
      dialog.command_text().endsWith(QStringLiteral(" --cpu hvm,full,bt,para --json ") + json))
      << "both irqchips, the default RAM and timeout: vmlab's defaults, left out";

  choose(dialog, {{"syscalls", "100"}, {"pio", "50"}}, {"hvm", "bt"});
  const ComparisonRequest request = dialog.request();
  EXPECT_EQ(request.workloads, (QStringList{"syscalls:100", "pio:50"}));
  EXPECT_EQ(request.cpus, (QStringList{"hvm", "bt"}));
  EXPECT_EQ(request.irqchips, (QStringList{"vmm"}));
  EXPECT_TRUE(request.memory.isEmpty()) << "vmlab's default unless given";
  EXPECT_TRUE(dialog.run_button().isEnabled());

  // Mistakes, refused before vmlab would refuse them.
  table.item(row_of(table, "pio"), 1)->setText("none");
  EXPECT_EQ(dialog.problem(), QStringLiteral("N of pio should be a whole number above 0."));
  EXPECT_FALSE(dialog.run_button().isEnabled());
  choose(dialog, {{"disk-read", "8"}}, {"hvm"});
  EXPECT_EQ(dialog.problem(),
            QStringLiteral("The disk workloads need a disk: choose a disk model."));
  dialog.disk_models()[1]->setChecked(true);
  EXPECT_TRUE(dialog.problem().isEmpty());
  EXPECT_EQ(dialog.request().disk_models, (QStringList{"virtio"}));
  choose(dialog, {}, {"hvm"});
  EXPECT_EQ(dialog.problem(), QStringLiteral("Choose at least one workload."));
  choose(dialog, {{"hello", "1"}}, {});
  EXPECT_EQ(dialog.problem(), QStringLiteral("Choose at least one technique."));
}

TEST(RunComparisonDialog, WithoutAVmlabSaysSo) {
  RunComparisonDialog dialog(Error{ProgramError::kNotFound, "no vmlab program beside vmlab-viz"},
                             QStringLiteral("/tmp/never.json"));
  EXPECT_EQ(dialog.program_text(), QStringLiteral("no vmlab program beside vmlab-viz"));
  EXPECT_FALSE(dialog.run_button().isEnabled());
  EXPECT_FALSE(dialog.problem().isEmpty());
}

TEST(RunComparisonDialog, RunsToItsResultsAndCancels) {
  VMLAB_REQUIRE_KVM();
  ScratchDirectory directory("vmlab-viz-dialog-run-");
  const QString json = q(directory / "results.json");
  RunComparisonDialog dialog(the_vmlab(), json);
  dialog.setAttribute(Qt::WA_DontShowOnScreen);
  dialog.show();
  QSignalSpy ready(&dialog, &RunComparisonDialog::results_ready);
  int most_done = 0;
  QObject::connect(&dialog.runner(), &ComparisonRunner::progress, &dialog,
                   [&](int done, int total) {
                     most_done = done;
                     EXPECT_EQ(total, 2);
                   });
  choose(dialog, {{"syscalls", "100"}}, {"hvm", "full"});
  dialog.run();
  EXPECT_FALSE(dialog.run_button().isEnabled()) << "one run at a time";
  ASSERT_TRUE(testing::wait_until(
      [&] { return ready.count() > 0 || !dialog.errors_text().isEmpty(); }, 120000));
  ASSERT_EQ(ready.count(), 1) << dialog.errors_text().toStdString();
  EXPECT_EQ(ready.first().first().toString(), json);
  EXPECT_EQ(most_done, 2);
  EXPECT_TRUE(std::filesystem::exists(directory / "results.json"));
  EXPECT_FALSE(dialog.isVisible()) << "done: the results are the window's";

  // A long run, cancelled as Esc or Cancel does: vmlab stops, nothing is left.
  std::filesystem::remove(directory / "results.json");
  dialog.show();
  choose(dialog, {{"timer", "300"}}, {"hvm", "full"});
  dialog.run();
  ASSERT_TRUE(testing::wait_until([&] { return most_done == 1; }, 60000));
  dialog.reject();
  EXPECT_TRUE(dialog.isVisible()) << "the first Cancel stops the run, not the dialog";
  ASSERT_TRUE(testing::wait_until([&] { return !dialog.runner().running(); }, 20000));
  EXPECT_TRUE(dialog.status_text().startsWith(QStringLiteral("Cancelled")))
      << dialog.status_text().toStdString();
  EXPECT_EQ(directory.entries(), std::vector<std::string>{});
  EXPECT_EQ(ready.count(), 1);
  EXPECT_TRUE(dialog.run_button().isEnabled()) << "ready for another";
}

}  // namespace
}  // namespace vmlab::viz
