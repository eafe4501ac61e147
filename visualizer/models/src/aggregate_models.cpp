#include "vmlab/viz/models/aggregate_models.hpp"

#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

// Time each: the mean, in nanoseconds (0 for no events).
double mean(std::uint64_t total, std::uint64_t count) {
  return count == 0 ? 0.0 : static_cast<double>(total) / static_cast<double>(count);
}

QString mean_microseconds_text(std::uint64_t total, std::uint64_t count) {
  return QString::number(mean(total, count) / 1000.0, 'f', 3);
}

}  // namespace

AggregateTableModel::AggregateTableModel(const TraceDocument* document, QObject* parent)
    : QAbstractTableModel(parent), m_document(document) {}

void AggregateTableModel::connect_document() {
  connect(m_document, &TraceDocument::trace_changed, this, &AggregateTableModel::reload);
  connect(m_document, &TraceDocument::range_changed, this, &AggregateTableModel::reload);
  reload();
}

void AggregateTableModel::reload() {
  beginResetModel();
  copy_rows(m_document->trace() != nullptr ? m_document->aggregates() : Aggregates{});
  endResetModel();
}

int AggregateTableModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(rows());
}

int AggregateTableModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : columns();
}

QVariant AggregateTableModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) {
    return {};
  }
  const auto row = static_cast<std::size_t>(index.row());
  switch (role) {
    case Qt::DisplayRole:
      return text(row, index.column());
    case kValueRole:
      return value(row, index.column());
    case Qt::TextAlignmentRole:
      return numeric(index.column()) ? QVariant(static_cast<int>(Qt::AlignRight | Qt::AlignVCenter))
                                     : QVariant(static_cast<int>(Qt::AlignLeft | Qt::AlignVCenter));
    default:
      return {};
  }
}

QVariant AggregateTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole || orientation != Qt::Horizontal) return {};
  if (section < 0 || section >= columns()) return {};
  return column_title(section);
}

// --- ReasonCountsModel

ReasonCountsModel::ReasonCountsModel(const TraceDocument* document, QObject* parent)
    : AggregateTableModel(document, parent) {
  connect_document();
}

void ReasonCountsModel::copy_rows(const Aggregates& aggregates) {
  m_rows = aggregates.counts;
}

QString ReasonCountsModel::column_title(int column) const {
  switch (column) {
    case kKind:
      return tr("Kind");
    case kReason:
      return tr("Reason");
    case kCount:
      return tr("Count");
    case kTotalTime:
      return tr("Total time (µs)");
    case kTimeEach:
      return tr("Time each (µs)");
    default:
      return {};
  }
}

QVariant ReasonCountsModel::text(std::size_t row, int column) const {
  const KindReasonCount& count = m_rows[row];
  switch (column) {
    case kKind:
      return to_qstring(event_kind_name(count.kind));
    case kReason:
      return to_qstring(event_reason_name(count.reason));
    case kCount:
      return QString::number(count.count);
    case kTotalTime:
      return microseconds_text(count.total_duration_ns);
    case kTimeEach:
      return mean_microseconds_text(count.total_duration_ns, count.count);
    default:
      return {};
  }
}

QVariant ReasonCountsModel::value(std::size_t row, int column) const {
  const KindReasonCount& count = m_rows[row];
  switch (column) {
    case kKind:
      return to_qstring(event_kind_name(count.kind));
    case kReason:
      return to_qstring(event_reason_name(count.reason));
    case kCount:
      return QVariant::fromValue<qulonglong>(count.count);
    case kTotalTime:
      return QVariant::fromValue<qulonglong>(count.total_duration_ns);
    case kTimeEach:
      return mean(count.total_duration_ns, count.count);
    default:
      return {};
  }
}

// --- CostlyRipsModel

CostlyRipsModel::CostlyRipsModel(const TraceDocument* document, QObject* parent)
    : AggregateTableModel(document, parent) {
  connect_document();
}

void CostlyRipsModel::copy_rows(const Aggregates& aggregates) {
  m_rows = aggregates.costly_rips;
}

