#include "vmlab/options.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/format.hpp"
#include "vmlab/runner.hpp"

namespace vmlab {

namespace {

static_assert(kGuestMemoryStep != 0 && kMaximumGuestMemory % kGuestMemoryStep == 0 &&
              kMinimumGuestMemory % kGuestMemoryStep == 0);

constexpr Choice<std::string_view> kCpuModes[] = {
    {"hvm", "hvm", "hardware-assisted: the guest kernel at CPL0"},
    {"full", "full",
     "trap-and-emulate: the same kernel deprivileged to CPL3, a monitor emulating what it may "
     "not do"},
    {"bt", "bt",
     "binary translation: the same kernel at CPL3, run only from code the VMM translated, its "
     "sensitive instructions rewritten"},
    {"para", "para",
     "paravirtualization: the kernel at CPL3 calls the monitor (hypercalls) and validated page "
     "tables"},
};

constexpr Choice<DiskModel> kDiskModels[] = {
    {"ata", DiskModel::Ata, "ATA PIO on ports 0x1F0-0x1F7 and 0x3F6, IRQ 14"},
    {"virtio", DiskModel::Virtio, "virtio-blk over virtio-mmio at 0xfeb00000, IRQ 5"},
    {"passthrough", DiskModel::Passthrough,
     "the passthrough controller: registers at 0xfea00000 (memory: no exits), IRQ 11, DMA "
     "through an IOMMU model; it belongs to one VM, which cannot be migrated"},
};

constexpr Choice<IrqchipModel> kIrqchips[] = {
    {"vmm", IrqchipModel::Vmm,
     "the VMM models them and injects interrupts with KVM_INTERRUPT: every tick is visible"},
    {"kernel", IrqchipModel::Kernel, "KVM models them in the kernel"},
};

constexpr Choice<bool> kIommuModes[] = {
    {"on", true, "translate and check every DMA"},
    {"off", false,
     "let the device DMA anywhere in guest RAM (a teaching switch: the run is marked UNSAFE)"},
};

std::string memory_rule() {
  return "between " + size_text(kMinimumGuestMemory) + " and " + size_text(kMaximumGuestMemory) +
         " in whole " + size_text(kGuestMemoryStep) + " steps, e.g. 64M, 64MiB or 1G";
}

std::string timeout_rule() {
  return "a number of seconds above 0 and at most " +
         std::to_string(static_cast<int>(kMaximumTimeoutSeconds)) + " (24 hours), e.g. 30 or 0.5";
}

char lower(char character) {
  return (character >= 'A' && character <= 'Z') ? static_cast<char>(character - 'A' + 'a')
                                                : character;
}

}  // namespace

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  std::size_t position = 0;
  std::uint64_t value = 0;
  bool overflow = false;
  while (position < text.size() && text[position] >= '0' && text[position] <= '9') {
    const auto digit = static_cast<std::uint64_t>(text[position] - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) overflow = true;
    value = value * 10 + digit;
    ++position;
  }
  if (position == 0) return std::nullopt;

  unsigned shift = 0;
  if (position < text.size()) {
    switch (lower(text[position])) {
      case 'k':
        shift = 10;
        break;
      case 'm':
        shift = 20;
        break;
      case 'g':
        shift = 30;
        break;
      case 't':
        shift = 40;
        break;
      default:
        break;
    }
    if (shift != 0) ++position;
  }
  std::string suffix;
  for (; position < text.size(); ++position)
    suffix += lower(text[position]);
  if (!suffix.empty() && suffix != "b" && !(shift != 0 && suffix == "ib")) return std::nullopt;

  // Compared before shifting, so that 2^64 and more cannot wrap around to a
  // size that passes.
  if (overflow || value > (std::numeric_limits<std::uint64_t>::max() >> shift)) {
    return std::numeric_limits<std::uint64_t>::max();
  }
  return value << shift;
}

std::string size_text(std::uint64_t bytes) {
  if (bytes != 0 && bytes % (1024 * GiB) == 0) return std::to_string(bytes / (1024 * GiB)) + "T";
  if (bytes != 0 && bytes % GiB == 0) return std::to_string(bytes / GiB) + "G";
  if (bytes != 0 && bytes % MiB == 0) return std::to_string(bytes / MiB) + "M";
  if (bytes != 0 && bytes % KiB == 0) return std::to_string(bytes / KiB) + "K";
  return std::to_string(bytes) + " bytes";
}

Result<std::uint64_t> parse_memory_size(std::string_view text) {
  const auto bytes = parse_byte_size(text);
  if (!bytes) {
    return Error{CliError::kInvalidValue,
                 single_quoted(text) + " is not a size: give one " + memory_rule()};
  }
  if (*bytes > kMaximumGuestMemory) {
    return Error{CliError::kInvalidValue, "guest memory of " + std::string(text) +
                                              " is more than the maximum, " +
                                              size_text(kMaximumGuestMemory)};
  }
  if (auto valid = check_memory_size(*bytes); !valid) return valid.error();
  return *bytes;
}

