#include "vmlab/kvm_stats.hpp"

#include <linux/kvm.h>
#include <unistd.h>

#include <cstring>

namespace vmlab {

std::uint64_t StatsSnapshot::value(const std::string& name) const {
  auto found = values.find(name);
  return found == values.end() ? 0 : found->second;
}

StatsSnapshot stats_delta(const StatsSnapshot& before, const StatsSnapshot& after) {
  StatsSnapshot delta;
  delta.not_cumulative = after.not_cumulative;
  for (const auto& [name, value] : after.values) {
    const auto previous = before.value(name);
    const bool cumulative = after.not_cumulative.count(name) == 0;
    delta.values[name] = cumulative && value >= previous ? value - previous : value;
  }
  return delta;
}

Status StatsReader::read_at(std::uint64_t offset, std::span<std::uint8_t> out) const {
  if (m_fd >= 0) {
    // The stats fd may return fewer bytes than asked (it copies section by
    // section), so keep reading until the range is complete.
    std::size_t done = 0;
    while (done < out.size()) {
      auto count =
          pread(m_fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (count < 0 && errno == EINTR) continue;
      if (count < 0) {
        return Error::from_errno(KvmStatsError::kReadFailed, "read of KVM stats fd", errno);
      }
      if (count == 0) {
        return Error{KvmStatsError::kTruncated, "KVM stats fd ended before the data it describes"};
      }
      done += static_cast<std::size_t>(count);
    }
    return {};
  }
  if (offset > m_image.size() || out.size() > m_image.size() - offset) {
    return Error{KvmStatsError::kTruncated, "KVM stats image is truncated"};
  }
  std::memcpy(out.data(), m_image.data() + offset, out.size());
  return {};
}

Status StatsReader::parse() {
  kvm_stats_header header{};
  if (auto status = read_at(0, std::span(reinterpret_cast<std::uint8_t*>(&header), sizeof header));
      !status) {
    return status;
  }
  if (header.num_desc > 4096 || header.name_size == 0 || header.name_size > 1024) {
    return Error{KvmStatsError::kCorrupt, "KVM stats header looks corrupt"};
  }
  m_data_offset = header.data_offset;
  const std::size_t stride = sizeof(StatsDescriptorHeader) + header.name_size;
  std::vector<std::uint8_t> table(stride * header.num_desc);
  if (auto status = read_at(header.desc_offset, table); !status) return status;
  for (std::uint32_t index = 0; index < header.num_desc; ++index) {
    StatsDescriptorHeader descriptor{};
    const std::uint8_t* entry = table.data() + index * stride;
    std::memcpy(&descriptor, entry, sizeof descriptor);
    const char* name = reinterpret_cast<const char*>(entry + sizeof descriptor);
    m_descriptors.push_back(Descriptor{std::string(name, strnlen(name, header.name_size)),
                                       descriptor.flags, descriptor.size, descriptor.offset});
  }
  return {};
}

Result<StatsReader> StatsReader::open(int fd) {
  StatsReader reader;
  reader.m_fd = fd;
  if (auto status = reader.parse(); !status) return status.error();
  return reader;
}

Result<StatsReader> StatsReader::from_image(std::vector<std::uint8_t> image) {
  StatsReader reader;
  reader.m_image = std::move(image);
  if (auto status = reader.parse(); !status) return status.error();
  return reader;
}

Result<StatsSnapshot> StatsReader::read() const {
  StatsSnapshot snapshot;
  for (const auto& descriptor : m_descriptors) {
    std::vector<std::uint64_t> data(descriptor.size);
    auto bytes = std::span(reinterpret_cast<std::uint8_t*>(data.data()), data.size() * 8);
    if (auto status = read_at(std::uint64_t{m_data_offset} + descriptor.offset, bytes); !status) {
      return status.error();
    }
    std::uint64_t total = 0;
    for (auto value : data)
      total += value;
    snapshot.values[descriptor.name] = total;
    // KVM API, KVM_GET_STATS_FD: the type is in the low bits of the flags.
    if ((descriptor.flags & KVM_STATS_TYPE_MASK) != KVM_STATS_TYPE_CUMULATIVE) {
      snapshot.not_cumulative.insert(descriptor.name);
    }
  }
  return snapshot;
}

}  // namespace vmlab
