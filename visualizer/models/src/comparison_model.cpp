#include "vmlab/viz/models/comparison_model.hpp"

#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

QString figure_text(double figure, int decimals) {
  return QString::number(figure, 'f', decimals);
}

// The figures a failed run has none of (its row says why it failed).
bool is_figure(int column) {
  return column >= ComparisonModel::kCyclesPerOp && column <= ComparisonModel::kHaltedShare;
}

}  // namespace

ComparisonModel::ComparisonModel(QObject* parent) : QAbstractTableModel(parent) {}

void ComparisonModel::set_results(ComparisonResults results) {
  beginResetModel();
  m_results = std::move(results);
  endResetModel();
}

Status ComparisonModel::load_file(const std::string& path) {
  auto results = read_comparison_file(path);
  if (!results) return results.error();
  set_results(std::move(*results));
  return {};
}

int ComparisonModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(m_results.rows.size());
}

int ComparisonModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

QVariant ComparisonModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) {
    return {};
  }
  const ComparisonRow& row = m_results.rows[static_cast<std::size_t>(index.row())];
  switch (role) {
    case Qt::DisplayRole:
      return text(row, index.column());
    case kValueRole:
      return value(row, index.column());
    case Qt::TextAlignmentRole: {
      const bool numeric = index.column() == kN || is_figure(index.column());
      return static_cast<int>((numeric ? Qt::AlignRight : Qt::AlignLeft) | Qt::AlignVCenter);
    }
    default:
      return {};
  }
}

QVariant ComparisonModel::text(const ComparisonRow& row, int column) const {
  if (!row.ok && is_figure(column)) return QString();
  switch (column) {
    case kWorkload:
      return QString::fromStdString(row.workload);
    case kN:
      return QString::number(row.n);
    case kCpu:
      return QString::fromStdString(row.cpu);
    case kIrqchip:
      return QString::fromStdString(row.irqchip);
    case kDisk:
      return row.disk_model.empty() ? tr("none") : QString::fromStdString(row.disk_model);
    case kStatus:
      return row.ok ? tr("ok") : tr("failed: %1").arg(QString::fromStdString(row.failure));
    case kCyclesPerOp:
      return figure_text(row.cycles_per_op, 0);
    case kRelativeToHvm:
      return row.relative_to_hvm ? figure_text(*row.relative_to_hvm, 2) : QString();
    case kVmExitsPerOp:
      return figure_text(row.vm_exits_per_op, 2);
    case kKvmExitsPerOp:
      return figure_text(row.kvm_exits_per_op, 2);
    case kMonitorTrapsPerOp:
      return figure_text(row.monitor_traps_per_op, 2);
    case kHypercallsPerOp:
      return figure_text(row.hypercalls_per_op, 2);
    case kGuestShare:
      return figure_text(row.shares.guest, 1);
    case kMonitorShare:
      return figure_text(row.shares.monitor, 1);
    case kVmmShare:
      return figure_text(row.shares.vmm, 1);
    case kHaltedShare:
      return figure_text(row.shares.halted, 1);
    case kResult:
      return QString::fromStdString(row.result);
    default:
      return {};
  }
}

QVariant ComparisonModel::value(const ComparisonRow& row, int column) const {
  if (!row.ok && is_figure(column)) return {};
  switch (column) {
    case kN:
      return QVariant::fromValue<qulonglong>(row.n);
    case kStatus:
      return row.ok;
    case kCyclesPerOp:
      return row.cycles_per_op;
    case kRelativeToHvm:
      return row.relative_to_hvm ? QVariant(*row.relative_to_hvm) : QVariant();
    case kVmExitsPerOp:
      return row.vm_exits_per_op;
    case kKvmExitsPerOp:
      return row.kvm_exits_per_op;
    case kMonitorTrapsPerOp:
      return row.monitor_traps_per_op;
    case kHypercallsPerOp:
      return row.hypercalls_per_op;
    case kGuestShare:
      return row.shares.guest;
    case kMonitorShare:
      return row.shares.monitor;
    case kVmmShare:
      return row.shares.vmm;
    case kHaltedShare:
      return row.shares.halted;
    default:
      return text(row, column);
  }
}

QVariant ComparisonModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole || orientation != Qt::Horizontal) return {};
  switch (section) {
    case kWorkload:
      return tr("Workload");
    case kN:
      return tr("N");
    case kCpu:
      return tr("CPU");
    case kIrqchip:
      return tr("IRQ chip");
    case kDisk:
      return tr("Disk");
    case kStatus:
      return tr("Status");
    case kCyclesPerOp:
      return m_results.simulated ? tr("Run ns/op") : tr("Cycles/op");
    case kRelativeToHvm:
      return m_results.simulated ? tr("Relative to measured") : tr("Relative to hvm");
    case kVmExitsPerOp:
      return tr("VM exits/op");
    case kKvmExitsPerOp:
      return tr("KVM exits/op");
    case kMonitorTrapsPerOp:
      return tr("Monitor traps/op");
    case kHypercallsPerOp:
      return tr("Hypercalls/op");
    case kGuestShare:
      return tr("Guest %");
    case kMonitorShare:
      return tr("Monitor %");
    case kVmmShare:
      return tr("VMM %");
    case kHaltedShare:
      return tr("Halted %");
    case kResult:
      return tr("Result");
    default:
      return {};
  }
}

}  // namespace vmlab::viz