Status check_memory_size(std::uint64_t bytes) {
  if (bytes < kMinimumGuestMemory) {
    return Error{CliError::kInvalidValue, "guest memory of " + size_text(bytes) +
                                              " is less than the minimum, " +
                                              size_text(kMinimumGuestMemory)};
  }
  if (bytes > kMaximumGuestMemory) {
    return Error{CliError::kInvalidValue, "guest memory of " + size_text(bytes) +
                                              " is more than the maximum, " +
                                              size_text(kMaximumGuestMemory)};
  }
  if (bytes % kGuestMemoryStep != 0) {
    return Error{CliError::kInvalidValue,
                 "guest memory of " + size_text(bytes) + " is not a whole number of " +
                     size_text(kGuestMemoryStep) + " steps; use e.g. 64M or 1G"};
  }
  return {};
}

Result<std::uint64_t> parse_disk_size(std::string_view text) {
  const auto bytes = parse_byte_size(text);
  if (!bytes) {
    return Error{CliError::kInvalidValue,
                 single_quoted(text) +
                     " is not a size: give a whole number of 512-byte sectors in bytes or binary "
                     "units, e.g. 512, 64K, 64M or 2G"};
  }
  if (*bytes > devices::kMaximumImageSize) {
    return Error{CliError::kInvalidValue, "a disk of " + std::string(text) +
                                              " is more than the maximum, " +
                                              size_text(devices::kMaximumImageSize)};
  }
  if (*bytes == 0) {
    return Error{CliError::kInvalidValue, "a disk of " + std::string(text) + " has no sectors"};
  }
  if (*bytes % devices::kSectorSize != 0) {
    return Error{CliError::kInvalidValue,
                 "a disk of " + std::string(text) +
                     " is not a whole number of 512-byte sectors; use e.g. 64M"};
  }
  return *bytes;
}

Result<double> parse_timeout_seconds(std::string_view text) {
  double seconds = 0;
  // from_chars, unlike strtod, takes no leading space, sign or hex float.
  auto [end, error] =
      std::from_chars(text.data(), text.data() + text.size(), seconds, std::chars_format::general);
  if (error != std::errc() || end != text.data() + text.size() || !timeout_duration(seconds)) {
    return Error{CliError::kInvalidValue, single_quoted(text) + " is not " + timeout_rule()};
  }
  return seconds;
}

Result<std::chrono::milliseconds> timeout_duration(double seconds) {
  // The negated comparisons are also true for NaN.
  if (!std::isfinite(seconds) || !(seconds > 0) || !(seconds <= kMaximumTimeoutSeconds)) {
    return Error{CliError::kInvalidValue, "a timeout must be " + timeout_rule()};
  }
  // At most 8.64e7 ms here, far inside int64 and inside what wait_for adds to
  // steady_clock::now() in nanoseconds.
  const double milliseconds = std::max(1.0, std::ceil(seconds * 1000.0));
  return std::chrono::milliseconds(static_cast<std::int64_t>(milliseconds));
}

Result<std::uint64_t> parse_count(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  // from_chars takes a leading '-' for unsigned types and then fails; a '+'
  // it never takes.
  if (error == std::errc::result_out_of_range) {
    return Error{CliError::kInvalidValue,
                 single_quoted(text) + " is more than the largest count, " +
                     std::to_string(std::numeric_limits<std::uint64_t>::max())};
  }
  if (error != std::errc() || end != text.data() + text.size()) {
    return Error{CliError::kInvalidValue,
                 single_quoted(text) + " is not a count: give a whole number, e.g. 1000"};
  }
  return value;
}

Result<WorkloadSelection> parse_workload_selection(std::string_view text) {
  const std::size_t colon = text.find(':');
  WorkloadSelection selection{std::string(text.substr(0, colon)), std::nullopt};
  if (selection.name.empty()) {
    return Error{
        CliError::kInvalidValue,
        single_quoted(text) + " names no workload: give NAME or NAME:N, e.g. syscalls:1000"};
  }
  if (colon != std::string_view::npos) {
    auto count = parse_count(text.substr(colon + 1));
    if (!count) return with_context("bad count in " + single_quoted(text), count.error());
    selection.count = *count;
  }
  return selection;
}

Status check_workload_name(std::string_view name) {
  if (find_workload(std::string(name)) == nullptr) {
    return Error{CliError::kInvalidValue, "unknown workload " + single_quoted(name) +
                                              "; the built-in guest has: " + workload_list()};
  }
  return {};
}

std::span<const Choice<std::string_view>> cpu_mode_choices() {
  return kCpuModes;
}

std::span<const Choice<DiskModel>> disk_model_choices() {
  return kDiskModels;
}

std::span<const Choice<IrqchipModel>> irqchip_choices() {
  return kIrqchips;
}

std::span<const Choice<bool>> iommu_choices() {
  return kIommuModes;
}

std::string join_names(const std::vector<std::string_view>& names) {
  std::string joined;
  for (const auto name : names) {
    if (!joined.empty()) joined += ", ";
    joined += name;
  }
  return joined;
}

std::vector<std::string_view> split_list(std::string_view text) {
  std::vector<std::string_view> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    if (end > start) items.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

}  // namespace vmlab
