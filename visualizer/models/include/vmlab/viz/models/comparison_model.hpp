// The rows of a `vmlab compare --json` file as a table: one row per
// workload and configuration, the figures the comparison view charts.
#pragma once

#include <QAbstractTableModel>

#include "vmlab/viz/comparison.hpp"

namespace vmlab::viz {

class ComparisonModel final : public QAbstractTableModel {
  Q_OBJECT

 public:
  enum Column {
    kWorkload,
    kN,
    kCpu,
    kIrqchip,
    kDisk,
    kStatus,
    kCyclesPerOp,
    kRelativeToHvm,
    kVmExitsPerOp,
    kKvmExitsPerOp,
    kMonitorTrapsPerOp,
    kHypercallsPerOp,
    kGuestShare,
    kMonitorShare,
    kVmmShare,
    kHaltedShare,
    kResult,
    kColumns
  };

  explicit ComparisonModel(QObject* parent = nullptr);

  void set_results(ComparisonResults results);
  // Reads a file; on an error the table keeps what it showed.
  Status load_file(const std::string& path);
  const ComparisonResults& results() const { return m_results; }

  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation,
                      int role = Qt::DisplayRole) const override;

 private:
  QVariant text(const ComparisonRow& row, int column) const;
  QVariant value(const ComparisonRow& row, int column) const;

  ComparisonResults m_results;
};

}  // namespace vmlab::viz
