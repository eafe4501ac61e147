#include "vmlab/runner.hpp"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "vmlab/boot.hpp"
#include "vmlab/bt/bt_mode.hpp"
#include "vmlab/devices/passthrough_controller.hpp"
#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/elf_loader.hpp"
#include "vmlab/file_descriptor.hpp"
#include "vmlab/format.hpp"
#include "vmlab/full/full_mode.hpp"
#include "vmlab/live_trace.hpp"
#include "vmlab/modes/hvm.hpp"
#include "vmlab/para/para_mode.hpp"

extern "C" const std::uint8_t vmlab_builtin_guest_start[];
extern "C" const std::uint8_t vmlab_builtin_guest_end[];

namespace vmlab {

namespace {

constexpr WorkloadInfo kWorkloads[] = {
    {"hello", 1, "greeting from the kernel and from a user task"},
    {"syscalls", 1000, "N null system calls from user mode"},
    {"pagefaults", 256, "N demand-paging faults from user mode"},
    {"compute", 10'000'000, "N iterations of an integer mix in user mode"},
    {"kernel-compute", 1'000'000,
     "N iterations of compute's integer mix in kernel mode (the same check)"},
    {"kernel-smc", 1000,
     "N rounds of a kernel function rewritten and called (self-modifying code: a translator "
     "must drop stale translations)"},
    {"cli-sti", 1000, "N cli/sti pairs in the kernel"},
    {"pio", 1000, "N port reads of the UART scratch register"},
    {"timer", 10, "wait for N timer interrupts (PIT at 100 Hz)"},
    {"pio-out", 1000, "N port writes of the UART scratch register (outb)"},
    {"cr8-write", 1000, "N writes of CR8, the task priority register, in the kernel (not para)",
     WorkloadScope::NotPara},
    {"call-ret", 10000, "N call/ret pairs in the kernel"},
    {"divide-error", 1000, "N divide-by-zero faults in the kernel, each handled and resumed"},
    {"pte-update", 1000,
     "N changes of a present kernel mapping (set_pte, flush_tlb_single, read through it)"},
    {"page-fault", 1000,
     "N loads from a not-present kernel page, each #PF handled by skipping the load (no mapping "
     "changes)"},
    {"pte-write", 1000, "N stores to a present kernel page-table entry, without invlpg"},
    {"hypercall", 1000, "N null hypercalls (SCHED_OP yield; needs --cpu para)",
     WorkloadScope::ParaOnly},
    {"interrupts", 100,
     "cost of N timer interrupts taken by a kernel loop (PIT at 100 Hz; cycles = the excess)"},
    {"rtc", 10, "N reads of the MC146818 real-time clock, then its format and tick checked"},
    {"fault", 1, "test: the kernel takes an unexpected exception (status 3)"},
    {"segfault", 1, "test: the user task touches unmapped memory (status 4)"},
    {"probes", 1, "the x86 holes: sensitive, unprivileged instructions in kernel mode"},
    {"hostile", 1, "attacks on the monitor and privileged state; each must fault"},
    {"disk-write", 256, "write a pattern to N sectors of the disk (needs --disk)"},
    {"disk-read", 256, "read N sectors of the disk and check the pattern (needs --disk)"},
    {"disk-verify", 256, "write, read back and compare N sectors (needs --disk)"},
    {"dma-attack", 1,
     "ask the passthrough disk to DMA into memory the guest does not own (needs --disk "
     "and --disk-model passthrough)"},
};

// Events kept for --trace: about 14 MiB of records.
constexpr std::size_t kTraceCapacity = std::size_t{256} * 1024;

// `path` opened for reading with O_NONBLOCK, so that a FIFO given by mistake
// does not block the open: the callers fstat it and refuse anything but a
// regular file. Invalid, with errno set, when the open failed.
FileDescriptor open_to_inspect(const std::string& path) {
  int descriptor;
  do {
    descriptor = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  } while (descriptor < 0 && errno == EINTR);
  return FileDescriptor(descriptor);
}

// Reads until `size` bytes are in `out` or the file ends; the bytes read, or
// -1 with errno set.
ssize_t read_fully(const FileDescriptor& descriptor, void* out, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t count = ::read(descriptor.get(), static_cast<char*>(out) + done, size - done);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return -1;
    if (count == 0) break;
    done += static_cast<std::size_t>(count);
  }
  return static_cast<ssize_t>(done);
}

std::unique_ptr<CpuMode> make_mode(const RunOptions& options) {
  const std::string& name = options.cpu;
  if (name == "hvm") return std::make_unique<modes::HvmMode>(options.instruction_census);
  if (name == "full") {
    full::FullModeOptions mode_options;
    mode_options.umip = options.umip;
    mode_options.census = options.instruction_census;
    mode_options.syscall_arrives_as_page_fault = detect_backend("/sys/module") == "kvm_pvm";
    return std::make_unique<full::FullMode>(mode_options);
  }
  if (name == "bt") {
    bt::BtModeOptions mode_options;
    mode_options.umip = options.umip;
    mode_options.census = options.instruction_census;
    mode_options.syscall_arrives_as_page_fault = detect_backend("/sys/module") == "kvm_pvm";
    return std::make_unique<bt::BtMode>(mode_options);
  }
  if (name == "para") {
    para::ParaModeOptions mode_options;
    mode_options.census = options.instruction_census;
    mode_options.syscall_arrives_as_page_fault = detect_backend("/sys/module") == "kvm_pvm";
    return std::make_unique<para::ParaMode>(mode_options);
  }
  return nullptr;
}

}  // namespace

std::span<const WorkloadInfo> builtin_workloads() {
  return kWorkloads;
}

std::vector<std::string> available_cpu_modes() {
  std::vector<std::string> modes;
  for (const auto& mode : cpu_mode_choices())
    modes.emplace_back(mode.value);
  return modes;
}

std::string cpu_mode_list() {
  return choice_names(cpu_mode_choices());
}

