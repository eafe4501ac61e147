// Disk runs for the KVM tests: a scratch raw image, one run of a built-in
// disk workload on it, and what to print when a run goes wrong.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "guest_runs.hpp"
#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/runner.hpp"

namespace vmlab::testing {

constexpr std::uint64_t kImageSize = 4 * MiB;

// A fresh zero-filled image in the test's temporary directory, removed when
// the test ends.
class TemporaryImage {
 public:
  TemporaryImage() {
    std::string pattern = ::testing::TempDir() + "vmlab-disk-XXXXXX";
    const int descriptor = ::mkstemp(pattern.data());
    EXPECT_GE(descriptor, 0);
    if (descriptor >= 0) ::close(descriptor);
    m_path = pattern;
    auto created = devices::create_raw_image(m_path, kImageSize, /*overwrite=*/true);
    EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.error().message);
  }
  ~TemporaryImage() { ::unlink(m_path.c_str()); }
  TemporaryImage(const TemporaryImage&) = delete;
  TemporaryImage& operator=(const TemporaryImage&) = delete;

  const std::string& path() const { return m_path; }

  std::vector<std::uint8_t> contents() const {
    std::ifstream file(m_path, std::ios::binary);
    return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  }

 private:
  std::string m_path;
};

enum class Access { ReadWrite, ReadOnly };

// A disk workload on `image` through the disk `model`; no count runs the
// workload's default.
inline RunOptions disk_options(const TemporaryImage& image, const std::string& cpu,
                               const std::string& model, const std::string& workload,
                               std::optional<std::uint64_t> count,
                               const std::string& command_line = "",
                               Access access = Access::ReadWrite) {
  RunOptions options = workload_options(cpu, workload, 0, command_line);
  options.count = count;
  options.disk_path = image.path();
  options.disk_model = model;
  options.disk_readonly = access == Access::ReadOnly;
  return options;
}

inline GuestRun run_disk(const TemporaryImage& image, const std::string& cpu,
                         const std::string& model, const std::string& workload, std::uint64_t count,
                         const std::string& command_line = "", Access access = Access::ReadWrite) {
  return start_run(disk_options(image, cpu, model, workload, count, command_line, access));
}

inline std::string status_of(const GuestRun& run) {
  return run.result ? run.result->field("status") : "(no result line)";
}

inline std::string describe(const GuestRun& run) {
  std::string text = run.report.message + "\n";
  for (const auto& line : run.debug_lines)
    text += line + "\n";
  for (const auto& problem : run.device_problems)
    text += "device problem: " + problem + "\n";
  return text;
}

inline bool image_is_zero(const TemporaryImage& image) {
  const auto bytes = image.contents();
  return bytes.size() == kImageSize &&
         std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t byte) { return byte == 0; });
}

}  // namespace vmlab::testing
