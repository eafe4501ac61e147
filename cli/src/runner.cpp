#include "vmlab/runner.hpp"

#include <charconv>
#include <filesystem>
#include <fstream>

#include "vmlab/boot.hpp"
#include "vmlab/devices/passthrough_controller.hpp"
#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/elf_loader.hpp"
#include "vmlab/full/full_mode.hpp"
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
    {"cli-sti", 1000, "N cli/sti pairs in the kernel"},
    {"pio", 1000, "N port reads of the UART scratch register"},
    {"timer", 10, "wait for N timer interrupts (PIT at 100 Hz)"},
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

std::unique_ptr<CpuMode> make_mode(const RunOptions& options) {
  const std::string& name = options.cpu;
  if (name == "hvm") return std::make_unique<modes::HvmMode>();
  if (name == "full") {
    full::FullModeOptions mode_options;
    mode_options.umip = options.umip;
    mode_options.syscall_arrives_as_page_fault = detect_backend("/sys/module") == "kvm_pvm";
    return std::make_unique<full::FullMode>(mode_options);
  }
  if (name == "para") {
    para::ParaModeOptions mode_options;
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
  return {"hvm", "full", "para"};
}

namespace {
template <typename Range, typename Name>
std::string join_names(const Range& range, Name name) {
  std::string joined;
  for (const auto& item : range) {
    joined += (joined.empty() ? "" : ", ") + std::string(name(item));
  }
  return joined;
}
}  // namespace

std::string cpu_mode_list() {
  return join_names(available_cpu_modes(), [](const std::string& mode) { return mode; });
}

std::string workload_list() {
  return join_names(builtin_workloads(),
                    [](const WorkloadInfo& workload) { return workload.name; });
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

std::optional<WorkloadResult> parse_result_line(const std::string& line) {
  constexpr std::string_view kPrefix = "VMLAB-RESULT ";
  if (line.rfind(kPrefix, 0) != 0) return std::nullopt;
  WorkloadResult result;
  result.line = line;
  std::size_t position = kPrefix.size();
  while (position < line.size()) {
    const std::size_t end = std::min(line.find(' ', position), line.size());
    const std::string token = line.substr(position, end - position);
    const std::size_t equals = token.find('=');
    if (equals != std::string::npos)
      result.fields[token.substr(0, equals)] = token.substr(equals + 1);
    position = end + 1;
  }
  return result;
}

std::string command_line_for(const RunOptions& options) {
  std::string command_line = "workload=" + options.workload;
  if (options.count) command_line += " n=" + std::to_string(*options.count);
  if (!options.extra_command_line.empty()) command_line += " " + options.extra_command_line;
  return command_line;
}

Result<GuestRun> run_guest(const RunOptions& options) {
  auto mode = make_mode(options);
  if (!mode) {
    return Error{"unknown --cpu '" + options.cpu + "': this build has " + cpu_mode_list()};
  }
  if (options.guest_path.empty() && find_workload(options.workload) == nullptr) {
    return Error{"unknown workload '" + options.workload +
                 "'; the built-in guest has: " + workload_list()};
  }
  if (!(options.timeout_seconds > 0)) {
    return Error{"--timeout must be a positive number of seconds"};
  }
  if (options.umip && options.cpu != "full") {
    return Error{"--umip applies to --cpu full (an hvm guest sets CR4.UMIP itself)"};
  }

  DiskModel disk_model = DiskModel::None;
  if (!options.disk_path.empty()) {
    if (options.disk_model == "ata") {
      disk_model = DiskModel::Ata;
    } else if (options.disk_model == "virtio") {
      disk_model = DiskModel::Virtio;
    } else if (options.disk_model == "passthrough") {
      disk_model = DiskModel::Passthrough;
    } else {
      return Error{"unknown --disk-model '" + options.disk_model +
                   "': use ata, virtio or passthrough"};
    }
  } else if (options.guest_path.empty() && workload_needs_disk(options.workload)) {
    return Error{options.workload +
                 " needs --disk PATH; make one with `vmlab disk create disk.img 64M`"};
  }
  if (options.virtio_event_index && disk_model != DiskModel::Virtio) {
    return Error{"--virtio-event-idx applies to a virtio disk (--disk PATH --disk-model virtio)"};
  }
  if (!options.iommu && disk_model != DiskModel::Passthrough) {
    return Error{
        "--iommu off applies to a passthrough disk (--disk PATH --disk-model passthrough)"};
  }
  if (options.workload == "dma-attack" && options.guest_path.empty() &&
      disk_model != DiskModel::Passthrough) {
    return Error{"dma-attack needs the passthrough disk: --disk PATH --disk-model passthrough"};
  }

  std::vector<std::uint8_t> guest_file;
  std::span<const std::uint8_t> guest = builtin_guest_image();
  if (!options.guest_path.empty()) {
    auto bytes = read_file(options.guest_path);
    if (!bytes)
      return Error{"cannot read guest '" + options.guest_path + "': " + bytes.error().message};
    guest_file = std::move(*bytes);
    guest = guest_file;
  }
  // Check the image before creating a VM, so a bad file is reported as such.
  if (auto inspected = inspect_elf(guest, options.memory_size, boot_reserved_ranges());
      !inspected) {
    return inspected.error();
  }

  // Opened before the run, so a bad path costs nothing but this message.
  std::optional<std::ofstream> trace;
  if (!options.trace_path.empty()) {
    trace.emplace(options.trace_path);
    if (!*trace) return Error::from_errno("cannot write trace file " + options.trace_path, errno);
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
  config.command_line = command_line_for(options);
  config.timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(options.timeout_seconds * 1000));
  config.trace_capacity = options.trace_path.empty() ? 0 : kTraceCapacity;
  run.command_line = config.command_line;

  PcBoard* board = nullptr;
  BoardFactory make_board = [&](Vm& vm) -> Result<std::unique_ptr<Board>> {
    PcBoardConfig board_config;
    board_config.irqchip = options.irqchip;
    board_config.console_output = options.console_output;
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

  run.report = (*machine)->run();
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

  if (trace) {
    write_trace(*trace, recorder, run.platform_line,
                "cpu=" + options.cpu + " " + config.command_line);
    if (!*trace) return Error::from_errno("writing trace file " + options.trace_path, errno);
  }
  return run;
}

}  // namespace vmlab
