#include "vmlab/viz/app/comparison_dialog.hpp"

#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QVBoxLayout>
#include <algorithm>

namespace vmlab::viz {

namespace {

enum WorkloadColumn { kName, kCount, kDescription, kWorkloadColumns };

QLabel* note(const QString& text, QWidget* parent) {
  auto* label = new QLabel(text, parent);
  label->setWordWrap(true);
  QPalette colours = label->palette();
  colours.setColor(QPalette::WindowText, colours.color(QPalette::PlaceholderText));
  label->setPalette(colours);
  return label;
}

// A row of check boxes, one per choice, all `checked` at first.
std::vector<QCheckBox*> check_boxes(const std::vector<ProgramChoice>& choices, bool checked,
                                    QBoxLayout& layout, QWidget* parent) {
  std::vector<QCheckBox*> boxes;
  for (const ProgramChoice& choice : choices) {
    auto* box = new QCheckBox(choice.value, parent);
    box->setToolTip(choice.meaning);
    box->setChecked(checked);
    layout.addWidget(box);
    boxes.push_back(box);
  }
  layout.addStretch(1);
  return boxes;
}

QStringList checked_names(const std::vector<QCheckBox*>& boxes) {
  QStringList names;
  for (const QCheckBox* box : boxes) {
    if (box->isChecked()) names << box->text();
  }
  return names;
}

bool needs_disk(const QString& workload) {
  return workload.startsWith(QLatin1String("disk-")) || workload == QLatin1String("dma-attack");
}

}  // namespace

RunComparisonDialog::RunComparisonDialog(Result<QString> program, QString json_path,
                                         QWidget* parent)
    : QDialog(parent),
      m_program(std::move(program)),
      m_json_path(std::move(json_path)),
      m_runner(new ComparisonRunner(this)),
      m_program_label(new QLabel(this)),
      m_command(new QLabel(this)),
      m_progress(new QProgressBar(this)),
      m_status(new QLabel(this)),
      m_errors(new QPlainTextEdit(this)),
      m_run(new QPushButton(tr("&Run"), this)),
      m_buttons(new QDialogButtonBox(QDialogButtonBox::Close, this)),
      m_choices(new QWidget(this)) {
  setWindowTitle(tr("Run vmlab compare"));
  m_program_label->setWordWrap(true);
  m_program_label->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_command->setWordWrap(true);
  m_command->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_status->setWordWrap(true);
  m_errors->setReadOnly(true);
  m_errors->setMaximumBlockCount(200);
  m_errors->hide();
  m_progress->hide();
  m_buttons->addButton(m_run, QDialogButtonBox::ActionRole);
  m_run->setDefault(true);

  auto* layout = new QVBoxLayout(this);
  layout->addWidget(m_program_label);
  layout->addWidget(m_choices, 1);
  layout->addWidget(m_command);
  layout->addWidget(m_progress);
  layout->addWidget(m_status);
  layout->addWidget(m_errors);
  layout->addWidget(m_buttons);
  connect(m_run, &QPushButton::clicked, this, &RunComparisonDialog::run);
  connect(m_buttons, &QDialogButtonBox::rejected, this, &RunComparisonDialog::reject);

  connect(m_runner, &ComparisonRunner::progress, this,
          [this](int done, int total, const QString& line) {
            m_progress->setRange(0, total);
            m_progress->setValue(done);
            m_progress->setFormat(tr("%v of %m runs"));
            m_status->setText(line);
          });
  connect(m_runner, &ComparisonRunner::finished, this, [this](const QString& path) {
    set_running(false);
    m_status->setText(tr("Done; the results are open in the comparison view."));
    emit results_ready(path);
    accept();
  });
  connect(m_runner, &ComparisonRunner::failed, this, [this](const QString& message) {
    set_running(false);
    m_status->setText(tr("vmlab did not finish the comparison; what it said:"));
    m_errors->setPlainText(message);
    m_errors->show();
  });
  connect(m_runner, &ComparisonRunner::cancelled, this, [this] {
    set_running(false);
    m_status->setText(tr("Cancelled: vmlab was stopped and removed its unfinished results."));
  });

  if (!m_program) {
    m_program_label->setText(QString::fromStdString(m_program.error().message));
    m_choices->setEnabled(false);
    m_run->setEnabled(false);
    return;
  }
  m_program_label->setText(tr("Runs %1 (VMLAB_CLI names another).").arg(*m_program));
  auto choices = query_run_choices(*m_program);
  if (!choices) {
    m_program_label->setText(m_program_label->text() + QLatin1Char('\n') +
                             QString::fromStdString(choices.error().message));
    m_choices->setEnabled(false);
    m_run->setEnabled(false);
    return;
  }
  build_choices(*choices);
  update_command();
}

void RunComparisonDialog::build_choices(const RunChoices& choices) {
  auto* layout = new QVBoxLayout(m_choices);
  layout->setContentsMargins(0, 0, 0, 0);

  auto* workloads = new QGroupBox(tr("Workloads (N: operations in each run)"), m_choices);
  auto* workloads_layout = new QVBoxLayout(workloads);
  m_workloads = new QTableWidget(workloads);
  m_workloads->setColumnCount(kWorkloadColumns);
  m_workloads->setHorizontalHeaderLabels({tr("Workload"), tr("N"), tr("What it does")});
  m_workloads->setRowCount(static_cast<int>(choices.workloads.size()));
  m_workloads->verticalHeader()->hide();
  m_workloads->setSelectionMode(QAbstractItemView::NoSelection);
  for (int row = 0; row < m_workloads->rowCount(); ++row) {
    const WorkloadChoice& workload = choices.workloads[static_cast<std::size_t>(row)];
    // vmlab compare's own default set checked, at its Ns.
    const auto in_compare =
        std::find_if(choices.compare_workloads.begin(), choices.compare_workloads.end(),
                     [&](const auto& entry) { return entry.first == workload.name; });
    const bool chosen = in_compare != choices.compare_workloads.end();
    auto* name = new QTableWidgetItem(workload.name);
    name->setFlags(Qt::ItemIsEnabled | Qt::ItemIsUserCheckable);
    name->setCheckState(chosen ? Qt::Checked : Qt::Unchecked);
    auto* count =
        new QTableWidgetItem(QString::number(chosen ? in_compare->second : workload.default_count));
    count->setFlags(Qt::ItemIsEnabled | Qt::ItemIsEditable);
    count->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    auto* description = new QTableWidgetItem(workload.description);
    description->setFlags(Qt::ItemIsEnabled);
    description->setToolTip(workload.description);
    m_workloads->setItem(row, kName, name);
    m_workloads->setItem(row, kCount, count);
    m_workloads->setItem(row, kDescription, description);
  }
  m_workloads->resizeColumnsToContents();
  m_workloads->horizontalHeader()->setStretchLastSection(true);
  m_workloads->setMinimumHeight(220);
  connect(m_workloads, &QTableWidget::itemChanged, this, &RunComparisonDialog::update_command);
  workloads_layout->addWidget(m_workloads);
  layout->addWidget(workloads, 1);

  auto* cpus = new QGroupBox(tr("Techniques (--cpu)"), m_choices);
  auto* cpus_layout = new QHBoxLayout(cpus);
  m_cpus = check_boxes(choices.cpus, true, *cpus_layout, cpus);
  layout->addWidget(cpus);

  auto* irqchips = new QGroupBox(tr("PIC and PIT modelled by (--irqchip)"), m_choices);
  auto* irqchips_layout = new QHBoxLayout(irqchips);
  m_irqchips = check_boxes(choices.irqchips, true, *irqchips_layout, irqchips);
  irqchips_layout->addWidget(
      note(tr("kernel: KVM's in-kernel model, for hvm only (the software modes always use the "
              "VMM's)"),
           irqchips));
  layout->addWidget(irqchips);

  auto* disks = new QGroupBox(tr("Disk (--disk-model)"), m_choices);
  auto* disks_layout = new QHBoxLayout(disks);
  m_disk_models = check_boxes(choices.disk_models, false, *disks_layout, disks);
  disks_layout->addWidget(
      note(tr("each configuration once per disk model, on a scratch image; the disk workloads "
              "need one"),
           disks));
  layout->addWidget(disks);

  auto* options = new QFormLayout;
  m_memory = new QLineEdit(m_choices);
  m_timeout = new QLineEdit(m_choices);
  m_memory->setPlaceholderText(tr("vmlab's default (vmlab compare --help)"));
  m_timeout->setPlaceholderText(tr("vmlab's default (vmlab compare --help)"));
  options->addRow(tr("Guest RAM (--mem):"), m_memory);
  options->addRow(tr("Timeout of each run, s (--timeout):"), m_timeout);
  layout->addLayout(options);

  for (const auto* boxes : {&m_cpus, &m_irqchips, &m_disk_models}) {
    for (QCheckBox* box : *boxes)
      connect(box, &QCheckBox::toggled, this, &RunComparisonDialog::update_command);
  }
  for (QLineEdit* edit : {m_memory, m_timeout})
    connect(edit, &QLineEdit::textChanged, this, &RunComparisonDialog::update_command);
}

ComparisonRequest RunComparisonDialog::request() const {
  ComparisonRequest request;
  if (m_workloads == nullptr) return request;
  for (int row = 0; row < m_workloads->rowCount(); ++row) {
    if (m_workloads->item(row, kName)->checkState() != Qt::Checked) continue;
    request.workloads << m_workloads->item(row, kName)->text() + QLatin1Char(':') +
                             m_workloads->item(row, kCount)->text().trimmed();
  }
  request.cpus = checked_names(m_cpus);
  // Both is vmlab's default; the command line says less.
  const QStringList irqchips = checked_names(m_irqchips);
  if (irqchips.size() != static_cast<qsizetype>(m_irqchips.size())) request.irqchips = irqchips;
  request.disk_models = checked_names(m_disk_models);
  // Empty: vmlab's own default (vmlab checks what is given).
  request.memory = m_memory->text().trimmed();
  request.timeout_seconds = m_timeout->text().trimmed();
  return request;
}

QString RunComparisonDialog::problem() const {
  if (!m_program) return QString::fromStdString(m_program.error().message);
  if (m_workloads == nullptr) return tr("vmlab did not say what it offers.");
  bool any = false;
  bool disk_workload = false;
  for (int row = 0; row < m_workloads->rowCount(); ++row) {
    if (m_workloads->item(row, kName)->checkState() != Qt::Checked) continue;
    any = true;
    const QString name = m_workloads->item(row, kName)->text();
    bool number = false;
    const qulonglong count = m_workloads->item(row, kCount)->text().trimmed().toULongLong(&number);
    if (!number || count == 0) return tr("N of %1 should be a whole number above 0.").arg(name);
    disk_workload = disk_workload || needs_disk(name);
  }
  if (!any) return tr("Choose at least one workload.");
  if (checked_names(m_cpus).isEmpty()) return tr("Choose at least one technique.");
  if (checked_names(m_irqchips).isEmpty()) return tr("Choose who models the PIC and the PIT.");
  if (disk_workload && checked_names(m_disk_models).isEmpty()) {
    return tr("The disk workloads need a disk: choose a disk model.");
  }
  return {};
}

void RunComparisonDialog::update_command() {
  if (!m_program) return;
  const QString why = problem();
  m_run->setEnabled(why.isEmpty() && !m_runner->running());
  QStringList words{*m_program};
  words << compare_arguments(request(), m_json_path);
  m_command->setText(why.isEmpty() ? tr("Command: %1").arg(words.join(QLatin1Char(' '))) : why);
}

void RunComparisonDialog::run() {
  const QString why = problem();
  if (!why.isEmpty() || m_runner->running()) {
    m_status->setText(why);
    return;
  }
  m_errors->hide();
  m_errors->clear();
  if (!m_runner->start(*m_program, request(), m_json_path)) return;
  set_running(true);
  // Busy until vmlab says how many runs there are, after the first.
  m_progress->setRange(0, 0);
  m_progress->show();
  m_status->setText(tr("Started: %1").arg(m_runner->command_text()));
}

void RunComparisonDialog::set_running(bool running) {
  m_choices->setEnabled(!running);
  m_run->setEnabled(!running && problem().isEmpty());
  m_buttons->button(QDialogButtonBox::Close)->setText(running ? tr("&Cancel") : tr("&Close"));
  if (!running) m_progress->hide();
}

void RunComparisonDialog::reject() {
  if (m_runner->running()) {
    m_status->setText(tr("Cancelling..."));
    m_runner->cancel();
    return;
  }
  QDialog::reject();
}

}  // namespace vmlab::viz
