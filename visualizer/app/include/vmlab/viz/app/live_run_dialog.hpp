// Run > Live run...: what to start, from the values the vmlab binary itself
// lists (`vmlab info --choices`): the technique, the workload and its N, the
// disk and its model, UMIP, who models the interrupt controller, a timeout.
#pragma once

#include <QCheckBox>
#include <QComboBox>
#include <QDialog>
#include <QDoubleSpinBox>
#include <QLineEdit>
#include <QSpinBox>

#include "vmlab/viz/models/live_run.hpp"
#include "vmlab/viz/models/vmlab_program.hpp"

namespace vmlab::viz {

class LiveRunDialog final : public QDialog {
  Q_OBJECT

 public:
  LiveRunDialog(const QString& program, const RunChoices& choices, QWidget* parent = nullptr);

  LiveRunOptions options() const;
  // As a person would choose: for tests and for the last run's settings.
  void choose(const LiveRunOptions& options);

 private:
  void workload_chosen();
  void update_enabled();

  const RunChoices m_choices;
  QComboBox* m_cpu;
  QComboBox* m_workload;
  QSpinBox* m_count;
  QComboBox* m_disk_model;
  QLineEdit* m_disk_path;
  QCheckBox* m_umip;
  QComboBox* m_irqchip;
  QDoubleSpinBox* m_timeout;
};

}  // namespace vmlab::viz
