#include "vmlab/viz/models/trace_document.hpp"

namespace vmlab::viz {

namespace {

constexpr std::size_t kCostlyRips = 20;

}  // namespace

TraceDocument::TraceDocument(QObject* parent) : QObject(parent) {}

void TraceDocument::set_trace(std::shared_ptr<const TraceModel> trace, const QString& path) {
  m_trace = std::move(trace);
  m_path = path;
  m_selected = false;
  m_range = TimeRange{0, 0};
  recompute();
  emit trace_changed();
  emit range_changed();
}

TimeRange TraceDocument::run_range() const {
  if (!m_trace || m_trace->events().empty()) return TimeRange{0, 0};
  return TimeRange{0, m_trace->extent().end_ns};
}

void TraceDocument::set_range(TimeRange range) {
  const bool selected = !range.empty();
  if (selected == m_selected &&
      (!selected || (range.start_ns == m_range.start_ns && range.end_ns == m_range.end_ns))) {
    return;
  }
  m_selected = selected;
  m_range = selected ? range : TimeRange{0, 0};
  recompute();
  emit range_changed();
}

void TraceDocument::recompute() {
  if (!m_trace) {
    m_aggregates = Aggregates{};
    return;
  }
  // No selection: every event, including any before run_range() starts.
  m_aggregates = aggregate(*m_trace, m_selected ? m_range : TimeRange{},
                           AggregateOptions{.costly_rips = kCostlyRips});
}

}  // namespace vmlab::viz