std::string workload_list() {
  std::vector<std::string_view> names;
  for (const auto& workload : builtin_workloads())
    names.emplace_back(workload.name);
  return join_names(names);
}

const WorkloadInfo* find_workload(const std::string& name) {
  for (const auto& workload : kWorkloads) {
    if (name == workload.name) return &workload;
  }
  return nullptr;
}

bool workload_needs_disk(const std::string& name) {
  return name.rfind("disk-", 0) == 0 || name == "dma-attack";
}

std::string passthrough_device_name(const std::string& disk_path) {
  std::error_code error;
  const auto canonical = std::filesystem::weakly_canonical(disk_path, error);
  return "backed by " + (error ? disk_path : canonical.string());
}

std::string unsafe_iommu_note() {
  return "UNSAFE: --iommu off, the passthrough device may DMA anywhere in guest RAM";
}

std::span<const std::uint8_t> builtin_guest_image() {
  return {vmlab_builtin_guest_start,
          static_cast<std::size_t>(vmlab_builtin_guest_end - vmlab_builtin_guest_start)};
}

int guest_exit_status(std::uint32_t guest_status) {
  if (guest_status >= static_cast<std::uint32_t>(exit_status::kGuestStatusCap)) {
    return exit_status::kGuestStatusCap;
  }
  return static_cast<int>(guest_status);
}

int run_exit_status(const RunReport& report) {
  switch (report.outcome) {
    case RunOutcome::GuestExited:
      return guest_exit_status(report.exit_value);
    case RunOutcome::GuestCrashed:
      return exit_status::kGuestCrashed;
    case RunOutcome::Timeout:
      return exit_status::kTimeout;
    case RunOutcome::Stopped:
      return exit_status::kStopped;
    case RunOutcome::VmmError:
      return exit_status::kVmmError;
  }
  return exit_status::kVmmError;
}

namespace {

static_assert(kMaximumCommandLine == VMLAB_BOOT_CMDLINE_MAX - 1);
static_assert(exit_status::kGuestStatusCap < exit_status::kUsage);

}  // namespace

Status check_run_options(const RunOptions& options) {
  if (auto mode = parse_choice(cpu_mode_choices(), options.cpu); !mode) {
    return with_context("--cpu", mode.error());
  }
  if (options.guest_path.empty()) {
    if (auto known = check_workload_name(options.workload); !known) return known;
  }
  if (auto timeout = timeout_duration(options.timeout_seconds); !timeout) {
    return with_context("--timeout", timeout.error());
  }
  if (auto memory = check_memory_size(options.memory_size); !memory) {
    return with_context("--mem", memory.error());
  }
  if (!options.translations_path.empty() && options.cpu != "bt") {
    return Error{CliError::kConflictingOptions,
                 "--translations applies to --cpu bt, the only mode that translates code"};
  }
  if (options.umip && options.cpu != "full" && options.cpu != "bt") {
    return Error{CliError::kConflictingOptions,
                 "--umip applies to --cpu full and bt (an hvm guest sets CR4.UMIP itself)"};
  }
  const std::string command_line = command_line_for(options);
  if (command_line.size() > kMaximumCommandLine) {
    return Error{CliError::kInvalidValue,
                 "the guest command line would be " + std::to_string(command_line.size()) +
                     " bytes, more than the boot protocol's " +
                     std::to_string(kMaximumCommandLine) + "; shorten --cmdline (" +
                     std::to_string(options.extra_command_line.size()) + " bytes)"};
  }
  if (command_line.find('\0') != std::string::npos) {
    return Error{CliError::kInvalidValue, "--cmdline cannot contain a NUL byte"};
  }

  if (auto model = parse_choice(disk_model_choices(), options.disk_model); !model) {
    return with_context("--disk-model", model.error());
  }
  const bool has_disk = !options.disk_path.empty();
  if (!has_disk) {
    if (options.guest_path.empty() && workload_needs_disk(options.workload)) {
      return Error{
          CliError::kConflictingOptions,
          options.workload + " needs --disk PATH; make one with `vmlab disk create disk.img 64M`"};
    }
    // A disk setting other than its default means nothing without a disk;
    // the user who gave one expects a disk.
    if (options.disk_readonly) {
      return Error{CliError::kConflictingOptions,
                   "--disk-readonly applies to a disk (--disk PATH)"};
    }
    if (options.disk_model != RunOptions{}.disk_model) {
      return Error{
          CliError::kConflictingOptions,
          "--disk-model applies to a disk (--disk PATH --disk-model " + options.disk_model + ")"};
    }
  }
  if (options.virtio_event_index && (!has_disk || options.disk_model != "virtio")) {
    return Error{CliError::kConflictingOptions,
                 "--virtio-event-idx applies to a virtio disk (--disk PATH --disk-model virtio)"};
  }
  if (!options.iommu && (!has_disk || options.disk_model != "passthrough")) {
    return Error{
        CliError::kConflictingOptions,
        "--iommu off applies to a passthrough disk (--disk PATH --disk-model passthrough)"};
  }
  if (options.workload == "dma-attack" && options.guest_path.empty() &&
      (!has_disk || options.disk_model != "passthrough")) {
    return Error{CliError::kConflictingOptions,
                 "dma-attack needs the passthrough disk: --disk PATH --disk-model passthrough"};
  }
  return {};
}

