#include "vmlab/viz/trace_model.hpp"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>

namespace vmlab::viz {

namespace {

// Shares of the progress bar, by phase (what each took, roughly, loading a
// million events here: parsing dominates).
constexpr double kReadingShare = 0.7;
constexpr double kOrderingShare = 0.05;

Error cancelled() {
  return Error{TraceError::kCancelled, "loading the trace was cancelled"};
}

}  // namespace

double LoadProgress::fraction() const {
  const double part =
      total == 0 ? 0.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
  switch (phase) {
    case Phase::Reading:
      return kReadingShare * part;
    case Phase::Ordering:
      return kReadingShare + kOrderingShare * part;
    case Phase::Building:
      return kReadingShare + kOrderingShare + (1.0 - kReadingShare - kOrderingShare) * part;
  }
  return 0.0;
}

Result<TraceModel> TraceModel::load(std::istream& in, std::uint64_t total_bytes,
                                    const LoadProgressCallback& progress) {
  TraceModel model;
  bool too_many = false;
  TraceReadCallbacks callbacks;
  callbacks.event = [&](const Event& event) {
    if (model.m_events.size() == kMaximumEvents) {
      too_many = true;
      return;
    }
    model.m_events.append(event);
  };
  if (progress) {
    callbacks.progress = [&](std::uint64_t bytes) {
      return progress({.phase = LoadProgress::Phase::Reading, .done = bytes, .total = total_bytes});
    };
  }
  auto info = read_trace_events(in, callbacks);
  if (!info) return info.error();
  if (too_many) {
    return Error{TraceError::kTooManyEvents, "trace holds more than " +
                                                 std::to_string(kMaximumEvents) +
                                                 " events, more than the visualizer keeps"};
  }
  model.m_info = std::move(*info);
  if (!model.finish(progress)) return cancelled();
  return model;
}

Result<TraceModel> TraceModel::load_file(const std::string& path,
                                         const LoadProgressCallback& progress) {
  std::ifstream file(path);
  if (!file) return Error::from_errno(TraceError::kUnreadable, "cannot open trace " + path, errno);
  std::error_code size_error;
  const std::uintmax_t size = std::filesystem::file_size(path, size_error);
  auto model = load(file, size_error ? 0 : static_cast<std::uint64_t>(size), progress);
  if (!model) return Error{model.error().kind, path + ": " + model.error().message};
  return model;
}

TraceModel TraceModel::from_trace(const Trace& trace) {
  TraceModel model;
  model.m_info = static_cast<const TraceInfo&>(trace);
  for (const Event& event : trace.events)
    model.m_events.append(event);
  // Without a progress callback nothing cancels.
  [[maybe_unused]] const bool finished = model.finish({});
  return model;
}

bool TraceModel::finish(const LoadProgressCallback& progress) {
  const std::uint64_t count = m_events.size();
  if (progress && !progress({.phase = LoadProgress::Phase::Ordering, .done = 0, .total = count})) {
    return false;
  }
  m_events.sort_by_time();
  m_events.shrink_to_fit();
  if (!m_events.empty()) {
    std::uint64_t end = 0;
    for (EventIndex index = 0; index < m_events.size(); ++index)
      end = std::max(end, m_events.end_ns(index));
    m_extent = {m_events.time_ns(0), end};
  }
  std::function<bool(std::uint64_t)> built;
  if (progress) {
    built = [&](std::uint64_t done) {
      return progress({.phase = LoadProgress::Phase::Building, .done = done, .total = count});
    };
  }
  if (!build_timeline(m_events, m_timeline, built)) return false;
  return !progress ||
         progress({.phase = LoadProgress::Phase::Building, .done = count, .total = count});
}

std::string TraceModel::truncation_message() const {
  return vmlab::truncation_message(m_info, m_events.size());
}

std::size_t TraceModel::memory_bytes() const {
  std::size_t bytes = sizeof(*this) + m_events.memory_bytes() + m_timeline.memory_bytes();
  bytes += m_info.details.capacity() * sizeof(std::string);
  for (const auto& detail : m_info.details) {
    // A short string lives inside the std::string (libstdc++: 15 characters).
    if (detail.capacity() > std::string().capacity()) bytes += detail.capacity() + 1;
  }
  return bytes;
}

}  // namespace vmlab::viz
