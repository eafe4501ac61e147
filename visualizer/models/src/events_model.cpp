#include "vmlab/viz/models/events_model.hpp"

#include <algorithm>
#include <limits>

#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

// A view's rows are ints: a store holds more events than that only in
// theory (kMaximumEvents is 2^32 - 1), and the table then ends there.
constexpr std::size_t kMaximumRows = static_cast<std::size_t>(std::numeric_limits<int>::max());

}  // namespace

EventsModel::EventsModel(QObject* parent) : QAbstractTableModel(parent) {}

void EventsModel::set_trace(std::shared_ptr<const TraceModel> trace) {
  beginResetModel();
  m_trace = std::move(trace);
  m_listed = false;
  m_events.clear();
  m_first = 0;
  m_last = m_trace ? static_cast<EventIndex>(m_trace->events().size()) : 0;
  endResetModel();
}

void EventsModel::show_range(TimeRange range) {
  beginResetModel();
  m_listed = false;
  m_events.clear();
  m_events.shrink_to_fit();
  if (m_trace) {
    const auto span = m_trace->events().starting_in(range);
    m_first = span.first;
    m_last = span.last;
  } else {
    m_first = m_last = 0;
  }
  endResetModel();
}

void EventsModel::show_events(std::vector<EventIndex> events) {
  beginResetModel();
  m_listed = true;
  m_events = std::move(events);
  if (!m_trace) m_events.clear();
  // An index the trace does not have is dropped, so data() never reads past it.
  const std::size_t size = m_trace ? m_trace->events().size() : 0;
  std::erase_if(m_events, [size](EventIndex event) { return event >= size; });
  endResetModel();
}

EventIndex EventsModel::event_at(int row) const {
  if (row < 0 || row >= rowCount()) return kNoEvent;
  const auto offset = static_cast<std::size_t>(row);
  return m_listed ? m_events[offset] : static_cast<EventIndex>(m_first + offset);
}

int EventsModel::row_of(EventIndex event) const {
  if (!m_trace || event == kNoEvent) return -1;
  std::size_t row = 0;
  if (m_listed) {
    const auto found = std::find(m_events.begin(), m_events.end(), event);
    if (found == m_events.end()) return -1;
    row = static_cast<std::size_t>(found - m_events.begin());
  } else {
    if (event < m_first || event >= m_last) return -1;
    row = event - m_first;
  }
  return row < kMaximumRows ? static_cast<int>(row) : -1;
}

int EventsModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid() || !m_trace) return 0;
  const std::size_t rows = m_listed ? m_events.size() : m_last - m_first;
  return static_cast<int>(std::min(rows, kMaximumRows));
}

int EventsModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

QVariant EventsModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid)) {
    return {};
  }
  const EventIndex event = event_at(index.row());
  switch (role) {
    case Qt::DisplayRole:
      return text(event, index.column());
    case kValueRole:
      return value(event, index.column());
    case Qt::TextAlignmentRole: {
      const bool numeric = index.column() == kIndex || index.column() == kTime ||
                           index.column() == kDuration || index.column() == kSize;
      return static_cast<int>((numeric ? Qt::AlignRight : Qt::AlignLeft) | Qt::AlignVCenter);
    }
    default:
      return {};
  }
}

QVariant EventsModel::text(EventIndex event, int column) const {
  const EventStore& events = m_trace->events();
  switch (column) {
    case kIndex:
      return QString::number(event);
    case kTime:
      return microseconds_text(events.time_ns(event));
    case kDuration:
      return QString::number(events.duration_ns(event));
    case kKind:
      return to_qstring(event_kind_name(events.kind(event)));
    case kReason:
      return to_qstring(event_reason_name(events.reason(event)));
    case kFrom:
      return to_qstring(privilege_level_name(events.from(event)));
    case kTo:
      return to_qstring(privilege_level_name(events.to(event)));
    case kGuestRip:
      return hex_text(events.guest_rip(event));
    case kAddress:
      return hex_text(events.address(event));
    case kSize:
      return QString::number(events.size(event));
    case kValue:
      return hex_text(events.value(event));
    case kDetail:
      return to_qstring(m_trace->detail(event));
    default:
      return {};
  }
}

QVariant EventsModel::value(EventIndex event, int column) const {
  const EventStore& events = m_trace->events();
  switch (column) {
    case kIndex:
      return QVariant::fromValue<qulonglong>(event);
    case kTime:
      return QVariant::fromValue<qulonglong>(events.time_ns(event));
    case kDuration:
      return QVariant::fromValue<qulonglong>(events.duration_ns(event));
    case kGuestRip:
      return QVariant::fromValue<qulonglong>(events.guest_rip(event));
    case kAddress:
      return QVariant::fromValue<qulonglong>(events.address(event));
    case kSize:
      return QVariant::fromValue<qulonglong>(events.size(event));
    case kValue:
      return QVariant::fromValue<qulonglong>(events.value(event));
    default:
      return text(event, column);
  }
}

QVariant EventsModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole || orientation != Qt::Horizontal) return {};
  switch (section) {
    case kIndex:
      return tr("#");
    case kTime:
      return tr("Time (µs)");
    case kDuration:
      return tr("Duration (ns)");
    case kKind:
      return tr("Kind");
    case kReason:
      return tr("Reason");
    case kFrom:
      return tr("From");
    case kTo:
      return tr("To");
    case kGuestRip:
      return tr("Guest RIP");
    case kAddress:
      return tr("Port / address / vector");
    case kSize:
      return tr("Size");
    case kValue:
      return tr("Value");
    case kDetail:
      return tr("Detail");
    default:
      return {};
  }
}

}  // namespace vmlab::viz