QString CostlyRipsModel::column_title(int column) const {
  switch (column) {
    case kGuestRip:
      return tr("Guest RIP");
    case kExits:
      return tr("VM exits");
    case kTotalTime:
      return tr("VMM time (µs)");
    case kTimeEach:
      return tr("Time each (µs)");
    default:
      return {};
  }
}

QVariant CostlyRipsModel::text(std::size_t row, int column) const {
  const CostlyRip& rip = m_rows[row];
  switch (column) {
    case kGuestRip:
      return hex_text(rip.guest_rip);
    case kExits:
      return QString::number(rip.events);
    case kTotalTime:
      return microseconds_text(rip.total_duration_ns);
    case kTimeEach:
      return mean_microseconds_text(rip.total_duration_ns, rip.events);
    default:
      return {};
  }
}

QVariant CostlyRipsModel::value(std::size_t row, int column) const {
  const CostlyRip& rip = m_rows[row];
  switch (column) {
    case kGuestRip:
      return QVariant::fromValue<qulonglong>(rip.guest_rip);
    case kExits:
      return QVariant::fromValue<qulonglong>(rip.events);
    case kTotalTime:
      return QVariant::fromValue<qulonglong>(rip.total_duration_ns);
    case kTimeEach:
      return mean(rip.total_duration_ns, rip.events);
    default:
      return {};
  }
}

// --- TrapCausesModel

TrapCausesModel::TrapCausesModel(const TraceDocument* document, QObject* parent)
    : AggregateTableModel(document, parent) {
  connect_document();
}

void TrapCausesModel::copy_rows(const Aggregates& aggregates) {
  m_rows = aggregates.traps_by_detail;
}

QString TrapCausesModel::column_title(int column) const {
  switch (column) {
    case kCause:
      return tr("Monitor trap cause");
    case kCount:
      return tr("Count");
    default:
      return {};
  }
}

QVariant TrapCausesModel::text(std::size_t row, int column) const {
  const TrapCause& cause = m_rows[row];
  switch (column) {
    case kCause:
      return QString::fromStdString(cause.cause);
    case kCount:
      return QString::number(cause.count);
    default:
      return {};
  }
}

QVariant TrapCausesModel::value(std::size_t row, int column) const {
  if (column == kCount) return QVariant::fromValue<qulonglong>(m_rows[row].count);
  return text(row, column);
}

// --- TransitionsModel

TransitionsModel::TransitionsModel(const TraceDocument* document, QObject* parent)
    : AggregateTableModel(document, parent) {
  connect_document();
}

void TransitionsModel::copy_rows(const Aggregates& aggregates) {
  m_rows.clear();
  for (std::size_t from = 0; from < kLaneCount; ++from) {
    for (std::size_t to = 0; to < kLaneCount; ++to) {
      const auto from_lane = static_cast<TimelineLane>(from);
      const auto to_lane = static_cast<TimelineLane>(to);
      const TransitionCell& cell = aggregates.transitions.at(from_lane, to_lane);
      if (cell.count != 0) m_rows.push_back({from_lane, to_lane, cell});
    }
  }
}

QString TransitionsModel::column_title(int column) const {
  switch (column) {
    case kFrom:
      return tr("From");
    case kTo:
      return tr("To");
    case kCount:
      return tr("Count");
    case kTimeThere:
      return tr("Time there (µs)");
    default:
      return {};
  }
}

QVariant TransitionsModel::text(std::size_t row, int column) const {
  const Row& transition = m_rows[row];
  switch (column) {
    case kFrom:
      return lane_title(transition.from);
    case kTo:
      return lane_title(transition.to);
    case kCount:
      return QString::number(transition.cell.count);
    case kTimeThere:
      return microseconds_text(transition.cell.time_ns);
    default:
      return {};
  }
}

QVariant TransitionsModel::value(std::size_t row, int column) const {
  const Row& transition = m_rows[row];
  switch (column) {
    case kFrom:
      return static_cast<int>(transition.from);
    case kTo:
      return static_cast<int>(transition.to);
    case kCount:
      return QVariant::fromValue<qulonglong>(transition.cell.count);
    case kTimeThere:
      return QVariant::fromValue<qulonglong>(transition.cell.time_ns);
    default:
      return {};
  }
}

}  // namespace vmlab::viz
