// One guest run, from options to a report: what `vmlab run` does, as a library
// so the tests and (later) `vmlab compare` use the same path.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "vmlab/bt/translation_cache.hpp"
#include "vmlab/events.hpp"
#include "vmlab/file_descriptor.hpp"
#include "vmlab/machine.hpp"
#include "vmlab/options.hpp"
#include "vmlab/pc_board.hpp"
#include "vmlab/platform.hpp"

namespace vmlab {

// Where a workload can run. Most run under every CPU mode and on QEMU; a
// few need what only one technique has (hypercalls) or what one technique
// lacks (para's kernel has no CR8). Elsewhere the guest refuses them:
// status=error, exit status 2, a console line naming the modes they need.
enum class WorkloadScope { Everywhere, ParaOnly, NotPara };

struct WorkloadInfo {
  const char* name = nullptr;
  std::uint64_t default_count = 0;
  const char* description = nullptr;
  WorkloadScope scope = WorkloadScope::Everywhere;
};

// The workloads the built-in guest understands.
std::span<const WorkloadInfo> builtin_workloads();
const WorkloadInfo* find_workload(const std::string& name);
// Whether a built-in workload needs a disk (--disk).
bool workload_needs_disk(const std::string& name);
// Whether the built-in guest runs `workload` under `cpu` (a CPU mode, or
// "qemu-tcg": a native machine, no para) instead of refusing it.
bool workload_runs_under(const std::string& workload, const std::string& cpu);
// The host device a passthrough disk backed by `disk_path` is claimed as:
// one per image, whatever path names it.
std::string passthrough_device_name(const std::string& disk_path);
// What every output of a run with `--iommu off` says.
std::string unsafe_iommu_note();

// The CPU modes this build has (cpu_mode_choices()), in the order compare
// shows them, and the same as "hvm, full" for messages.
std::vector<std::string> available_cpu_modes();
std::string cpu_mode_list();
// The built-in workloads' names as "hello, syscalls, ..." for messages.
std::string workload_list();

// The guest kernel built with vmlab and embedded in it.
std::span<const std::uint8_t> builtin_guest_image();

// vmlab's own exit statuses (sysexits.h where one fits). A guest that ends
// through the exit port makes vmlab exit with guest_exit_status() instead,
// which is never one of these.
namespace exit_status {
inline constexpr int kUsage = 64;        // EX_USAGE: bad options, refused output paths
inline constexpr int kUnavailable = 69;  // EX_UNAVAILABLE: /dev/kvm unusable, bad guest image
inline constexpr int kGuestCrashed = 70;
inline constexpr int kVmmError = 71;
inline constexpr int kOutputError = 74;  // EX_IOERR: an output file could not be written
inline constexpr int kTimeout = 124;     // as timeout(1)
inline constexpr int kStopped = 130;     // 128 + SIGINT, as a shell reports a Ctrl-C
// Guest statuses 1 to 62 are passed through; 63 stands for 63 and above.
inline constexpr int kGuestStatusCap = 63;
}  // namespace exit_status

// The exit status of `vmlab run` for a guest that wrote `guest_status` to the
// exit port: 0 only for 0, the status itself up to 62, 63 for anything above
// (the port takes 32-bit values; the summary prints the value in full).
int guest_exit_status(std::uint32_t guest_status);
// vmlab's exit status for a finished run, by its outcome.
int run_exit_status(const RunReport& report);

// Limits the options are checked against before any VM exists (the memory
// size and timeout rules: options.hpp).
// The whole guest command line, without its terminating NUL (boot_info.h).
inline constexpr std::size_t kMaximumCommandLine = 4095;
// `--guest` reads the whole ELF into memory first.
inline constexpr std::uint64_t kMaximumGuestFileSize = 64 * MiB;

class RunStopper;

struct RunOptions {
  std::string cpu = "hvm";  // one of cpu_mode_choices()
  std::string workload = "hello";
  std::optional<std::uint64_t> count;  // the workload's default when empty
  std::string guest_path;              // empty: the built-in guest
  std::uint64_t memory_size = 64 * MiB;
  double timeout_seconds = 30.0;
  IrqchipModel irqchip = IrqchipModel::Vmm;
  bool umip = false;  // full: set CR4.UMIP so sgdt/sidt/sldt/str/smsw trap
  HypervisorLeaves hypervisor_leaves = HypervisorLeaves::Vmlab;  // tests: Host
  std::string trace_path;  // empty: no trace file (events are still counted)
  // bt: write every block the translator made, guest and translated code
  // side by side, to this file when the run ends (empty: none).
  std::string translations_path;
  std::string console_path;  // empty: no console file (console_output still sees the bytes)
  // Stream every event here as it happens (a FIFO or a file; empty: none):
  // vmlab-viz's live view reads it (live_trace.hpp).
  std::string live_path;
  std::string extra_command_line;
  // A raw image for the guest's disk; empty: no disk.
  std::string disk_path;
  bool disk_readonly = false;
  std::string disk_model = "virtio";  // one of disk_model_choices()
  // Passthrough: DMA through the IOMMU model (false: `--iommu off`, a
  // teaching switch that marks the run unsafe).
  bool iommu = true;
  bool virtio_event_index = false;  // offer VIRTIO_F_EVENT_IDX
  // hvm: QueueNotify through a KVM ioeventfd, not an exit to the VMM.
  bool virtio_ioeventfd = true;
  std::function<void(std::uint8_t)> console_output;  // UART bytes; null discards
  // Ends the run early and cleanly when asked (null: it runs to its end).
  RunStopper* stopper = nullptr;
  // Ask the guest to mark its measured interval on port 0xE9 (window=1,
  // guest/README.md) and keep what the VMM counted inside it
  // (GuestRun::window): the benchmark suite's per-operation figures without
  // the boot around them.
  bool measurement_window = false;
  // Count the guest's instructions by single-stepping the whole run
  // (GuestRun::census): every instruction is an exit, so this is for small
  // runs (`vmlab scorecard`'s efficiency). hvm steps through
  // KVM_SET_GUEST_DEBUG; full, bt and para through the monitor's own TF and
  // its #DB stub.
  bool instruction_census = false;
};

// What the VMM counted between the guest's VMLAB-WINDOW begin line and the
// empty line before its end line: the workload's measured loop, and the one
// exit of that empty line's byte. The
// VMM's own time is the window's wall time less every other level's and the
// halted time (as for a whole run: Machine::run).
struct MeasurementWindow {
  std::uint64_t wall_ns = 0;
  std::array<std::uint64_t, static_cast<std::size_t>(PrivilegeLevel::Count)> level_time_ns{};
  std::uint64_t halted_ns = 0;
  std::uint64_t vm_exits = 0;
  std::uint64_t monitor_traps = 0;
  std::uint64_t hypercalls = 0;
};

// Ends a run cleanly from another thread: `vmlab run` asks it on the first
// Ctrl-C or SIGTERM (how vmlab-viz's Stop ends a live run). A request made
// before the machine exists ends the run as it starts.
class RunStopper {
 public:
  void request_stop();
  bool requested() const;
  // run_guest: the machine while it runs; null once it has.
  void attach(Machine* machine);