Result<std::vector<std::uint8_t>> read_guest_file(const std::string& path) {
  const std::string named = "guest '" + path + "'";
  const FileDescriptor descriptor = open_to_inspect(path);
  if (!descriptor.valid()) {
    const int error = errno;
    return Error::from_errno(CliError::kGuestUnreadable, "cannot open " + named, error);
  }
  struct stat status {};
  if (::fstat(descriptor.get(), &status) != 0) {
    const int error = errno;
    return Error::from_errno(CliError::kGuestUnreadable, "cannot inspect " + named, error);
  }
  if (S_ISDIR(status.st_mode)) {
    return Error{CliError::kGuestNotAFile,
                 named + " is a directory; give the path of an ELF64 file"};
  }
  if (!S_ISREG(status.st_mode)) {
    return Error{CliError::kGuestNotAFile,
                 named +
                     " is not a regular file (a FIFO, device or socket); give the path of an "
                     "ELF64 file"};
  }
  const auto size = static_cast<std::uint64_t>(status.st_size);
  if (size > kMaximumGuestFileSize) {
    return Error{CliError::kGuestTooLarge,
                 named + " is " + std::to_string(size) + " bytes, more than vmlab's limit of " +
                     size_text(kMaximumGuestFileSize) + "iB for a guest image"};
  }
  // At most the size fstat gave: a file that grows meanwhile is cut there,
  // one that shrinks is what inspect_elf then judges.
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  const ssize_t count = read_fully(descriptor, bytes.data(), bytes.size());
  if (count < 0) {
    const int error = errno;
    return Error::from_errno(CliError::kGuestUnreadable, "cannot read " + named, error);
  }
  bytes.resize(static_cast<std::size_t>(count));
  return bytes;
}

std::string WorkloadResult::field(const std::string& name) const {
  auto found = fields.find(name);
  return found == fields.end() ? std::string() : found->second;
}

std::uint64_t WorkloadResult::number(const std::string& name) const {
  const std::string text = field(name);
  std::uint64_t value = 0;
  const bool hex = text.rfind("0x", 0) == 0;
  const char* begin = text.data() + (hex ? 2 : 0);
  auto [end, error] = std::from_chars(begin, text.data() + text.size(), value, hex ? 16 : 10);
  return error == std::errc() && end == text.data() + text.size() ? value : 0;
}

std::optional<std::map<std::string, std::string>> parse_debug_line_fields(const std::string& line,
                                                                          std::string_view prefix) {
  if (line.rfind(prefix, 0) != 0) return std::nullopt;
  std::map<std::string, std::string> fields;
  std::size_t position = prefix.size();
  while (position < line.size()) {
    const std::size_t end = std::min(line.find(' ', position), line.size());
    const std::string token = line.substr(position, end - position);
    const std::size_t equals = token.find('=');
    if (equals != std::string::npos) fields[token.substr(0, equals)] = token.substr(equals + 1);
    position = end + 1;
  }
  return fields;
}

std::optional<WorkloadResult> parse_result_line(const std::string& line) {
  auto fields = parse_debug_line_fields(line, "VMLAB-RESULT ");
  if (!fields) return std::nullopt;
  return WorkloadResult{line, std::move(*fields)};
}

std::string comparable_result_line(const std::string& line) {
  std::string text;
  std::size_t position = 0;
  while (position < line.size()) {
    const std::size_t end = std::min(line.find(' ', position), line.size());
    const std::string_view token(line.data() + position, end - position);
    if (token.rfind("cycles=", 0) != 0 || position == 0) {
      if (!text.empty()) text += ' ';
      text += token;
    }
    position = end + 1;
  }
  return text;
}

bool workload_runs_under(const std::string& workload, const std::string& cpu) {
  const WorkloadInfo* info = find_workload(workload);
  switch (info == nullptr ? WorkloadScope::Everywhere : info->scope) {
    case WorkloadScope::Everywhere:
      return true;
    case WorkloadScope::ParaOnly:
      return cpu == "para";
    case WorkloadScope::NotPara:
      return cpu != "para";
  }
  return true;
}

std::string command_line_for(const RunOptions& options) {
  std::string command_line = "workload=" + options.workload;
  if (options.count) command_line += " n=" + std::to_string(*options.count);
  if (options.measurement_window) command_line += " window=1";
  if (!options.extra_command_line.empty()) command_line += " " + options.extra_command_line;
  return command_line;
}

