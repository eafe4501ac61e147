// The values vmlab's options take, one grammar each: sizes, timeouts, counts,
// workload requests and the enumerated options. The CLI's parsers turn text
// into values with these functions, and the library's checks
// (check_run_options, check_compare_options) judge values with the same
// rules and messages, so a value is spelled, and refused, the same way
// wherever it comes from.
//
// Messages name the value, not the option: the caller knows which option it
// parsed and puts its name in front ("--mem: ..."). Every error is of kind
// CliError::kInvalidValue.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/address.hpp"
#include "vmlab/cli_error.hpp"
#include "vmlab/format.hpp"
#include "vmlab/machine.hpp"
#include "vmlab/pc_board.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

// --- Sizes: --mem and `disk create` ---

// Guest memory grows in these steps (kMinimumGuestMemory and
// kMaximumGuestMemory: machine.hpp).
inline constexpr std::uint64_t kGuestMemoryStep = 2 * MiB;

// The one size grammar: a whole number of bytes, or of K, M, G or T in
// binary units, the unit optionally followed by "iB" or "B", in any case
// (64M = 64MiB = 64MB = 64 * 2^20 bytes; 4096K; 1G; 67108864). nullopt for
// anything else (no sign, space, fraction or hexadecimal). A size past
// 2^64 - 1 bytes gives UINT64_MAX, which is above every limit vmlab has.
std::optional<std::uint64_t> parse_byte_size(std::string_view text);
// 64M, 3G, 512K, 1T as the messages show sizes; bytes when no unit fits.
std::string size_text(std::uint64_t bytes);

// --mem: a size from kMinimumGuestMemory to kMaximumGuestMemory in whole
// kGuestMemoryStep steps. The errors name the rule.
Result<std::uint64_t> parse_memory_size(std::string_view text);
Status check_memory_size(std::uint64_t bytes);
// `disk create`: a size of whole 512-byte sectors, at most
// devices::kMaximumImageSize (1T).
Result<std::uint64_t> parse_disk_size(std::string_view text);

// --- Timeouts ---

inline constexpr double kMaximumTimeoutSeconds =
    std::chrono::duration<double>(kMaximumTimeout).count();
// A number of seconds, finite, above 0 and at most kMaximumTimeoutSeconds:
// "30", "0.5", "2e3"; not "inf", "nan", "-1", "0x10" or "1e300".
Result<double> parse_timeout_seconds(std::string_view text);
// The timeout as Machine waits for it: rounded up to whole milliseconds, at
// least 1; an Error for a value parse_timeout_seconds refuses.
Result<std::chrono::milliseconds> timeout_duration(double seconds);

// --- Counts and workloads ---

// A whole number in decimal digits, 0 to 2^64 - 1: "1000"; not "-1", "+5",
// "0x10", "1e3" or "1,000".
Result<std::uint64_t> parse_count(std::string_view text);

// What `--workload NAME[:N]` asks for. The name is not checked here: a
// --guest of one's own may have workloads the built-in guest does not.
struct WorkloadSelection {
  std::string name;
  std::optional<std::uint64_t> count;  // the workload's default when empty
};
Result<WorkloadSelection> parse_workload_selection(std::string_view text);
// Whether the built-in guest has the workload `name`; the error lists them.
Status check_workload_name(std::string_view name);

// --- Enumerations ---

// One value an enumerated option takes: its spelling, the value it stands
// for, and what it means (a line of --help). Each option's values are one
// table, which the parser, the checks and the help all read.
template <typename Value>
struct Choice {
  std::string_view name;
  Value value;
  std::string_view meaning;
};

// The CPU modes this build has, in the order compare shows them (--cpu).
std::span<const Choice<std::string_view>> cpu_mode_choices();
// The disk's models (--disk-model).
std::span<const Choice<DiskModel>> disk_model_choices();
// Who models the PIC and the PIT (--irqchip).
std::span<const Choice<IrqchipModel>> irqchip_choices();
// Passthrough DMA through the IOMMU model or not (--iommu).
std::span<const Choice<bool>> iommu_choices();

// "a, b, c" for messages and help.
std::string join_names(const std::vector<std::string_view>& names);
// The comma-separated items of `text`, empty ones left out ("a,,b" is a, b).
std::vector<std::string_view> split_list(std::string_view text);

template <typename Value>
std::string choice_names(std::span<const Choice<Value>> choices) {
  std::vector<std::string_view> names;
  for (const auto& choice : choices)
    names.push_back(choice.name);
  return join_names(names);
}

// The value `text` names; the error says what the valid spellings are.
template <typename Value>
Result<Value> parse_choice(std::span<const Choice<Value>> choices, std::string_view text) {
  for (const auto& choice : choices) {
    if (choice.name == text) return choice.value;
  }
  return Error{CliError::kInvalidValue,
               single_quoted(text) + " is not one of " + choice_names(choices)};
}

// "a,b": the values of a comma-separated list, in its order; an empty list
// is an error too.
template <typename Value>
Result<std::vector<Value>> parse_choice_list(std::span<const Choice<Value>> choices,
                                             std::string_view text) {
  std::vector<Value> values;
  for (const auto item : split_list(text)) {
    auto value = parse_choice(choices, item);
    if (!value) return value.error();
    values.push_back(*value);
  }
  if (values.empty()) {
    return Error{CliError::kInvalidValue, "the list is empty: give one or more of " +
                                              choice_names(choices) + ", separated by commas"};
  }
  return values;
}

}  // namespace vmlab
