// Reader for KVM's binary statistics (KVM API 4.133 KVM_GET_STATS_FD): exits
// that KVM handles in the kernel never reach the VMM, but they are counted here.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "vmlab/result.hpp"

namespace vmlab {

// Why KVM's binary statistics could not be read.
enum class KvmStatsError {
  kReadFailed = 1,  // reading the stats fd failed (system_errno)
  kTruncated,       // the fd or image ends before the data its header describes
  kCorrupt,         // the header holds values no kernel writes
};
constexpr const char* error_domain(KvmStatsError) {
  return "kvm stats";
}

struct StatsSnapshot {
  // Cumulative counters and instant values by name; histogram stats are summed.
  std::map<std::string, std::uint64_t> values;
  // Stats that are not cumulative counters (instant values, peaks): a delta
  // keeps their latest value instead of subtracting.
  std::set<std::string> not_cumulative;
  std::uint64_t value(const std::string& name) const;
};

// The difference `after - before` for cumulative stats (instant and peak
// stats keep their `after` value).
StatsSnapshot stats_delta(const StatsSnapshot& before, const StatsSnapshot& after);

// One descriptor as the kernel lays it out (KVM API, KVM_GET_STATS_FD): 16
// bytes, then name_size bytes of name. Not sizeof(kvm_stats_desc): in C++ the
// uapi header's flexible-array macro pads that struct to 20 bytes.
struct StatsDescriptorHeader {
  std::uint32_t flags;
  std::int16_t exponent;
  std::uint16_t size;
  std::uint32_t offset;
  std::uint32_t bucket_size;
};
static_assert(sizeof(StatsDescriptorHeader) == 16);

class StatsReader {
 public:
  // Parses the header and descriptors once; `fd` stays owned by the caller.
  static Result<StatsReader> open(int fd);
  // Parses from an in-memory image of the fd's contents (for tests).
  static Result<StatsReader> from_image(std::vector<std::uint8_t> image);
  Result<StatsSnapshot> read() const;

  struct Descriptor {
    std::string name;
    std::uint32_t flags;
    std::uint16_t size;  // number of u64 values
    std::uint32_t offset;
  };
  const std::vector<Descriptor>& descriptors() const { return m_descriptors; }

 private:
  int m_fd = -1;
  std::vector<std::uint8_t> m_image;  // used when m_fd < 0
  std::uint32_t m_data_offset = 0;
  std::vector<Descriptor> m_descriptors;
  Status parse();
  Status read_at(std::uint64_t offset, std::span<std::uint8_t> out) const;
};

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::KvmStatsError);