namespace {

// The recorder's running totals, for a measurement window's two ends.
MeasurementWindow window_of(const EventRecorder& recorder) {
  MeasurementWindow totals;
  totals.wall_ns =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  for (std::size_t index = 0; index < totals.level_time_ns.size(); ++index)
    totals.level_time_ns[index] = recorder.time_ns(static_cast<PrivilegeLevel>(index));
  totals.halted_ns = recorder.halted_ns();
  totals.vm_exits = recorder.count(EventKind::VmExit);
  totals.monitor_traps = recorder.count(EventKind::MonitorTrap);
  totals.hypercalls = recorder.count(EventKind::Hypercall);
  return totals;
}

MeasurementWindow window_between(const MeasurementWindow& begin, const MeasurementWindow& end) {
  MeasurementWindow inside;
  for (std::size_t index = 0; index < inside.level_time_ns.size(); ++index)
    inside.level_time_ns[index] = end.level_time_ns[index] - begin.level_time_ns[index];
  inside.halted_ns = end.halted_ns - begin.halted_ns;
  inside.wall_ns = end.wall_ns - begin.wall_ns;
  // The recorder adds the VMM's time at the end of the run: here it is what
  // no other level had.
  std::uint64_t accounted = inside.halted_ns;
  for (std::size_t index = 0; index < inside.level_time_ns.size(); ++index) {
    if (index != static_cast<std::size_t>(PrivilegeLevel::Vmm))
      accounted += inside.level_time_ns[index];
  }
  inside.level_time_ns[static_cast<std::size_t>(PrivilegeLevel::Vmm)] =
      inside.wall_ns > accounted ? inside.wall_ns - accounted : 0;
  inside.vm_exits = end.vm_exits - begin.vm_exits;
  inside.monitor_traps = end.monitor_traps - begin.monitor_traps;
  inside.hypercalls = end.hypercalls - begin.hypercalls;
  return inside;
}

// The first bytes of each file vmlab writes for a Report output; one of
// these, or nothing, is what such an output may replace.
constexpr std::string_view kReportSignatures[] = {
    "# vmlab-trace ",         // vmlab run --trace (write_trace, vmm/src/events.cpp)
    "{\n  \"platform\": ",    // vmlab compare --json (write_comparison_json)
    "{\"displayTimeUnit\":",  // vmlab trace export --format perfetto (vmm/src/trace.cpp)
    "time_ns,duration_ns,",   // vmlab trace export --format csv (vmm/src/trace.cpp)
    "# vmlab-translations ",  // vmlab run --cpu bt --translations (write_translations)
    // vmlab report (bench/measure): the report, its charts, its measurements.
    "# vmlab: per-operation costs",
    "<!-- vmlab report chart -->",
    "{\n \"format\": \"vmlab-operations\"",
    // vmlab scorecard --json
    "{\n \"format\": \"vmlab-scorecard\"",
    // vmlab simulate --json, vmlab calibrate (bench/simulate)
    "{\n \"format\": \"vmlab-simulation\"",
    "{\n \"format\": \"vmlab-profile\"",
};
// How much of an existing file is read to decide whether it may be replaced.
constexpr std::size_t kInspectedBytes = 64 * KiB;

bool same_file(const struct stat& first, const struct stat& second) {
  return first.st_dev == second.st_dev && first.st_ino == second.st_ino;
}

// Whether an existing regular file may be replaced by an output of `kind`.
bool replaceable_contents(std::string_view head, OutputKind kind) {
  if (head.empty()) return true;
  switch (kind) {
    case OutputKind::Console:
      // A console log is text; a disk image, an ELF or other binary data has
      // NUL bytes near its start.
      return head.find('\0') == std::string_view::npos;
    case OutputKind::Report:
      return std::any_of(std::begin(kReportSignatures), std::end(kReportSignatures),
                         [&](std::string_view signature) { return head.rfind(signature, 0) == 0; });
  }
  return false;
}

// An output refused: "--trace 'd.img': why", ending with strerror's words
// for a failed system call's `error_number`.
Error refusal(CliError kind, const std::string& option, const std::string& path,
              const std::string& why, int error_number = 0) {
  const std::string message = option + " " + single_quoted(path) + ": " + why;
  return error_number == 0 ? Error{kind, message} : Error::from_errno(kind, message, error_number);
}

// Checks that `target` (the file an output replaces) may be replaced: it does
// not exist yet, or it is a regular file that is none of `protected_files`,
// that no other process holds an flock on, and whose contents `kind` may
// replace. Its stat when it exists, nothing when it is new.
Result<std::optional<struct stat>> check_replaceable(
    const std::string& option, const std::string& path, const std::string& target, OutputKind kind,
    const std::vector<ProtectedFile>& protected_files) {
  struct stat status {};
  if (::stat(target.c_str(), &status) != 0) {
    const int error = errno;
    // A new file: its directory is checked when the temporary file is made.
    if (error == ENOENT) return std::optional<struct stat>();
    return refusal(CliError::kOutputUnwritable, option, path, "cannot inspect it", error);
  }
  if (S_ISDIR(status.st_mode)) {
    return refusal(CliError::kOutputNotAFile, option, path, "is a directory; give a file name");
  }
  if (!S_ISREG(status.st_mode)) {
    // Not even /dev/null: the output replaces its target by rename(2).
    return refusal(CliError::kOutputNotAFile, option, path,
                   std::string("is not a regular file (a FIFO, device or socket); vmlab "
                               "writes regular files only") +
                       (kind == OutputKind::Console ? " (--quiet drops the console)" : ""));
  }
  for (const auto& input : protected_files) {
    struct stat input_status {};
    if (::stat(input.path.c_str(), &input_status) == 0 && same_file(status, input_status)) {
      return refusal(CliError::kConflictingOptions, option, path,
                     "is the same file as " + input.option + " " + single_quoted(input.path) +
                         "; writing it would destroy it, so choose another name");
    }
  }

  // rename(2) would replace a file nobody may write (chmod a-w) as easily as
  // any other; the user made it read-only for a reason.
  if ((status.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0 ||
      ::access(target.c_str(), W_OK) != 0) {
    return refusal(CliError::kOutputProtected, option, path,
                   "is write-protected; vmlab will not replace it: make it writable, or "
                   "choose another name");
  }

  const FileDescriptor descriptor = open_to_inspect(target);
  if (!descriptor.valid()) {
    const int error = errno;
    return refusal(CliError::kOutputUnwritable, option, path,
                   "cannot read it to check it may be replaced", error);
  }
  struct stat opened {};
  if (::fstat(descriptor.get(), &opened) != 0 || !same_file(opened, status)) {
    return refusal(CliError::kOutputUnwritable, option, path,
                   "changed while vmlab was checking it; try again");
  }
  // A vmlab using the file as a disk image holds an flock on it
  // (RawImageFile::open); probing for one takes and drops an exclusive lock.
  int locked;
  do {
    locked = ::flock(descriptor.get(), LOCK_EX | LOCK_NB);
  } while (locked != 0 && errno == EINTR);
  if (locked != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      return refusal(CliError::kOutputProtected, option, path,
                     "is in use by another vmlab process (it holds a lock on it, as on a "
                     "disk image it runs); choose another name");
    }
    return refusal(CliError::kOutputUnwritable, option, path, "cannot check whether it is in use",
                   error);
  }
  (void)::flock(descriptor.get(), LOCK_UN);

  std::string head(kInspectedBytes, '\0');
  const ssize_t count = read_fully(descriptor, head.data(), head.size());
  if (count < 0) {
    const int error = errno;
    return refusal(CliError::kOutputUnwritable, option, path,
                   "cannot read it to check it may be replaced", error);
  }
  head.resize(static_cast<std::size_t>(count));
  if (!replaceable_contents(head, kind)) {
    const std::string what = kind == OutputKind::Console
                                 ? "is not a text file (a disk image? an ELF?)"
                                 : "is not empty and not a file vmlab wrote (a disk image?)";
    return refusal(CliError::kOutputProtected, option, path,
                   what +
                       "; vmlab will not replace it: remove it first, or choose "
                       "another name");
  }
  return std::optional<struct stat>(status);
}

// The file an output replaces: `path`, or the file a symbolic link there
// points to (replacing the link itself would leave its target stale).
Result<std::string> output_target(const std::string& option, const std::string& path) {
  if (path.empty()) return Error{CliError::kOutputNotAFile, option + " needs a file name"};
  if (std::filesystem::path(path).filename().empty()) {
    return refusal(CliError::kOutputNotAFile, option, path, "names a directory; give a file name");
  }
  struct stat link {};
  if (::lstat(path.c_str(), &link) != 0 || !S_ISLNK(link.st_mode)) return path;
  std::error_code error;
  const auto resolved = std::filesystem::canonical(path, error);
  if (error) {
    return refusal(CliError::kOutputNotAFile, option, path,
                   "is a symbolic link to nothing (" + error.message() +
                       "); remove it or choose another name");
  }
  return resolved.string();
}

// A name that compares equal for two spellings of one path (out.tsv and
// ./out.tsv), existing or not.
std::string comparable_path(const std::string& path) {
  std::error_code error;
  const auto normal = std::filesystem::weakly_canonical(path, error);
  return error ? path : normal.string();
}

std::atomic<unsigned> g_temporary_counter{0};

// The temporary files alive now, for a signal handler to remove: a fixed
// table it can walk without allocating, and unlink(2) is async-signal-safe
// (signal-safety(7)). A slot is claimed, filled, then published.
constexpr std::size_t kTemporarySlots = 16;
std::array<std::array<char, PATH_MAX>, kTemporarySlots> g_temporary_paths{};
std::array<std::atomic<int>, kTemporarySlots> g_temporary_state{};  // 0 free, 1 filling, 2 live

int publish_temporary(const std::string& path) {
  if (path.size() >= PATH_MAX) return -1;
  for (std::size_t slot = 0; slot < kTemporarySlots; ++slot) {
    int expected = 0;
    if (!g_temporary_state[slot].compare_exchange_strong(expected, 1)) continue;
    std::copy(path.begin(), path.end(), g_temporary_paths[slot].begin());
    g_temporary_paths[slot][path.size()] = '\0';
    g_temporary_state[slot].store(2);
    return static_cast<int>(slot);
  }
  return -1;  // more outputs than slots: that one is not removed on a signal
}

void withdraw_temporary(int slot) {
  if (slot >= 0) g_temporary_state[static_cast<std::size_t>(slot)].store(0);
}

extern "C" void remove_temporaries_and_die(int signal_number) {
  for (std::size_t slot = 0; slot < kTemporarySlots; ++slot) {
    if (g_temporary_state[slot].load() == 2) ::unlink(g_temporary_paths[slot].data());
  }
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

}  // namespace

Result<OutputFile> OutputFile::create(const std::string& path, std::string option, OutputKind kind,
                                      std::vector<ProtectedFile> protected_files) {
  auto target = output_target(option, path);
  if (!target) return target.error();
  auto existing = check_replaceable(option, path, *target, kind, protected_files);
  if (!existing) return existing.error();

  // Beside the target, so rename(2) replaces it in one step on one file system.
  const std::filesystem::path target_path(*target);
  const std::filesystem::path directory =
      target_path.has_parent_path() ? target_path.parent_path() : std::filesystem::path(".");
  int descriptor = -1;
  std::string temporary;
  for (int attempt = 0; attempt < 100 && descriptor < 0; ++attempt) {
    temporary = (directory /
                 ("." + target_path.filename().string() + ".vmlab-" + std::to_string(::getpid()) +
                  "-" + std::to_string(g_temporary_counter.fetch_add(1))))
                    .string();
    do {
      descriptor = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    } while (descriptor < 0 && errno == EINTR);
    if (descriptor < 0 && errno != EEXIST) break;
  }
  if (descriptor < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) {
      return refusal(CliError::kOutputUnwritable, option, path,
                     "its directory " + single_quoted(directory.string()) + " does not exist");
    }
    return refusal(CliError::kOutputUnwritable, option, path,
                   "cannot create a file in " + single_quoted(directory.string()), error);
  }
  if (const auto& replaced = *existing) {
    // The replacement keeps the permissions (and, for root, the owner) of
    // the file it replaces; a failed fchown only leaves vmlab's user owning it.
    (void)::fchmod(descriptor, replaced->st_mode & 0777);
    if (::geteuid() == 0) (void)::fchown(descriptor, replaced->st_uid, replaced->st_gid);
  }
  ::close(descriptor);