 private:
  mutable std::mutex m_lock;
  Machine* m_machine = nullptr;
  bool m_requested = false;
};

// While it lives, the first SIGINT or SIGTERM asks `stopper` to end the run
// (and says so on stderr); a second one abandons it as before (temporary
// outputs removed, the signal's default action).
class StopOnSignals {
 public:
  explicit StopOnSignals(RunStopper& stopper);
  ~StopOnSignals();
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  FileDescriptor m_wake_read;
  FileDescriptor m_wake_write;
  std::thread m_watcher;
};

// The machine-readable result line a workload prints on port 0xE9, parsed.
struct WorkloadResult {
  std::string line;
  std::map<std::string, std::string> fields;
  std::string field(const std::string& name) const;
  std::uint64_t number(const std::string& name) const;  // 0 when absent or not a number
};
std::optional<WorkloadResult> parse_result_line(const std::string& line);
// A debug-console line that starts with `prefix` ("VMLAB-RESULT ",
// "VMLAB-DMA "), as its name=value fields; nullopt for any other line.
std::optional<std::map<std::string, std::string>> parse_debug_line_fields(const std::string& line,
                                                                          std::string_view prefix);
// A result line as runs on different machines and techniques must agree on
// it: without its ` cycles=N` (the guest's own rdtsc differs run to run).
std::string comparable_result_line(const std::string& line);

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
  // Boot, from run_guest's start (the VMM starting: KVM opened, VM, board and
  // memory made, the ELF loaded): to the first KVM_RUN, when the guest's
  // first instruction runs, and to the guest's result line on port 0xE9
  // (zero if it printed none).
  std::chrono::nanoseconds to_first_entry{0};
  std::chrono::nanoseconds to_result_line{0};
  // RunOptions::measurement_window: the counts inside the guest's window
  // (none if the guest printed no complete window).
  std::optional<MeasurementWindow> window;
  // RunOptions::instruction_census: what the single steps counted.
  std::optional<InstructionCensus> census;
  // The disk model's counters (PcBoard::disk_statistics) and what it refused.
  std::map<std::string, std::uint64_t> disk_statistics;
  std::vector<std::string> device_problems;
  std::uint64_t iommu_fault_events = 0;  // DMA the IOMMU model blocked (iommu-fault events)
  bool passthrough = false;  // the VM owned a passed-through device: it cannot be migrated
  bool iommu_off = false;    // ... and its DMA bypassed the IOMMU (platform_line says UNSAFE)
  // bt: the translator's and the translation cache's counters at the end.
  std::optional<bt::Statistics> translation;
  // --live: the events streamed and those the reader fell behind on; why the
  // stream ended early, if it did (the run itself went on).
  std::uint64_t live_streamed = 0;
  std::uint64_t live_dropped = 0;
  std::string live_error;
};

