// `vmlab compare`: the same workloads across every available configuration,
// side by side (DESIGN.md section 8).
#pragma once

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "vmlab/runner.hpp"

namespace vmlab {

struct WorkloadRequest {
  std::string name;
  std::uint64_t count = 0;
};

// The configuration that is not a CPU mode of vmlab's: the same guest image
// and command line booted by QEMU under pure software emulation (-accel tcg),
// which executes no guest instruction directly (Popek and Goldberg's
// efficiency not met), measured beside the techniques that do.
inline constexpr const char* kQemuTcg = "qemu-tcg";

struct Configuration {
  std::string cpu;  // a CPU mode, or kQemuTcg
  IrqchipModel irqchip = IrqchipModel::Vmm;
  std::string disk_model;     // "ata", "virtio"; empty: no disk
  std::string label() const;  // "hvm", "hvm+kirq", "full/ata"
};

struct CompareOptions {
  std::vector<WorkloadRequest> workloads;  // empty: the default set
  std::vector<std::string> cpus;           // empty: every mode this build has
  std::vector<IrqchipModel> irqchips;      // empty: both
  // Each configuration once per disk model, on a scratch image; with models
  // and no workloads given, the disk workloads are the default set.
  std::vector<std::string> disk_models;
  std::uint64_t memory_size = 64 * MiB;
  double timeout_seconds = 60;
};

struct CompareRow {
  WorkloadRequest workload;
  Configuration configuration;
  bool ok = false;
  std::string failure;  // why the run did not produce a result
  std::uint64_t cycles = 0;
  double cycles_per_op = 0;
  double vm_exits_per_op = 0;       // exits the VMM handled
  double kvm_exits_per_op = 0;      // all exits, from KVM's vCPU stats
  double monitor_traps_per_op = 0;  // traps into the monitor (software modes)
  bool has_monitor = false;         // false: the mode has no monitor (hvm)
  bool emulator = false;            // a QEMU TCG row: no VM, no exits, no shares
  double hypercalls_per_op = 0;     // para: calls into the monitor the guest chose to make
  // Share of the run's wall time, percent: the guest running (any level), the
  // monitor (software modes), the VMM's own work, and the vCPU halted.
  double guest_share = 0, monitor_share = 0, vmm_share = 0, halted_share = 0;
  // Guest time split by the level the guest was at when it exited. In hvm
  // the VMM does not see kernel/user switches between exits, so this is an
  // attribution, not a measurement; it is exported, not tabulated.
  double user_share_at_exit = 0, kernel_share_at_exit = 0;
  std::optional<double> relative_to_hvm;  // cycles per op against the hvm row
  GuestRun run;
};

struct Comparison {
  std::string platform_line;
  std::vector<CompareRow> rows;
};

std::vector<WorkloadRequest> default_compare_workloads();
std::vector<WorkloadRequest> default_disk_workloads();
// "ata,virtio" -> models; an unknown one is an error naming the valid ones.
Result<std::vector<std::string>> parse_disk_model_list(const std::string& text);
// "hvm,full,qemu-tcg" -> CPU modes and kQemuTcg, the same way.
Result<std::vector<std::string>> parse_cpu_mode_list(const std::string& text);
// "syscalls:500,pio" -> requests; an unknown name is an error listing the valid ones.
Result<std::vector<WorkloadRequest>> parse_workload_list(const std::string& text);

using CompareProgress = std::function<void(
    std::size_t index, std::size_t total, const CompareRow* finished, const std::string& starting)>;

// The options' usage errors (memory size, timeout, CPU modes, disk models),
// found before anything runs: the one place they are judged, for `vmlab
// compare` and for run_comparison, which checks them too.
Status check_compare_options(const CompareOptions& options);
Result<Comparison> run_comparison(const CompareOptions& options, const CompareProgress& progress);
void print_comparison(const Comparison& comparison, std::ostream& out);
void write_comparison_json(const Comparison& comparison, std::ostream& out);

}  // namespace vmlab