  OutputFile file;
  file.m_path = path;
  file.m_option = std::move(option);
  file.m_kind = kind;
  file.m_protected = std::move(protected_files);
  file.m_target = std::move(*target);
  file.m_temporary = temporary;
  file.m_signal_slot = publish_temporary(temporary);
  file.m_stream = std::make_unique<std::ofstream>(temporary, std::ios::binary | std::ios::trunc);
  if (!*file.m_stream) {
    const int error = errno;
    return refusal(CliError::kOutputUnwritable, file.m_option, path,
                   "cannot open " + single_quoted(temporary), error);
  }
  return file;
}

OutputFile::OutputFile(OutputFile&& other) noexcept
    : m_path(std::move(other.m_path)),
      m_option(std::move(other.m_option)),
      m_kind(other.m_kind),
      m_protected(std::move(other.m_protected)),
      m_target(std::move(other.m_target)),
      m_temporary(std::exchange(other.m_temporary, std::string())),
      m_signal_slot(std::exchange(other.m_signal_slot, -1)),
      m_stream(std::move(other.m_stream)) {}

OutputFile& OutputFile::operator=(OutputFile&& other) noexcept {
  if (this != &other) {
    discard();
    m_path = std::move(other.m_path);
    m_option = std::move(other.m_option);
    m_kind = other.m_kind;
    m_protected = std::move(other.m_protected);
    m_target = std::move(other.m_target);
    m_temporary = std::exchange(other.m_temporary, std::string());
    m_signal_slot = std::exchange(other.m_signal_slot, -1);
    m_stream = std::move(other.m_stream);
  }
  return *this;
}