// What an output file is allowed to replace.
enum class OutputKind {
  Console,  // the guest's serial console: an empty file or a text file (no NUL byte)
  Report,   // a trace, comparison or export: an empty file or one vmlab wrote
};

// A file an output must never replace: an input of the same command, named
// by its option ("--disk", "--guest", "the trace").
struct ProtectedFile {
  std::string option;
  std::string path;
};

// A file an option (--trace, --console, --json, -o) writes, safely: create()
// checks everything first and refuses a target that is not a regular file
// (CliError::kOutputNotAFile), is one of the command's inputs
// (kConflictingOptions), is write-protected, locked by another vmlab (a disk
// image in use) or holds something other than an earlier output of this kind
// (a disk image, an ELF: kOutputProtected), or cannot be made
// (kOutputUnwritable). The output goes to a temporary file beside the target, and
// commit() renames it over the target; a command that fails before commit()
// leaves the target as it was.
class OutputFile {
 public:
  static Result<OutputFile> create(const std::string& path, std::string option, OutputKind kind,
                                   std::vector<ProtectedFile> protected_files = {});

  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&& other) noexcept;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile();  // removes the temporary file unless committed

  std::ostream& stream() { return *m_stream; }
  const std::string& path() const { return m_path; }
  // The file commit() replaces: the path, or what a symbolic link points to.
  const std::string& target() const { return m_target; }

  // Checks the target again and renames the output over it. An error (a
  // write that failed, kOutputUnwritable; a target that changed, as
  // create() would refuse it) leaves the target untouched.
  Status commit();

 private:
  OutputFile() = default;
  void discard();

  std::string m_path;
  std::string m_option;
  OutputKind m_kind = OutputKind::Report;
  std::vector<ProtectedFile> m_protected;
  std::string m_target;
  std::string m_temporary;  // empty once committed or discarded
  int m_signal_slot = -1;   // where a signal handler finds m_temporary to remove it
  std::unique_ptr<std::ofstream> m_stream;
};

// Installs handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT that remove the
// outputs' temporary files, then let the signal end the process as before:
// an interrupted run leaves its targets as they were and nothing beside them.
void remove_temporary_outputs_on_signals();

// A scratch file a command makes for itself (compare's disk image): removed
// when this goes out of scope, and by the handlers above when a signal ends
// the process first (a cancelled `vmlab compare --disk-model` left its
// 64 MiB image in /tmp).
class ScratchFile {
 public:
  explicit ScratchFile(std::string path);
  ~ScratchFile();
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::string& path() const { return m_path; }

 private:
  std::string m_path;
  int m_signal_slot = -1;
};

// The files one run writes; each present when its option was given.
struct RunOutputs {
  FileDescriptor live;  // --live, open from the start: it is written as the run goes
  std::optional<OutputFile> trace;
  std::optional<OutputFile> console;
  std::optional<OutputFile> translations;
  Status commit();  // the console first: it matters most when the trace cannot be written
};

// Usage errors in the options, found without opening anything: unknown CPU
// mode, workload or disk model, memory size, timeout, command line
// (CliError::kInvalidValue), option combinations (kConflictingOptions). The one place a run's
// options are judged: `vmlab run` refuses what this refuses, with its message, and run_guest does
// too.
Status check_run_options(const RunOptions& options);
// Checks and opens the run's --trace and --console files: never the run's
// --guest or --disk, nor each other.
Result<RunOutputs> open_run_outputs(const RunOptions& options);

// Fails (without running) on bad options, an unreadable or malformed guest,
// or an unusable /dev/kvm (the error of the module that found it, its kind
// kept); a guest that crashes or hangs is a successful
// GuestRun whose report says so. The trace and console go to `outputs`
// (from open_run_outputs), which the caller commits.
Result<GuestRun> run_guest(const RunOptions& options, RunOutputs& outputs);
// The same, opening the outputs first and committing them after the run.
Result<GuestRun> run_guest(const RunOptions& options);

// The guest ELF at `path`: a regular file (CliError::kGuestNotAFile: not a
// FIFO, device or directory, which could block or never end) of at most
// kMaximumGuestFileSize bytes (kGuestTooLarge); kGuestUnreadable when it
// cannot be opened or read.
Result<std::vector<std::uint8_t>> read_guest_file(const std::string& path);

std::string command_line_for(const RunOptions& options);

}  // namespace vmlab
