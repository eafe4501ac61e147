// Run > Comparison...: `vmlab compare` from the window. The choices are
// what the vmlab it runs offers (`vmlab info --choices`: its workloads,
// compare's default set at its Ns checked, its CPU modes, interrupt
// controllers and disk models), with the memory and timeout left to vmlab
// unless given; the dialog says which vmlab it runs and the command line it
// will give it; while it runs, vmlab's progress line, a bar of runs done,
// and Cancel. The results go to `json_path` and are announced with
// results_ready(); a failing vmlab's own error output is shown here.
#pragma once

#include <QCheckBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QTableWidget>
#include <vector>

#include "vmlab/viz/models/comparison_runner.hpp"
#include "vmlab/viz/models/vmlab_program.hpp"

namespace vmlab::viz {

class RunComparisonDialog final : public QDialog {
  Q_OBJECT

 public:
  // `program`: the vmlab to run, or why there is none (find_vmlab_program).
  RunComparisonDialog(Result<QString> program, QString json_path, QWidget* parent = nullptr);

  // What the choices ask for now.
  ComparisonRequest request() const;
  // Empty when the choices can run; else what is wrong with them.
  QString problem() const;
  void run();
  ComparisonRunner& runner() { return *m_runner; }

  // Tests.
  QTableWidget& workloads() { return *m_workloads; }
  const std::vector<QCheckBox*>& cpus() const { return m_cpus; }
  const std::vector<QCheckBox*>& disk_models() const { return m_disk_models; }
  QString command_text() const { return m_command->text(); }
  QString program_text() const { return m_program_label->text(); }
  QString status_text() const { return m_status->text(); }
  QString errors_text() const { return m_errors->toPlainText(); }
  QProgressBar& progress() { return *m_progress; }
  QPushButton& run_button() { return *m_run; }

  // Cancel, Esc or closing the dialog during a run cancels the run first.
  void reject() override;

 signals:
  void results_ready(const QString& json_path);

 private:
  void build_choices(const RunChoices& choices);
  void update_command();
  void set_running(bool running);

  Result<QString> m_program;
  QString m_json_path;
  ComparisonRunner* m_runner;
  QLabel* m_program_label;
  // The choices, made once vmlab has said what it offers.
  QTableWidget* m_workloads = nullptr;
  std::vector<QCheckBox*> m_cpus;
  std::vector<QCheckBox*> m_irqchips;
  std::vector<QCheckBox*> m_disk_models;
  QLineEdit* m_memory = nullptr;
  QLineEdit* m_timeout = nullptr;
  QLabel* m_command;
  QProgressBar* m_progress;
  QLabel* m_status;
  QPlainTextEdit* m_errors;
  QPushButton* m_run;
  QDialogButtonBox* m_buttons;
  QWidget* m_choices;
};

}  // namespace vmlab::viz