OutputFile::~OutputFile() {
  discard();
}

void OutputFile::discard() {
  if (m_temporary.empty()) return;
  if (m_stream) m_stream->close();
  ::unlink(m_temporary.c_str());
  m_temporary.clear();
  withdraw_temporary(std::exchange(m_signal_slot, -1));
}

Status OutputFile::commit() {
  if (m_temporary.empty()) {
    return Error{CliError::kOutputUnwritable,
                 m_option + " " + single_quoted(m_path) + " was already written"};
  }
  m_stream->flush();
  const bool written = static_cast<bool>(*m_stream);
  m_stream->close();
  if (!written || m_stream->fail()) {
    discard();
    return refusal(CliError::kOutputUnwritable, m_option, m_path,
                   "writing it failed (is the disk full?); the file was left as it was");
  }
  // The target may have changed during the run: a VM may have started
  // using it as a disk image since create() looked.
  if (auto replaceable = check_replaceable(m_option, m_path, m_target, m_kind, m_protected);
      !replaceable) {
    discard();
    return replaceable.error();
  }
  if (::rename(m_temporary.c_str(), m_target.c_str()) != 0) {
    const int error = errno;
    discard();
    return refusal(CliError::kOutputUnwritable, m_option, m_path, "cannot replace it", error);
  }
  m_temporary.clear();
  withdraw_temporary(std::exchange(m_signal_slot, -1));
  return {};
}

void remove_temporary_outputs_on_signals() {
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    struct sigaction action {};
    action.sa_handler = remove_temporaries_and_die;
    sigemptyset(&action.sa_mask);
    action.sa_flags = static_cast<int>(SA_RESETHAND);
    (void)::sigaction(signal_number, &action, nullptr);
  }
}

ScratchFile::ScratchFile(std::string path)
    : m_path(std::move(path)), m_signal_slot(publish_temporary(m_path)) {}

ScratchFile::~ScratchFile() {
  // Withdrawn first, so a signal now cannot unlink a name reused since.
  withdraw_temporary(std::exchange(m_signal_slot, -1));
  ::unlink(m_path.c_str());
}

namespace {

// The stopper StopOnSignals' handler wakes; one run at a time per process.
std::atomic<int> g_stop_wake_fd{-1};
std::atomic<int> g_stop_signals{0};

extern "C" void stop_run_on_signal(int signal_number) {
  const int saved_errno = errno;
  const int wake = g_stop_wake_fd.load();
  if (g_stop_signals.fetch_add(1) == 0 && wake >= 0) {
    const char byte = static_cast<char>(signal_number);
    (void)!::write(wake, &byte, 1);
    errno = saved_errno;
    return;
  }
  remove_temporaries_and_die(signal_number);
}

}  // namespace

void RunStopper::request_stop() {
  std::lock_guard lock(m_lock);
  m_requested = true;
  if (m_machine != nullptr) m_machine->request_stop();
}

bool RunStopper::requested() const {
  std::lock_guard lock(m_lock);
  return m_requested;
}

void RunStopper::attach(Machine* machine) {
  std::lock_guard lock(m_lock);
  m_machine = machine;
  if (m_machine != nullptr && m_requested) m_machine->request_stop();
}

StopOnSignals::StopOnSignals(RunStopper& stopper) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return;  // then signals abandon the run, as without
  m_wake_read = FileDescriptor(ends[0]);
  m_wake_write = FileDescriptor(ends[1]);
  g_stop_signals.store(0);
  g_stop_wake_fd.store(m_wake_write.get());
  // A signal handler may only write(2); this thread does the rest.
  m_watcher = std::thread([this, &stopper] {
    char byte = 0;
    ssize_t got;
    do {
      got = ::read(m_wake_read.get(), &byte, 1);
    } while (got < 0 && errno == EINTR);
    if (got != 1 || byte == 0) return;  // the destructor's wake-up: no signal came
    std::fprintf(stderr, "\nvmlab: %s: stopping the guest (again to abandon the run)\n",
                 ::strsignal(byte));
    stopper.request_stop();
  });
  for (int signal_number : {SIGINT, SIGTERM}) {
    struct sigaction action {};
    action.sa_handler = stop_run_on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    (void)::sigaction(signal_number, &action, nullptr);
  }
}

StopOnSignals::~StopOnSignals() {
  if (!m_watcher.joinable()) return;
  // Signals abandon runs again, as remove_temporary_outputs_on_signals set.
  for (int signal_number : {SIGINT, SIGTERM}) {
    struct sigaction action {};
    action.sa_handler = remove_temporaries_and_die;
    sigemptyset(&action.sa_mask);
    action.sa_flags = static_cast<int>(SA_RESETHAND);
    (void)::sigaction(signal_number, &action, nullptr);
  }
  g_stop_wake_fd.store(-1);
  const char none = 0;
  (void)!::write(m_wake_write.get(), &none, 1);
  m_watcher.join();
}

namespace {

// --live's stream, open before the run: a FIFO (its reader must be there
// already: vmlab does not wait for one), or a file it may replace as
// --trace may, written as the run goes (tail -f it).
Result<FileDescriptor> open_live_stream(const std::string& path,
                                        const std::vector<ProtectedFile>& protected_files) {
  const std::string option = "--live";
  auto target = output_target(option, path);
  if (!target) return target.error();
  struct stat status {};
  if (::stat(target->c_str(), &status) == 0 && S_ISFIFO(status.st_mode)) {
    int fd = ::open(target->c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      const int error = errno;
      if (error == ENXIO) {
        return refusal(CliError::kOutputUnwritable, option, path,
                       "is a FIFO nobody is reading; start its reader (vmlab-viz, cat) first");
      }
      return refusal(CliError::kOutputUnwritable, option, path, "cannot open it", error);
    }
    // Opened without waiting for a reader; written blocking, by the
    // writer's thread only.
    (void)::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return FileDescriptor(fd);
  }
  auto existing = check_replaceable(option, path, *target, OutputKind::Report, protected_files);
  if (!existing) return existing.error();
  const int fd = ::open(target->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    return refusal(CliError::kOutputUnwritable, option, path, "cannot create it", errno);
  }
  return FileDescriptor(fd);
}

}  // namespace

