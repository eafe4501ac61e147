// Tables over the aggregates of the selected range (TraceDocument): counts
// and time by kind and reason, the guest RIPs that cost the VMM most, the
// monitor's traps by cause, the transitions between levels. Each follows
// the document: a new trace or a new range resets it with the new rows.
#pragma once

#include <QAbstractTableModel>
#include <vector>

#include "vmlab/viz/aggregates.hpp"
#include "vmlab/viz/models/trace_document.hpp"

namespace vmlab::viz {

// What the four tables share: rows copied from the document's aggregates
// on every change, served from that copy.
class AggregateTableModel : public QAbstractTableModel {
  Q_OBJECT

 public:
  int rowCount(const QModelIndex& parent = QModelIndex()) const override;
  int columnCount(const QModelIndex& parent = QModelIndex()) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation,
                      int role = Qt::DisplayRole) const override;

 protected:
  AggregateTableModel(const TraceDocument* document, QObject* parent);
  // Called from the subclass's constructor (the copy is the subclass's).
  void connect_document();

  const TraceDocument* document() const { return m_document; }

 private:
  // Copies the rows from the document's aggregates (empty without a trace).
  virtual void copy_rows(const Aggregates& aggregates) = 0;
  virtual std::size_t rows() const = 0;
  virtual int columns() const = 0;
  virtual QString column_title(int column) const = 0;
  virtual bool numeric(int column) const = 0;
  // DisplayRole text and kValueRole value of one cell, inside the table.
  virtual QVariant text(std::size_t row, int column) const = 0;
  virtual QVariant value(std::size_t row, int column) const = 0;

  void reload();

  const TraceDocument* m_document;
};

class ReasonCountsModel final : public AggregateTableModel {
  Q_OBJECT

 public:
  enum Column { kKind, kReason, kCount, kTotalTime, kTimeEach, kColumns };

  explicit ReasonCountsModel(const TraceDocument* document, QObject* parent = nullptr);
  const KindReasonCount& row(std::size_t index) const { return m_rows[index]; }

 private:
  void copy_rows(const Aggregates& aggregates) override;
  std::size_t rows() const override { return m_rows.size(); }
  int columns() const override { return kColumns; }
  QString column_title(int column) const override;
  bool numeric(int column) const override { return column >= kCount; }
  QVariant text(std::size_t row, int column) const override;
  QVariant value(std::size_t row, int column) const override;

  std::vector<KindReasonCount> m_rows;
};

class CostlyRipsModel final : public AggregateTableModel {
  Q_OBJECT

 public:
  enum Column { kGuestRip, kExits, kTotalTime, kTimeEach, kColumns };

  explicit CostlyRipsModel(const TraceDocument* document, QObject* parent = nullptr);
  const CostlyRip& row(std::size_t index) const { return m_rows[index]; }

 private:
  void copy_rows(const Aggregates& aggregates) override;
  std::size_t rows() const override { return m_rows.size(); }
  int columns() const override { return kColumns; }
  QString column_title(int column) const override;
  bool numeric(int column) const override { return column >= kExits; }
  QVariant text(std::size_t row, int column) const override;
  QVariant value(std::size_t row, int column) const override;

  std::vector<CostlyRip> m_rows;
};

class TrapCausesModel final : public AggregateTableModel {
  Q_OBJECT

 public:
  enum Column { kCause, kCount, kColumns };

  explicit TrapCausesModel(const TraceDocument* document, QObject* parent = nullptr);

 private:
  void copy_rows(const Aggregates& aggregates) override;
  std::size_t rows() const override { return m_rows.size(); }
  int columns() const override { return kColumns; }
  QString column_title(int column) const override;
  bool numeric(int column) const override { return column == kCount; }
  QVariant text(std::size_t row, int column) const override;
  QVariant value(std::size_t row, int column) const override;

  std::vector<TrapCause> m_rows;
};

class TransitionsModel final : public AggregateTableModel {
  Q_OBJECT

 public:
  enum Column { kFrom, kTo, kCount, kTimeThere, kColumns };
  struct Row {
    TimelineLane from = TimelineLane::Vmm;
    TimelineLane to = TimelineLane::Vmm;
    TransitionCell cell;
  };

  explicit TransitionsModel(const TraceDocument* document, QObject* parent = nullptr);
  const Row& row(std::size_t index) const { return m_rows[index]; }

 private:
  void copy_rows(const Aggregates& aggregates) override;
  std::size_t rows() const override { return m_rows.size(); }
  int columns() const override { return kColumns; }
  QString column_title(int column) const override;
  bool numeric(int column) const override { return column >= kCount; }
  QVariant text(std::size_t row, int column) const override;
  QVariant value(std::size_t row, int column) const override;

  // The matrix's cells that saw a transition, from lane by lane, then to.
  std::vector<Row> m_rows;
};

}  // namespace vmlab::viz
