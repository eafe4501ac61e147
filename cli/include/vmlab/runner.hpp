// One guest run, from options to a report: what `vmlab run` does, as a library
// so the tests and (later) `vmlab compare` use the same path.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmlab/events.hpp"
#include "vmlab/machine.hpp"
#include "vmlab/pc_board.hpp"
#include "vmlab/platform.hpp"

namespace vmlab {

struct WorkloadInfo {
  const char* name;
  std::uint64_t default_count;
  const char* description;
};

// The workloads the built-in guest understands.
std::span<const WorkloadInfo> builtin_workloads();
const WorkloadInfo* find_workload(const std::string& name);
// Whether a built-in workload needs a disk (--disk).
bool workload_needs_disk(const std::string& name);
// The host device a passthrough disk backed by `disk_path` is claimed as:
// one per image, whatever path names it.
std::string passthrough_device_name(const std::string& disk_path);
// What every output of a run with `--iommu off` says.
std::string unsafe_iommu_note();

// The CPU modes this build has, in the order compare shows them, and the same
// as "hvm, full" for messages.
std::vector<std::string> available_cpu_modes();
std::string cpu_mode_list();
// The built-in workloads' names as "hello, syscalls, ..." for messages.
std::string workload_list();

// The guest kernel built with vmlab and embedded in it.
std::span<const std::uint8_t> builtin_guest_image();

struct RunOptions {
  std::string cpu = "hvm";
  std::string workload = "hello";
  std::optional<std::uint64_t> count;  // the workload's default when empty
  std::string guest_path;              // empty: the built-in guest
  std::uint64_t memory_size = 64 * MiB;
  double timeout_seconds = 30.0;
  IrqchipModel irqchip = IrqchipModel::Vmm;
  bool umip = false;       // full: set CR4.UMIP so sgdt/sidt/sldt/str/smsw trap
  std::string trace_path;  // empty: no trace file (events are still counted)
  std::string extra_command_line;
  // A raw image for the guest's disk; empty: no disk.
  std::string disk_path;
  bool disk_readonly = false;
  std::string disk_model = "virtio";  // "ata", "virtio" or "passthrough"
  // Passthrough: DMA through the IOMMU model (false: `--iommu off`, a
  // teaching switch that marks the run unsafe).
  bool iommu = true;
  bool virtio_event_index = false;  // offer VIRTIO_F_EVENT_IDX
  // hvm: QueueNotify through a KVM ioeventfd, not an exit to the VMM.
  bool virtio_ioeventfd = true;
  std::function<void(std::uint8_t)> console_output;  // UART bytes; null discards
};

// The machine-readable result line a workload prints on port 0xE9, parsed.
struct WorkloadResult {
  std::string line;
  std::map<std::string, std::string> fields;
  std::string field(const std::string& name) const;
  std::uint64_t number(const std::string& name) const;  // 0 when absent or not a number
};
std::optional<WorkloadResult> parse_result_line(const std::string& line);

struct GuestRun {
  RunReport report;
  std::vector<std::string> debug_lines;
  std::optional<WorkloadResult> result;
  std::map<std::string, std::uint64_t> exits_by_reason;  // as the VMM saw them
  // Every VM exit the VMM handled: the times the VMM process ran for the
  // guest (in full and para each monitor trap and hypercall is one of them).
  std::uint64_t vm_exits() const {
    std::uint64_t total = 0;
    for (const auto& [reason, count] : exits_by_reason)
      total += count;
    return total;
  }
  std::map<std::string, std::uint64_t> traps_by_reason;  // monitor traps (software modes)
  std::uint64_t interrupts_injected = 0;
  std::uint64_t halts = 0;
  std::uint64_t monitor_traps = 0;
  std::uint64_t hypercalls = 0;
  // Wall time by privilege level (the recorder's attribution) and in hlt.
  std::array<std::uint64_t, static_cast<std::size_t>(PrivilegeLevel::Count)> level_time_ns{};
  std::uint64_t halted_ns = 0;
  std::string platform_line;
  std::string command_line;
  // The disk model's counters (PcBoard::disk_statistics) and what it refused.
  std::map<std::string, std::uint64_t> disk_statistics;
  std::vector<std::string> device_problems;
  std::uint64_t iommu_fault_events = 0;  // DMA the IOMMU model blocked (iommu-fault events)
  bool passthrough = false;  // the VM owned a passed-through device: it cannot be migrated
  bool iommu_off = false;    // ... and its DMA bypassed the IOMMU (platform_line says UNSAFE)
};

// Fails (without running) on bad options, an unreadable or malformed guest,
// or an unusable /dev/kvm; a guest that crashes or hangs is a successful
// GuestRun whose report says so.
Result<GuestRun> run_guest(const RunOptions& options);

std::string command_line_for(const RunOptions& options);

}  // namespace vmlab