Status RunOutputs::commit() {
  Status status;
  if (console) status = console->commit();
  for (auto* output : {&trace, &translations}) {
    if (!*output) continue;
    if (auto written = (*output)->commit(); !written && status) status = written;
  }
  return status;
}

Result<RunOutputs> open_run_outputs(const RunOptions& options) {
  std::vector<ProtectedFile> inputs;
  if (!options.guest_path.empty()) inputs.push_back({"--guest", options.guest_path});
  if (!options.disk_path.empty()) inputs.push_back({"--disk", options.disk_path});
  RunOutputs outputs;
  if (!options.trace_path.empty()) {
    auto trace = OutputFile::create(options.trace_path, "--trace", OutputKind::Report, inputs);
    if (!trace) return trace.error();
    outputs.trace.emplace(std::move(*trace));
  }
  if (!options.translations_path.empty()) {
    auto translations =
        OutputFile::create(options.translations_path, "--translations", OutputKind::Report, inputs);
    if (!translations) return translations.error();
    if (outputs.trace &&
        comparable_path(outputs.trace->target()) == comparable_path(translations->target())) {
      return Error{CliError::kConflictingOptions, "--translations and --trace name the same file " +
                                                      single_quoted(options.translations_path) +
                                                      "; give each its own"};
    }
    outputs.translations.emplace(std::move(*translations));
  }
  if (!options.live_path.empty()) {
    for (const auto& [option, other] : {std::pair{"--trace", &options.trace_path},
                                        {"--translations", &options.translations_path},
                                        {"--console", &options.console_path}}) {
      if (!other->empty() && comparable_path(*other) == comparable_path(options.live_path)) {
        return Error{CliError::kConflictingOptions,
                     std::string("--live and ") + option + " name the same file " +
                         single_quoted(options.live_path) + "; give each its own"};
      }
    }
  }
  if (!options.console_path.empty()) {
    if (outputs.trace) inputs.push_back({"--trace", options.trace_path});
    if (outputs.translations) inputs.push_back({"--translations", options.translations_path});
    // A copy: --live below must keep the same files safe.
    auto console =
        OutputFile::create(options.console_path, "--console", OutputKind::Console, inputs);
    if (!console) return console.error();
    if (outputs.trace &&
        comparable_path(outputs.trace->target()) == comparable_path(console->target())) {
      return Error{CliError::kConflictingOptions, "--console and --trace name the same file " +
                                                      single_quoted(options.console_path) +
                                                      "; give each its own"};
    }
    outputs.console.emplace(std::move(*console));
  }
  // Last: a FIFO's reader sees the stream open only once nothing else can
  // refuse the run's outputs.
  if (!options.live_path.empty()) {
    auto live = open_live_stream(options.live_path, inputs);
    if (!live) return live.error();
    outputs.live = std::move(*live);
  }
  return outputs;
}

Result<GuestRun> run_guest(const RunOptions& options) {
  if (auto valid = check_run_options(options); !valid) return valid.error();
  auto outputs = open_run_outputs(options);
  if (!outputs) return outputs.error();
  auto run = run_guest(options, *outputs);
  if (!run) return run;  // the outputs are discarded: a run that failed writes nothing
  if (auto committed = outputs->commit(); !committed) return committed.error();
  return run;
}

