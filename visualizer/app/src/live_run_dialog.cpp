#include "vmlab/viz/app/live_run_dialog.hpp"

#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QVBoxLayout>

namespace vmlab::viz {

namespace {

// A count the dialog offers; vmlab takes more from its command line.
constexpr int kLargestCount = 2'000'000'000;

void add_choices(QComboBox& box, const std::vector<ProgramChoice>& choices) {
  for (const ProgramChoice& choice : choices) {
    box.addItem(choice.value, choice.value);
    box.setItemData(box.count() - 1, choice.meaning, Qt::ToolTipRole);
  }
}

}  // namespace

LiveRunDialog::LiveRunDialog(const QString& program, const RunChoices& choices, QWidget* parent)
    : QDialog(parent),
      m_choices(choices),
      m_cpu(new QComboBox(this)),
      m_workload(new QComboBox(this)),
      m_count(new QSpinBox(this)),
      m_disk_model(new QComboBox(this)),
      m_disk_path(new QLineEdit(this)),
      m_umip(new QCheckBox(tr("set CR4.UMIP (full, bt)"), this)),
      m_irqchip(new QComboBox(this)),
      m_timeout(new QDoubleSpinBox(this)) {
  setWindowTitle(tr("Live run"));
  add_choices(*m_cpu, choices.cpus);
  for (const WorkloadChoice& workload : choices.workloads) {
    m_workload->addItem(workload.name, workload.name);
    m_workload->setItemData(m_workload->count() - 1, workload.description, Qt::ToolTipRole);
  }
  m_count->setRange(1, kLargestCount);
  m_count->setGroupSeparatorShown(true);
  m_disk_model->addItem(tr("no disk"), QString());
  add_choices(*m_disk_model, choices.disk_models);
  m_disk_path->setPlaceholderText(tr("a raw image (vmlab disk create disk.img 64M)"));
  auto* browse = new QPushButton(tr("Browse..."), this);
  auto* disk_row = new QHBoxLayout;
  disk_row->addWidget(m_disk_path, 1);
  disk_row->addWidget(browse);
  m_irqchip->addItem(tr("vmlab's default"), QString());
  add_choices(*m_irqchip, choices.irqchips);
  m_timeout->setRange(1, 86'400);
  m_timeout->setDecimals(0);
  m_timeout->setSuffix(tr(" s"));
  m_timeout->setValue(600);

  auto* form = new QFormLayout;
  form->addRow(tr("&Technique:"), m_cpu);
  form->addRow(tr("&Workload:"), m_workload);
  form->addRow(tr("&N:"), m_count);
  form->addRow(tr("&Disk:"), m_disk_model);
  form->addRow(tr("Disk &image:"), disk_row);
  form->addRow(QString(), m_umip);
  form->addRow(tr("&Interrupts:"), m_irqchip);
  form->addRow(tr("Ti&meout:"), m_timeout);
  auto* note =
      new QLabel(tr("Runs %1 with --live: the timeline and the counters grow while the guest runs; "
                    "Run > Stop ends it cleanly.")
                     .arg(program),
                 this);
  note->setWordWrap(true);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
  buttons->button(QDialogButtonBox::Ok)->setText(tr("&Start"));
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addWidget(note);
  layout->addWidget(buttons);

  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(m_workload, &QComboBox::currentIndexChanged, this, &LiveRunDialog::workload_chosen);
  connect(m_cpu, &QComboBox::currentIndexChanged, this, &LiveRunDialog::update_enabled);
  connect(m_disk_model, &QComboBox::currentIndexChanged, this, &LiveRunDialog::update_enabled);
  connect(m_disk_path, &QLineEdit::textChanged, this, &LiveRunDialog::update_enabled);
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, tr("A disk image"));
    if (!path.isEmpty()) m_disk_path->setText(path);
  });
  // A live run shows most when it has many events: system calls under full.
  m_cpu->setCurrentIndex(std::max(0, m_cpu->findData(QStringLiteral("full"))));
  m_workload->setCurrentIndex(std::max(0, m_workload->findData(QStringLiteral("syscalls"))));
  workload_chosen();
}

void LiveRunDialog::workload_chosen() {
  const auto index = static_cast<std::size_t>(std::max(0, m_workload->currentIndex()));
  if (index < m_choices.workloads.size()) {
    const std::uint64_t count = m_choices.workloads[index].default_count;
    m_count->setValue(static_cast<int>(std::min<std::uint64_t>(count, kLargestCount)));
    m_workload->setToolTip(m_choices.workloads[index].description);
  }
  update_enabled();
}

void LiveRunDialog::update_enabled() {
  const QString cpu = m_cpu->currentData().toString();
  m_umip->setEnabled(cpu == QLatin1String("full") || cpu == QLatin1String("bt"));
  if (!m_umip->isEnabled()) m_umip->setChecked(false);
  m_cpu->setToolTip(m_cpu->itemData(m_cpu->currentIndex(), Qt::ToolTipRole).toString());
  const bool disk = !m_disk_model->currentData().toString().isEmpty();
  m_disk_path->setEnabled(disk);
  // A disk model without an image is not a run vmlab takes.
  if (auto* box = findChild<QDialogButtonBox*>()) {
    box->button(QDialogButtonBox::Ok)->setEnabled(!disk || !m_disk_path->text().isEmpty());
  }
}

LiveRunOptions LiveRunDialog::options() const {
  LiveRunOptions options;
  options.cpu = m_cpu->currentData().toString();
  options.workload = m_workload->currentData().toString();
  options.count = static_cast<std::uint64_t>(m_count->value());
  options.umip = m_umip->isChecked();
  options.irqchip = m_irqchip->currentData().toString();
  if (!m_disk_model->currentData().toString().isEmpty()) {
    options.disk_model = m_disk_model->currentData().toString();
    options.disk_path = m_disk_path->text();
  }
  options.timeout_seconds = m_timeout->value();
  return options;
}

void LiveRunDialog::choose(const LiveRunOptions& options) {
  if (const int cpu = m_cpu->findData(options.cpu); cpu >= 0) m_cpu->setCurrentIndex(cpu);
  if (const int workload = m_workload->findData(options.workload); workload >= 0) {
    m_workload->setCurrentIndex(workload);
  }
  if (options.count) {
    m_count->setValue(static_cast<int>(std::min<std::uint64_t>(*options.count, kLargestCount)));
  }
  m_umip->setChecked(options.umip);
  if (const int irqchip = m_irqchip->findData(options.irqchip); irqchip >= 0) {
    m_irqchip->setCurrentIndex(irqchip);
  }
  const int disk =
      m_disk_model->findData(options.disk_path.isEmpty() ? QString() : options.disk_model);
  if (disk >= 0) m_disk_model->setCurrentIndex(disk);
  m_disk_path->setText(options.disk_path);
  m_timeout->setValue(options.timeout_seconds);
  update_enabled();
}

}  // namespace vmlab::viz
