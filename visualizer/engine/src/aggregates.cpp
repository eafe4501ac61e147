#include "vmlab/viz/aggregates.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_map>

namespace vmlab::viz {

namespace {

// "12.345": nanoseconds as microseconds, to the nanosecond.
std::string microseconds(std::uint64_t nanoseconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%llu.%03llu",
                static_cast<unsigned long long>(nanoseconds / 1000),
                static_cast<unsigned long long>(nanoseconds % 1000));
  return text;
}

}  // namespace

std::uint64_t TransitionMatrix::total() const {
  std::uint64_t count = 0;
  for (const auto& row : m_cells) {
    for (const auto& cell : row)
      count += cell.count;
  }
  return count;
}

Aggregates aggregate(const TraceModel& model, TimeRange range, const AggregateOptions& options) {
  Aggregates result;
  result.range = range;
  const EventStore& events = model.events();
  const auto [first, last] = events.starting_in(range);
  result.events = last - first;

  constexpr std::size_t kReasons = static_cast<std::size_t>(EventReason::Count);
  constexpr std::size_t kKinds = static_cast<std::size_t>(EventKind::Count);
  std::array<std::array<KindReasonCount, kReasons>, kKinds> counts{};
  std::unordered_map<std::uint64_t, CostlyRip> rips;
  std::vector<std::uint64_t> traps_by_detail(model.info().details.size(), 0);
  std::array<std::uint64_t, kReasons> traps_without_detail{};
  std::uint64_t end = 0;
  for (EventIndex index = first; index < last; ++index) {
    const EventKind kind = events.kind(index);
    const EventReason reason = events.reason(index);
    const std::uint64_t duration = events.duration_ns(index);
    auto& count = counts[static_cast<std::size_t>(kind)][static_cast<std::size_t>(reason)];
    ++count.count;
    count.total_duration_ns += duration;
    if (kind == EventKind::VmExit && events.guest_rip(index) != 0) {
      CostlyRip& rip = rips[events.guest_rip(index)];
      ++rip.events;
      rip.total_duration_ns += duration;
    }
    if (kind == EventKind::MonitorTrap) {
      const std::uint32_t detail = events.detail(index);
      if (detail != 0 && detail < traps_by_detail.size()) {
        ++traps_by_detail[detail];
      } else {
        ++traps_without_detail[static_cast<std::size_t>(reason)];
      }
    }
    end = std::max(end, events.end_ns(index));
  }
  if (first < last) result.span_ns = end - events.time_ns(first);

  // Counts, by name first so that equal counts keep that order.
  std::vector<std::pair<std::pair<std::string_view, std::string_view>, KindReasonCount>> named;
  for (std::size_t kind = 0; kind < kKinds; ++kind) {
    for (std::size_t reason = 0; reason < kReasons; ++reason) {
      KindReasonCount count = counts[kind][reason];
      if (count.count == 0) continue;
      count.kind = static_cast<EventKind>(kind);
      count.reason = static_cast<EventReason>(reason);
      named.push_back({{event_kind_name(count.kind), event_reason_name(count.reason)}, count});
    }
  }
  std::sort(named.begin(), named.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [name, count] : named)
    result.counts.push_back(count);
  std::stable_sort(result.counts.begin(), result.counts.end(),
                   [](const auto& a, const auto& b) { return a.count > b.count; });

  for (const auto& [address, rip] : rips) {
    result.costly_rips.push_back(rip);
    result.costly_rips.back().guest_rip = address;
  }
  std::sort(result.costly_rips.begin(), result.costly_rips.end(), [](const auto& a, const auto& b) {
    return a.total_duration_ns != b.total_duration_ns ? a.total_duration_ns > b.total_duration_ns
                                                      : a.guest_rip < b.guest_rip;
  });
  if (result.costly_rips.size() > options.costly_rips) {
    result.costly_rips.resize(options.costly_rips);
  }

  // By text: a detail that reads like a reason's name is one cause with it.
  std::map<std::string, std::uint64_t, std::less<>> causes;
  for (std::size_t detail = 1; detail < traps_by_detail.size(); ++detail) {
    if (traps_by_detail[detail] != 0)
      causes[model.info().details[detail]] += traps_by_detail[detail];
  }
  for (std::size_t reason = 0; reason < kReasons; ++reason) {
    if (traps_without_detail[reason] == 0) continue;
    causes[std::string(event_reason_name(static_cast<EventReason>(reason)))] +=
        traps_without_detail[reason];
  }
  for (const auto& [cause, count] : causes)
    result.traps_by_detail.push_back({cause, count});
  std::stable_sort(result.traps_by_detail.begin(), result.traps_by_detail.end(),
                   [](const auto& a, const auto& b) { return a.count > b.count; });

  model.levels().for_each_transition(range, [&](const Transition& transition) {
    TransitionCell& cell = result.transitions.at(transition.from, transition.to);
    ++cell.count;
    cell.time_ns += transition.stay_ns;
  });
  return result;
}