Result<GuestRun> run_guest(const RunOptions& options, RunOutputs& outputs) {
  const auto started = std::chrono::steady_clock::now();
  if (auto valid = check_run_options(options); !valid) return valid.error();
  auto mode = make_mode(options);
  if (!mode) {
    return Error{CliError::kInvalidValue, "--cpu: no mode is built for '" + options.cpu + "'"};
  }
  const auto* translator = dynamic_cast<const bt::BtMode*>(mode.get());
  const CpuMode* technique = mode.get();  // the machine owns it from here
  auto timeout = timeout_duration(options.timeout_seconds);
  if (!timeout) return timeout.error();
  DiskModel disk_model = DiskModel::None;
  if (!options.disk_path.empty()) {
    // check_run_options refused any other spelling.
    disk_model = *parse_choice(disk_model_choices(), options.disk_model);
  }

  std::vector<std::uint8_t> guest_file;
  std::span<const std::uint8_t> guest = builtin_guest_image();
  if (!options.guest_path.empty()) {
    auto bytes = read_guest_file(options.guest_path);
    if (!bytes) return bytes.error();
    guest_file = std::move(*bytes);
    guest = guest_file;
  }
  // Check the image before creating a VM, so a bad file is reported as such.
  if (auto inspected = inspect_elf(guest, options.memory_size, boot_reserved_ranges());
      !inspected) {
    return inspected.error();
  }

  // A passed-through device belongs to one VM (DESIGN.md 6): claimed before
  // anything else is set up, held until the run is over.
  std::optional<devices::PassthroughController::ClaimToken> passthrough_claim;
  if (disk_model == DiskModel::Passthrough) {
    auto claim = devices::PassthroughController::claim(passthrough_device_name(options.disk_path));
    if (!claim) return claim.error();
    passthrough_claim.emplace(std::move(*claim));
  }

  // Declared before the machine, so it outlives the board, which flushes it
  // when it stops.
  std::unique_ptr<devices::RawImageFile> disk;
  if (disk_model != DiskModel::None) {
    auto opened = devices::RawImageFile::open(
        options.disk_path,
        options.disk_readonly ? devices::DiskAccess::ReadOnly : devices::DiskAccess::ReadWrite);
    if (!opened) return opened.error();  // it names the image and what to do
    disk = std::move(*opened);
  }

  GuestRun run;
  PlatformInfo platform = detect_platform();
  run.platform_line = platform.one_line();
  run.passthrough = disk_model == DiskModel::Passthrough;
  run.iommu_off = run.passthrough && !options.iommu;
  // Every report names the platform: the unsafe mark travels with it.
  if (run.iommu_off) run.platform_line += " [" + unsafe_iommu_note() + "]";
  auto kvm = Kvm::open();
  if (!kvm) return kvm.error();

  MachineConfig config;
  config.memory_size = options.memory_size;
  config.hypervisor_leaves = options.hypervisor_leaves;
  config.command_line = command_line_for(options);
  config.timeout = *timeout;
  config.trace_capacity = outputs.trace ? kTraceCapacity : 0;
  run.command_line = config.command_line;
  const std::string run_description = "cpu=" + options.cpu + " " + config.command_line;
  std::optional<LiveTraceWriter> live;
  if (outputs.live.valid()) {
    live.emplace(std::move(outputs.live), run.platform_line, run_description);
    config.event_observer = &*live;
  }

  PcBoard* board = nullptr;
  const EventRecorder* window_recorder = nullptr;  // the machine's, once it exists
  std::optional<MeasurementWindow> window_start, window_end;
  BoardFactory make_board = [&](Vm& vm) -> Result<std::unique_ptr<Board>> {
    PcBoardConfig board_config;
    board_config.irqchip = options.irqchip;
    board_config.console_output = options.console_output;
    // The vCPU thread delivers the lines, and records the events: what it
    // writes here is read after run().
    board_config.debug_line = [&run, &window_start, &window_end, &window_recorder,
                               started](const std::string& line) {
      if (run.to_result_line.count() == 0 && line.rfind("VMLAB-RESULT ", 0) == 0) {
        run.to_result_line = std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::steady_clock::now() - started);
      }
      if (window_recorder == nullptr) return;
      // The end mark comes after an empty line, whose one byte ends the
      // window: the mark's own bytes stay outside it.
      if (line == "VMLAB-WINDOW begin") {
        window_start = window_of(*window_recorder);
        window_end.reset();
      } else if (line.empty() && window_start) {
        window_end = window_of(*window_recorder);
      } else if (line == "VMLAB-WINDOW end" && window_start && window_end) {
        run.window = window_between(*window_start, *window_end);
        window_start.reset();
      }
    };
    if (outputs.console) {
      std::ostream& console = outputs.console->stream();
      board_config.console_output = [&console, echo = options.console_output](std::uint8_t byte) {
        console.put(static_cast<char>(byte));
        if (echo) echo(byte);
      };
    }
    board_config.disk = {disk_model,
                         disk.get(),
                         options.virtio_event_index,
                         options.virtio_ioeventfd && options.cpu == "hvm",
                         options.memory_size,
                         options.iommu};
    auto created = PcBoard::create(vm, board_config);
    if (!created) return created.error();
    board = created->get();
    return std::unique_ptr<Board>(std::move(*created));
  };
  auto machine = Machine::create(*kvm, config, make_board, std::move(mode));
  if (!machine) return machine.error();
  if (auto status = (*machine)->load(guest); !status) return status.error();
  if (auto status = board->attach_guest_memory((*machine)->memory()); !status) {
    return status.error();
  }

  if (options.measurement_window) window_recorder = &(*machine)->recorder();
  if (options.stopper != nullptr) options.stopper->attach(machine->get());
  run.to_first_entry = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now() - started);
  run.report = (*machine)->run();
  if (options.stopper != nullptr) options.stopper->attach(nullptr);
  run.debug_lines = board->debug_lines();
  run.disk_statistics = board->disk_statistics();
  run.device_problems = board->device_problems();
  for (const auto& line : run.debug_lines) {
    if (auto result = parse_result_line(line)) run.result = std::move(result);
  }
  const auto& recorder = (*machine)->recorder();
  for (std::size_t index = 0; index < static_cast<std::size_t>(EventReason::Count); ++index) {
    const auto reason = static_cast<EventReason>(index);
    if (auto count = recorder.count(EventKind::VmExit, reason)) {
      run.exits_by_reason[std::string(event_reason_name(reason))] = count;
    }
    if (auto count = recorder.count(EventKind::MonitorTrap, reason)) {
      run.traps_by_reason[std::string(event_reason_name(reason))] = count;
    }
  }
  run.interrupts_injected = recorder.count(EventKind::InterruptInjection);
  run.halts = recorder.count(EventKind::GuestHalt);
  run.monitor_traps = recorder.count(EventKind::MonitorTrap);
  run.hypercalls = recorder.count(EventKind::Hypercall);
  run.iommu_fault_events = recorder.count(EventKind::IommuFault);
  for (std::size_t index = 0; index < run.level_time_ns.size(); ++index) {
    run.level_time_ns[index] = recorder.time_ns(static_cast<PrivilegeLevel>(index));
  }
  run.halted_ns = recorder.halted_ns();

  if (translator != nullptr && translator->statistics() != nullptr) {
    run.translation = *translator->statistics();
  }
  run.census = technique->census();

  if (live) {
    live->finish(recorder,
                 run.report.outcome == RunOutcome::GuestExited
                     ? "the guest exited with status " + std::to_string(run.report.exit_value)
                     : run.report.message);
    run.live_streamed = live->streamed();
    run.live_dropped = live->dropped();
    run.live_error = live->write_error();
  }
  // Written here, committed by the caller: a failed write is found then.
  if (outputs.trace) {
    write_trace(outputs.trace->stream(), recorder, run.platform_line, run_description);
  }
  if (outputs.translations && translator != nullptr) {
    auto& out = outputs.translations->stream();
    out << "# vmlab-translations v1: every block in the translation cache at the end of the run\n"
        << "# " << run.platform_line << "\n"
        << "# cpu=" << options.cpu << " " << config.command_line << "\n"
        << "# for each guest instruction: address, bytes, disassembly; beside it the TC\n"
        << "# instructions that carry it out and what the translator did (README: bt)\n\n"
        << translator->listing();
  }
  return run;
}

}  // namespace vmlab
