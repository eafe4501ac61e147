#include "vmlab/reference.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

extern char** environ;

namespace vmlab {

namespace {

constexpr const char* kQemu = "qemu-system-x86_64";

// A private directory for the image and the debug console, removed after.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "vmlab-qemu-XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) m_path = pattern;
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    if (!m_path.empty()) std::filesystem::remove_all(m_path, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  const std::filesystem::path& path() const { return m_path; }

 private:
  std::filesystem::path m_path;
};

}  // namespace

bool reference_machine_available() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string directories = path;
  std::size_t start = 0;
  while (start <= directories.size()) {
    const std::size_t end = std::min(directories.find(':', start), directories.size());
    const auto candidate = std::filesystem::path(directories.substr(start, end - start)) / kQemu;
    if (access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

Result<ReferenceRun> run_reference_machine(std::span<const std::uint8_t> guest,
                                           const std::string& command_line, double timeout_seconds,
                                           const std::optional<ReferenceDisk>& disk) {
  if (!reference_machine_available()) {
    return Error{CliError::kReferenceUnavailable,
                 std::string(kQemu) + " is not installed (apt-get install qemu-system-x86)"};
  }
  ScratchDirectory scratch;
  if (scratch.path().empty()) {
    return Error::from_errno(CliError::kReferenceUnavailable, "cannot create a scratch directory",
                             errno);
  }
  const auto image = scratch.path() / "guest.elf";
  const auto debug = scratch.path() / "debugcon.txt";
  const auto errors = scratch.path() / "qemu-stderr.txt";
  {
    std::ofstream file(image, std::ios::binary);
    file.write(reinterpret_cast<const char*>(guest.data()),
               static_cast<std::streamsize>(guest.size()));
    if (!file) {
      return Error::from_errno(CliError::kReferenceUnavailable, "cannot write " + image.string(),
                               errno);
    }
  }
  // -M pc gives the PC devices the guest's PVH path assumes (COM1, 8259A,
  // 8254); isa-debug-exit at 0xf4 ends QEMU with (value << 1) | 1. A virtio
  // disk needs microvm, whose virtio-mmio windows reach the guest's device
  // table through the command line (guest/README.md, "Trying it under QEMU").
  const bool microvm = disk && disk->model == ReferenceDiskModel::Virtio;
  std::vector<std::string> arguments = {kQemu,
                                        "-M",
                                        microvm ? "microvm,pic=on,pit=on,rtc=off,acpi=off" : "pc",
                                        "-accel",
                                        "tcg",
                                        "-m",
                                        "64",
                                        "-display",
                                        "none",
                                        "-no-reboot",
                                        "-nodefaults",
                                        "-serial",
                                        "null",
                                        "-kernel",
                                        image.string(),
                                        "-append",
                                        command_line,
                                        "-debugcon",
                                        "file:" + debug.string(),
                                        "-device",
                                        "isa-debug-exit,iobase=0xf4,iosize=0x04"};
  if (disk) {
    const std::string file = "file=" + disk->image_path + ",format=raw";
    if (microvm) {
      // No local APIC, so the 8259's output reaches the CPU; version 2
      // virtio-mmio registers, which the guest's driver needs.
      for (const char* argument : {"-cpu", "qemu64,-apic", "-device", "virtio-blk-device,drive=d0",
                                   "-global", "virtio-mmio.force-legacy=false", "-drive"}) {
        arguments.emplace_back(argument);
      }
      arguments.push_back("id=d0," + file + ",if=none");
    } else {
      arguments.emplace_back("-drive");
      arguments.push_back(file + ",if=ide,index=0");
    }
  }
  std::vector<char*> argv;
  argv.reserve(arguments.size() + 1);
  for (auto& argument : arguments)
    argv.push_back(argument.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, errors.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t child = 0;
  const int spawned = posix_spawnp(&child, kQemu, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    return Error::from_errno(CliError::kReferenceUnavailable, std::string("cannot start ") + kQemu,
                             spawned);
  }

  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<long>(timeout_seconds * 1000));
  int status = 0;
  while (true) {
    const pid_t done = waitpid(child, &status, WNOHANG);
    if (done == child) break;
    if (done < 0 && errno != EINTR) {
      return Error::from_errno(CliError::kReferenceFailed, "waitpid", errno);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      return Error{CliError::kTimeout, std::string(kQemu) + " did not finish within its timeout"};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ReferenceRun run;
  run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream lines(debug);
  for (std::string line; std::getline(lines, line);) {
    run.debug_lines.push_back(line);
  }
  // QEMU's own failures (a bad image, a missing firmware file) also exit 1,
  // like a guest writing 0 to isa-debug-exit: tell them apart by whether the
  // guest said anything, and pass on what QEMU said.
  if (run.debug_lines.empty()) {
    std::ifstream messages(errors);
    std::string message;
    std::getline(messages, message);
    if (!message.empty()) {
      return Error{CliError::kReferenceFailed, std::string(kQemu) + " failed: " + message};
    }
  }
  return run;
}

}  // namespace vmlab
