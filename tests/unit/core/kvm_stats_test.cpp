#include "vmlab/kvm_stats.hpp"

#include <gtest/gtest.h>
#include <linux/kvm.h>

#include <cstring>

namespace vmlab {
namespace {

// A stats image laid out as KVM_GET_STATS_FD documents it: header, id string,
// descriptors (each followed by name_size bytes of name), then data.
std::vector<std::uint8_t> make_image(
    const std::vector<std::pair<std::string, std::vector<std::uint64_t>>>& stats) {
  constexpr std::uint32_t kNameSize = 48;
  constexpr std::size_t kDescriptorBytes = 16;  // the kernel's layout, before the name
  const std::size_t stride = kDescriptorBytes + kNameSize;
  kvm_stats_header header{};
  header.name_size = kNameSize;
  header.num_desc = static_cast<std::uint32_t>(stats.size());
  header.id_offset = sizeof header;
  header.desc_offset = header.id_offset + kNameSize;
  header.data_offset = static_cast<std::uint32_t>(header.desc_offset + stride * stats.size());
  std::size_t data_words = 0;
  for (const auto& stat : stats)
    data_words += stat.second.size();
  std::vector<std::uint8_t> image(header.data_offset + data_words * 8);
  std::memcpy(image.data(), &header, sizeof header);
  std::memcpy(image.data() + header.id_offset, "kvm-1234/vcpu-0", 15);
  std::uint32_t data_offset = 0;
  for (std::size_t index = 0; index < stats.size(); ++index) {
    StatsDescriptorHeader descriptor{};
    descriptor.flags = KVM_STATS_TYPE_CUMULATIVE;
    descriptor.size = static_cast<std::uint16_t>(stats[index].second.size());
    descriptor.offset = data_offset;
    std::uint8_t* where = image.data() + header.desc_offset + index * stride;
    std::memcpy(where, &descriptor, sizeof descriptor);
    std::memcpy(where + kDescriptorBytes, stats[index].first.c_str(), stats[index].first.size());
    std::memcpy(image.data() + header.data_offset + data_offset, stats[index].second.data(),
                stats[index].second.size() * 8);
    data_offset += static_cast<std::uint32_t>(stats[index].second.size() * 8);
  }
  return image;
}

TEST(KvmStats, ParsesStoredImage) {
  auto reader = StatsReader::from_image(
      make_image({{"exits", {1234}}, {"io_exits", {56}}, {"histogram", {1, 2, 3}}}));
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  ASSERT_EQ(reader->descriptors().size(), 3u);
  EXPECT_EQ(reader->descriptors()[1].name, "io_exits");
  auto snapshot = reader->read();
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->value("exits"), 1234u);
  EXPECT_EQ(snapshot->value("io_exits"), 56u);
  EXPECT_EQ(snapshot->value("histogram"), 6u);
  EXPECT_EQ(snapshot->value("absent"), 0u);
}

TEST(KvmStats, DeltaSubtractsCumulativeCounters) {
  StatsSnapshot before{{{"exits", 100}, {"io_exits", 10}}, {}};
  StatsSnapshot after{{{"exits", 150}, {"io_exits", 10}, {"new", 7}}, {}};
  auto delta = stats_delta(before, after);
  EXPECT_EQ(delta.value("exits"), 50u);
  EXPECT_EQ(delta.value("io_exits"), 0u);
  EXPECT_EQ(delta.value("new"), 7u);
}

TEST(KvmStats, DeltaKeepsInstantValues) {
  StatsSnapshot before{{{"exits", 100}, {"halt_poll_ns_current", 500}}, {"halt_poll_ns_current"}};
  StatsSnapshot after{{{"exits", 150}, {"halt_poll_ns_current", 200}}, {"halt_poll_ns_current"}};
  auto delta = stats_delta(before, after);
  EXPECT_EQ(delta.value("exits"), 50u);
  EXPECT_EQ(delta.value("halt_poll_ns_current"), 200u) << "an instant value is not a counter";
}

TEST(KvmStats, RejectsTruncatedOrCorruptImages) {
  auto image = make_image({{"exits", {1}}});
  auto truncated = image;
  truncated.resize(truncated.size() - 4);
  auto reader = StatsReader::from_image(truncated);
  if (reader.ok()) {
    auto snapshot = reader->read();
    ASSERT_FALSE(snapshot.ok()) << "data past the end must be an error";
    EXPECT_EQ(snapshot.error().kind, KvmStatsError::kTruncated);
  } else {
    EXPECT_EQ(reader.error().kind, KvmStatsError::kTruncated);
  }
  auto header_only = StatsReader::from_image(std::vector<std::uint8_t>(8));
  ASSERT_FALSE(header_only.ok());
  EXPECT_EQ(header_only.error().kind, KvmStatsError::kTruncated);
  auto corrupt = image;
  reinterpret_cast<kvm_stats_header*>(corrupt.data())->num_desc = 1u << 30;
  auto corrupt_reader = StatsReader::from_image(corrupt);
  ASSERT_FALSE(corrupt_reader.ok());
  EXPECT_EQ(corrupt_reader.error().kind, KvmStatsError::kCorrupt);
}

}  // namespace
}  // namespace vmlab