void print_summary(const TraceModel& model, const Aggregates& aggregates, std::ostream& out) {
  const TraceInfo& trace = model.info();
  char line[256];
  out << "run: " << trace.run_description << "\n";
  if (model.truncated()) {
    out << "warning: " << model.truncation_message() << "; the event figures below cover only the "
        << model.events().size() << " events read\n";
  }
  out << aggregates.events << " events over " << microseconds(aggregates.span_ns) << " us";
  if (trace.dropped != 0) out << " (" << trace.dropped << " older events were dropped)";
  out << "\n\nevents by kind and reason:\n";
  // The reason column fits the longest reason shown.
  int reason_width = 20;
  for (const auto& count : aggregates.counts) {
    reason_width = std::max(reason_width, static_cast<int>(event_reason_name(count.reason).size()));
  }
  std::snprintf(line, sizeof line, "  %-20s %-*s %10s %14s %12s\n", "kind", reason_width, "reason",
                "count", "VMM time us", "us each");
  out << line;
  for (const auto& count : aggregates.counts) {
    const std::string kind(event_kind_name(count.kind));
    const std::string reason(event_reason_name(count.reason));
    std::snprintf(
        line, sizeof line, "  %-20s %-*s %10llu %14.1f %12.2f\n", kind.c_str(), reason_width,
        reason.c_str(), static_cast<unsigned long long>(count.count),
        static_cast<double>(count.total_duration_ns) / 1000.0,
        static_cast<double>(count.total_duration_ns) / 1000.0 / static_cast<double>(count.count));
    out << line;
  }
  std::uint64_t total = trace.halted_ns;
  for (auto time : trace.level_time_ns)
    total += time;
  if (total != 0) {
    out << "\ntime by privilege level (whole run):\n";
    auto share = [&](const char* name, std::uint64_t nanoseconds) {
      std::snprintf(line, sizeof line, "  %-14s %12.3f ms %6.1f%%\n", name,
                    static_cast<double>(nanoseconds) / 1e6,
                    100.0 * static_cast<double>(nanoseconds) / static_cast<double>(total));
      out << line;
    };
    for (std::size_t index = 0; index < trace.level_time_ns.size(); ++index) {
      if (trace.level_time_ns[index] == 0) continue;
      share(std::string(privilege_level_name(static_cast<PrivilegeLevel>(index))).c_str(),
            trace.level_time_ns[index]);
    }
    if (trace.halted_ns != 0) share("halted", trace.halted_ns);
  }
  if (aggregates.transitions.total() != 0) {
    out << "\ntransitions between levels (a VM exit that carries monitor work counts as the "
           "monitor's):\n";
    std::snprintf(line, sizeof line, "  %-14s %-14s %10s %16s\n", "from", "to", "count",
                  "time there us");
    out << line;
    for (std::size_t from = 0; from < kLaneCount; ++from) {
      for (std::size_t to = 0; to < kLaneCount; ++to) {
        const auto& cell = aggregates.transitions.at(static_cast<TimelineLane>(from),
                                                     static_cast<TimelineLane>(to));
        if (cell.count == 0) continue;
        const std::string from_name(lane_name(static_cast<TimelineLane>(from)));
        const std::string to_name(lane_name(static_cast<TimelineLane>(to)));
        std::snprintf(line, sizeof line, "  %-14s %-14s %10llu %16.1f\n", from_name.c_str(),
                      to_name.c_str(), static_cast<unsigned long long>(cell.count),
                      static_cast<double>(cell.time_ns) / 1000.0);
        out << line;
      }
    }
  }
  if (!aggregates.traps_by_detail.empty()) {
    out << "\nmonitor traps by cause:\n";
    for (const auto& [cause, count] : aggregates.traps_by_detail) {
      std::snprintf(line, sizeof line, "  %-40s %10llu\n", cause.c_str(),
                    static_cast<unsigned long long>(count));
      out << line;
    }
  }
  if (!aggregates.costly_rips.empty()) {
    out << "\nguest RIPs that cost the VMM most:\n";
    for (const auto& rip : aggregates.costly_rips) {
      std::snprintf(line, sizeof line, "  %#18llx %10llu exits %12.1f us\n",
                    static_cast<unsigned long long>(rip.guest_rip),
                    static_cast<unsigned long long>(rip.events),
                    static_cast<double>(rip.total_duration_ns) / 1000.0);
      out << line;
    }
  }
  if (!trace.platform_line.empty()) out << "\n" << trace.platform_line << "\n";
}

}  // namespace vmlab::viz
