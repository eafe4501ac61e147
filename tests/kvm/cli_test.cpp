// `vmlab run`, `compare` and `trace export` as a user runs them: the built
// binary in a subprocess, its exit status, what it printed, and what it did to
// the files around it. VMLAB_CLI in the environment overrides the binary (to
// run these checks against another build).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/elf_builder.hpp"
#include "../support/kvm_available.hpp"
#include "../support/scratch_files.hpp"
#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/trace.hpp"

namespace vmlab {
namespace {

namespace fs = std::filesystem;

std::string vmlab_binary() {
  const char* override_path = std::getenv("VMLAB_CLI");
  return override_path != nullptr ? override_path : VMLAB_CLI_PATH;
}

using testing::contents_of;
using testing::write_file;

struct Finished {
  int status = -1;         // the exit status; -1 when killed at the deadline
  bool timed_out = false;  // it was still running at the deadline
  std::string out;
  std::string err;
};

// Starts `vmlab ARGUMENTS` in the test's directory, its stdout and stderr
// in files there; the caller waits for it.
pid_t start_vmlab(const fs::path& directory, const std::vector<std::string>& arguments) {
  const std::string binary = vmlab_binary();
  const pid_t child = ::fork();
  if (child == 0) {
    if (::chdir(directory.c_str()) != 0) ::_exit(126);
    if (!std::freopen(".test-stdout", "w", stdout) || !std::freopen(".test-stderr", "w", stderr)) {
      ::_exit(126);
    }
    std::vector<char*> argv{const_cast<char*>(binary.c_str())};
    for (const auto& argument : arguments)
      argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  return child;
}

// Runs vmlab with `arguments` in `directory`, killing it (by its pid) if it
// outlives `deadline`.
Finished run_vmlab(const fs::path& directory, const std::vector<std::string>& arguments,
                   std::chrono::seconds deadline = std::chrono::seconds(60)) {
  const fs::path out_path = directory / ".test-stdout";
  const fs::path err_path = directory / ".test-stderr";
  const pid_t child = start_vmlab(directory, arguments);
  Finished finished;
  if (child < 0) return finished;
  int status = 0;
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > give_up) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      finished.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!finished.timed_out && WIFEXITED(status)) finished.status = WEXITSTATUS(status);
  finished.out = contents_of(out_path);
  finished.err = contents_of(err_path);
  fs::remove(out_path);
  fs::remove(err_path);
  return finished;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs::exists(vmlab_binary())) << vmlab_binary(); }

  Finished vmlab(const std::vector<std::string>& arguments,
                 std::chrono::seconds deadline = std::chrono::seconds(60)) {
    return run_vmlab(m_directory.path(), arguments, deadline);
  }
  fs::path path(const std::string& name) const { return m_directory / name; }

  // A 1 MiB image that is not all zeros, so emptying it shows.
  fs::path make_image(const std::string& name) {
    const auto image = path(name);
    EXPECT_TRUE(devices::create_raw_image(image.string(), 1024 * 1024, false).ok());
    std::fstream(image, std::ios::in | std::ios::out | std::ios::binary) << "VMLAB-TEST-SECTOR";
    return image;
  }

  testing::ScratchDirectory m_directory{"vmlab-cli-e2e-"};
};

// Defect 1: an output option destroyed the disk image.
TEST_F(CliTest, TraceOntoTheRunsOwnDiskIsRefusedAndTheImageKept) {
  const auto image = make_image("d.img");
  const std::string before = contents_of(image);
  auto run = vmlab({"run", "--disk", "d.img", "--workload", "disk-read", "--trace", "d.img"});
  EXPECT_EQ(run.status, 64) << run.err;
  EXPECT_TRUE(contains(run.err, "--disk")) << run.err;
  EXPECT_EQ(contents_of(image), before) << "the disk image was changed";
  EXPECT_EQ(m_directory.entries(), std::vector<std::string>{"d.img"});
}

TEST_F(CliTest, ConsoleOntoADiskImageIsRefusedAndTheImageKept) {
  const auto image = make_image("other.img");
  const std::string before = contents_of(image);
  auto run = vmlab({"run", "--console", "other.img"});
  EXPECT_EQ(run.status, 64) << run.err;
  EXPECT_EQ(contents_of(image), before) << "the disk image was changed";
}

TEST_F(CliTest, ARefusedRunWritesNothing) {
  write_file(path("old.tsv"), "# vmlab-trace 2\n# an earlier trace\n");
  write_file(path("old.txt"), "an earlier console\n");
  // A memory size the machine cannot have: refused before any VM exists.
  auto run = vmlab({"run", "--mem", "4G", "--trace", "old.tsv", "--console", "old.txt"});
  EXPECT_EQ(run.status, 64) << run.err;
  EXPECT_EQ(contents_of(path("old.tsv")), "# vmlab-trace 2\n# an earlier trace\n");
  EXPECT_EQ(contents_of(path("old.txt")), "an earlier console\n");
  EXPECT_EQ(m_directory.entries(), (std::vector<std::string>{"old.tsv", "old.txt"}));
}

TEST_F(CliTest, AWriteProtectedOutputIsRefused) {
  VMLAB_REQUIRE_KVM();
  write_file(path("kept.tsv"), "# vmlab-trace 2\n# an earlier trace, made read-only\n");
  fs::permissions(path("kept.tsv"), fs::perms::owner_read | fs::perms::group_read);
  auto run = vmlab({"run", "--trace", "kept.tsv"});
  EXPECT_EQ(run.status, 64) << run.err;
  EXPECT_TRUE(contains(run.err, "write-protected")) << run.err;
  EXPECT_EQ(contents_of(path("kept.tsv")), "# vmlab-trace 2\n# an earlier trace, made read-only\n");
  EXPECT_EQ(m_directory.entries(), std::vector<std::string>{"kept.tsv"});
}

// Reads a FIFO as vmlab-viz's live view does, on a thread of its own, until
// its writer closes it.
class FifoReader {
 public:
  explicit FifoReader(const fs::path& fifo) : m_fd(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK)) {
    m_thread = std::thread([this] {
      char buffer[65536];
      bool opened = false;  // a FIFO reads end-of-file until a writer opens it
      while (!m_quit.load()) {
        const ssize_t got = ::read(m_fd, buffer, sizeof buffer);
        if (got > 0) {
          opened = true;
          std::lock_guard lock(m_lock);
          m_text.append(buffer, static_cast<std::size_t>(got));
          continue;
        }
        if (got == 0 && opened) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  ~FifoReader() {
    m_quit.store(true);
    m_thread.join();
    ::close(m_fd);
  }
  std::string text() const {
    std::lock_guard lock(m_lock);
    return m_text;
  }
  void wait_for(const std::string& part, std::chrono::seconds timeout) const {
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    while (text().find(part) == std::string::npos && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

 private:
  int m_fd;
  mutable std::mutex m_lock;
  std::string m_text;
  std::atomic<bool> m_quit{false};
  std::thread m_thread;
};

// Ctrl-C (or the SIGTERM vmlab-viz's Stop sends) in the middle of a run:
// the guest is stopped, the summary says so, the outputs are written, and
// vmlab exits with 130.
TEST_F(CliTest, ACtrlCEndsTheRunCleanlyAndWritesItsOutputs) {
  VMLAB_REQUIRE_KVM();
  write_file(path("old.tsv"), "# vmlab-trace 2\n# an earlier trace\n");
  // A guest that never ends by itself (the timer workload, 100,000 ticks).
  const pid_t child =
      start_vmlab(m_directory.path(), {"run", "--quiet", "--workload", "timer:100000", "--trace",
                                       "old.tsv", "--console", "new.txt"});
  ASSERT_GT(child, 0);
  // Until the run has made its temporary files (the VM is running then).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (m_directory.entries().size() < 5 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::kill(child, SIGINT);
  int status = 0;
  ::waitpid(child, &status, 0);
  const std::string out = contents_of(path(".test-stdout"));
  const std::string err = contents_of(path(".test-stderr"));
  ASSERT_TRUE(WIFEXITED(status)) << status << err;
  EXPECT_EQ(WEXITSTATUS(status), 130) << err;
  EXPECT_TRUE(contains(err, "stopping the guest (again to abandon the run)")) << err;
  EXPECT_TRUE(contains(out, "guest status:  stopped on request after")) << out;
  EXPECT_TRUE(contains(contents_of(path("old.tsv")), "# run: cpu=hvm workload=timer n=100000"));
  EXPECT_TRUE(contains(contents_of(path("old.tsv")), "\tvm-exit\t")) << "the run's events";
  fs::remove(path(".test-stdout"));
  fs::remove(path(".test-stderr"));
  EXPECT_EQ(m_directory.entries(), (std::vector<std::string>{"new.txt", "old.tsv"}));
}

// A second Ctrl-C abandons the run: the outputs' targets stay as they were
// and no temporary file is left beside them. The run streams to a FIFO its
// reader has stopped reading (system calls under full fill the pipe in a
// moment), so the clean stop cannot finish before the second signal.
TEST_F(CliTest, ASecondCtrlCAbandonsTheRunAndLeavesNoTemporaryFile) {
  VMLAB_REQUIRE_KVM();
  write_file(path("old.tsv"), "# vmlab-trace 2\n# an earlier trace\n");
  ASSERT_EQ(::mkfifo(path("stuck.fifo").c_str(), 0600), 0);
  const int stuck = ::open(path("stuck.fifo").c_str(), O_RDONLY | O_NONBLOCK);  // never read
  ASSERT_GE(stuck, 0);
  const pid_t child = start_vmlab(
      m_directory.path(), {"run", "--quiet", "--cpu", "full", "--workload", "syscalls:10000000",
                           "--trace", "old.tsv", "--console", "new.txt", "--live", "stuck.fifo"});
  ASSERT_GT(child, 0);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (m_directory.entries().size() < 6 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(child, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(child, SIGINT);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(stuck);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT)
      << status << contents_of(path(".test-stderr"));
  EXPECT_EQ(contents_of(path("old.tsv")), "# vmlab-trace 2\n# an earlier trace\n");
  fs::remove(path(".test-stdout"));
  fs::remove(path(".test-stderr"));
  EXPECT_EQ(m_directory.entries(), (std::vector<std::string>{"old.tsv", "stuck.fifo"}));
}

// The live view's protocol end to end: events arrive through the FIFO while
// the guest runs, SIGTERM stops it, and the stream ends with its totals and
// reads as a whole trace.
TEST_F(CliTest, ALiveRunStreamsItsEventsAsTheyHappenAndEndsWhenStopped) {
  VMLAB_REQUIRE_KVM();
  ASSERT_EQ(::mkfifo(path("live.fifo").c_str(), 0600), 0);
  FifoReader reader(path("live.fifo"));
  const pid_t child = start_vmlab(
      m_directory.path(),
      {"run", "--quiet", "--cpu", "full", "--workload", "timer:100000", "--live", "live.fifo"});
  ASSERT_GT(child, 0);
  reader.wait_for("\tmonitor-trap\t", std::chrono::seconds(30));
  EXPECT_TRUE(contains(reader.text(), "# run: cpu=full workload=timer n=100000\n"));
  EXPECT_FALSE(contains(reader.text(), "# end:")) << "events arrive while the guest runs";
  ::kill(child, SIGTERM);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 130) << contents_of(path(".test-stderr"));
  reader.wait_for("# end:", std::chrono::seconds(10));
  const std::string stream = reader.text();
  EXPECT_TRUE(contains(stream, "# end: stopped on request after")) << stream.substr(0, 400);
  std::istringstream in(stream);
  auto trace = read_trace(in);
  ASSERT_TRUE(trace) << trace.error().message;
  EXPECT_FALSE(trace->truncated()) << truncation_message(*trace);
  EXPECT_GT(trace->events.size(), 0u);
  EXPECT_TRUE(contains(contents_of(path(".test-stdout")), "live stream:   ")) << "the summary";

  // Nobody reading a FIFO: refused before the run, not waited for.
  ASSERT_EQ(::mkfifo(path("unread.fifo").c_str(), 0600), 0);
  auto unread = vmlab({"run", "--live", "unread.fifo"});
  EXPECT_EQ(unread.status, 64) << unread.err;
  EXPECT_TRUE(contains(unread.err, "is a FIFO nobody is reading")) << unread.err;
  auto same = vmlab({"run", "--live", "t.tsv", "--trace", "t.tsv"});
  EXPECT_EQ(same.status, 64) << same.err;
  EXPECT_TRUE(contains(same.err, "--live and --trace name the same file")) << same.err;
  const auto image = make_image("d.img");
  const std::string before = contents_of(image);
  auto onto_image = vmlab({"run", "--live", "d.img"});
  EXPECT_EQ(onto_image.status, 64) << onto_image.err;
  EXPECT_EQ(contents_of(image), before) << "the disk image was changed";
  // With a console as well: the run's disk is still the stream's to spare.
  auto onto_own_disk = vmlab({"run", "--disk", "d.img", "--workload", "disk-read", "--console",
                              "c.txt", "--live", "d.img"});
  EXPECT_EQ(onto_own_disk.status, 64) << onto_own_disk.err;
  EXPECT_TRUE(contains(onto_own_disk.err, "--disk")) << onto_own_disk.err;
  EXPECT_EQ(contents_of(image), before) << "the disk image was changed";
}

TEST_F(CliTest, ARunFailingAfterTheChecksWritesNothing) {
  VMLAB_REQUIRE_KVM();
  write_file(path("old.tsv"), "# vmlab-trace 2\n# an earlier trace\n");
  write_file(path("bad.elf"),
             "\x7f"
             "ELF but not really");
  auto run = vmlab({"run", "--guest", "bad.elf", "--trace", "old.tsv"});
  EXPECT_EQ(run.status, 69) << run.err;
  EXPECT_EQ(contents_of(path("old.tsv")), "# vmlab-trace 2\n# an earlier trace\n");
  EXPECT_EQ(m_directory.entries(), (std::vector<std::string>{"bad.elf", "old.tsv"}));
}

TEST_F(CliTest, OutputsOfAnEarlierRunAreReplaced) {
  VMLAB_REQUIRE_KVM();
  for (int round = 0; round < 2; ++round) {
    auto run = vmlab({"run", "--workload", "pio:5", "--trace", "pio.tsv", "--console", "c.txt"});
    ASSERT_EQ(run.status, 0) << "round " << round << ": " << run.err;
    EXPECT_TRUE(contains(run.out, "trace written to pio.tsv")) << run.out;
  }
  EXPECT_EQ(contents_of(path("pio.tsv")).rfind("# vmlab-trace ", 0), 0u);
  EXPECT_TRUE(contains(contents_of(path("c.txt")), "vmlab guest kernel"));
  for (int round = 0; round < 2; ++round) {
    auto csv = vmlab({"trace", "export", "--format", "csv", "pio.tsv", "-o", "pio.csv"});
    ASSERT_EQ(csv.status, 0) << csv.err;
    auto perfetto = vmlab({"trace", "export", "--format", "perfetto", "pio.tsv", "-o", "p.json"});
    ASSERT_EQ(perfetto.status, 0) << perfetto.err;
  }
  EXPECT_EQ(m_directory.entries(),
            (std::vector<std::string>{"c.txt", "p.json", "pio.csv", "pio.tsv"}));
}

TEST_F(CliTest, TraceExportNeverReplacesItsInputOrAnImage) {
  const std::string trace = "# vmlab-trace 2\n# run: nothing\n";
  write_file(path("in.tsv"), trace);
  auto onto_input = vmlab({"trace", "export", "--format", "csv", "in.tsv", "-o", "in.tsv"});
  EXPECT_EQ(onto_input.status, 64) << onto_input.err;
  EXPECT_EQ(contents_of(path("in.tsv")), trace);
  const auto image = make_image("d.img");
  const std::string before = contents_of(image);
  auto onto_image = vmlab({"trace", "export", "--format", "perfetto", "in.tsv", "-o", "d.img"});
  EXPECT_EQ(onto_image.status, 64) << onto_image.err;
  EXPECT_EQ(contents_of(image), before);
}

TEST_F(CliTest, CompareJsonIsCheckedBeforeAnyRun) {
  const auto start = std::chrono::steady_clock::now();
  auto compare = vmlab({"compare", "--workloads", "hello", "--cpu", "hvm", "--irqchip", "vmm",
                        "--json", "/nonexistent-vmlab-directory/x.json"});
  EXPECT_EQ(compare.status, 64) << compare.err;
  EXPECT_TRUE(contains(compare.err, "does not exist")) << compare.err;
  EXPECT_FALSE(contains(compare.err, "[1/1]")) << "a run happened first: " << compare.err;
  EXPECT_FALSE(contains(compare.out, "cycles/op")) << compare.out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));

  const auto image = make_image("d.img");
  const std::string before = contents_of(image);
  auto onto_image = vmlab({"compare", "--workloads", "hello", "--json", "d.img"});
  EXPECT_EQ(onto_image.status, 64) << onto_image.err;
  EXPECT_EQ(contents_of(image), before);
}

// A recorded scorecard is scored again without a run; its JSON output is
// checked before anything runs and never replaces an input or someone's file.
TEST_F(CliTest, ScorecardScoresARecordedFileAndProtectsItsOutputs) {
  const std::string recorded = VMLAB_RECORDED_SCORECARD;
  auto scored = vmlab({"scorecard", "--input", recorded});
  EXPECT_EQ(scored.status, 0) << scored.err;
  for (const char* part : {"technique", "equivalence", "efficiency", "safety", "hvm", "qemu-tcg",
                           "reference", "platform: "}) {
    EXPECT_TRUE(contains(scored.out, part)) << part << " in\n" << scored.out;
  }

  auto copied = vmlab({"scorecard", "--input", recorded, "--json", "copy.json"});
  EXPECT_EQ(copied.status, 0) << copied.err;
  EXPECT_EQ(contents_of(path("copy.json")), contents_of(recorded));

  auto onto_input = vmlab({"scorecard", "--input", "copy.json", "--json", "copy.json"});
  EXPECT_EQ(onto_input.status, 64) << onto_input.err;
  EXPECT_EQ(contents_of(path("copy.json")), contents_of(recorded));

  const auto image = make_image("d.img");
  const std::string before = contents_of(image);
  const auto start = std::chrono::steady_clock::now();
  auto onto_image = vmlab({"scorecard", "--cpu", "hvm", "--json", "d.img"});
  EXPECT_EQ(onto_image.status, 64) << onto_image.err;
  EXPECT_FALSE(contains(onto_image.err, "[1/")) << "a run happened first: " << onto_image.err;
  EXPECT_EQ(contents_of(image), before);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));

  auto corrupt = vmlab({"scorecard", "--input", "d.img"});
  EXPECT_EQ(corrupt.status, 69) << corrupt.err;
  EXPECT_TRUE(contains(corrupt.err, "not a JSON document")) << corrupt.err;
  EXPECT_EQ(contents_of(image), before);
}

// A recorded run replayed under the published profiles: every profile's
// column, the platform it was recorded on, JSON beside it, and never onto
// the trace.
TEST_F(CliTest, SimulateReplaysARecordedRunAndNeverReplacesIt) {
  auto run = vmlab(
      {"run", "--cpu", "full", "--workload", "pagefaults:50", "--trace", "pf.tsv", "--quiet"});
  ASSERT_EQ(run.status, 0) << run.err;
  const std::string trace = contents_of(path("pf.tsv"));
  auto simulated =
      vmlab({"simulate", "pf.tsv", "--profile", "vtx-2006,vtx-ept-vpid-2009", "--json", "s.json"});
  EXPECT_EQ(simulated.status, 0) << simulated.err;
  for (const char* part : {"vtx-2006", "vtx-ept-vpid-2009", "recorded on platform: ",
                           "removed by nested paging", "hidden-page-fault-exit"}) {
    EXPECT_TRUE(contains(simulated.out, part)) << part << " in\n" << simulated.out;
  }
  EXPECT_EQ(contents_of(path("s.json")).rfind("{\n \"format\": \"vmlab-simulation\"", 0), 0u);

  auto onto_trace = vmlab({"simulate", "pf.tsv", "--json", "pf.tsv"});
  EXPECT_EQ(onto_trace.status, 64) << onto_trace.err;
  EXPECT_EQ(contents_of(path("pf.tsv")), trace);

  auto unknown = vmlab({"simulate", "pf.tsv", "--profile", "vtx-3000"});
  EXPECT_EQ(unknown.status, 64) << unknown.err;
  EXPECT_TRUE(contains(unknown.err, "vtx-2006")) << "the profiles it has: " << unknown.err;

  auto not_a_trace = vmlab({"simulate", "s.json"});
  EXPECT_EQ(not_a_trace.status, 69) << not_a_trace.err;
}

// Defect 2: timeouts that overflowed or became 0 ms.
TEST_F(CliTest, OverflowingTimeoutsAreUsageErrors) {
  for (const char* timeout : {"inf", "1e300", "1e10", "nan", "-3", "0"}) {
    auto run = vmlab({"run", "--timeout", timeout});
    EXPECT_EQ(run.status, 64) << timeout << ": " << run.err;
    EXPECT_TRUE(contains(run.err, "86400")) << timeout << ": " << run.err;
    auto compare = vmlab({"compare", "--timeout", timeout});
    EXPECT_EQ(compare.status, 64) << timeout << ": " << compare.err;
  }
}

TEST_F(CliTest, ALongTimeoutRunsTheGuest) {
  VMLAB_REQUIRE_KVM();
  auto run = vmlab({"run", "--timeout", "86400", "--quiet"});
  EXPECT_EQ(run.status, 0) << run.err;
}

// Defect 3: a guest status of 256 made vmlab exit 0.
TEST_F(CliTest, GuestStatusAbove255IsNotSuccess) {
  VMLAB_REQUIRE_KVM();
  const std::vector<std::uint8_t> code{0xb8, 0x00, 0x01, 0x00, 0x00,  // mov $256, %eax
                                       0xe7, 0xf4,                    // out %eax, $0xf4
                                       0xf4, 0xeb, 0xfe};             // hlt; jmp .
  const auto guest = testing::write_guest_file("vmlab-cli-status-256.elf", code, 0x1000);
  auto run = vmlab({"run", "--guest", guest.string()});
  fs::remove(guest);
  EXPECT_NE(run.status, 0) << run.out;
  EXPECT_EQ(run.status, 63) << run.out << run.err;
  EXPECT_TRUE(contains(run.out, "guest status:  256")) << run.out;
}

TEST_F(CliTest, GuestStatusInRangeIsPassedThrough) {
  VMLAB_REQUIRE_KVM();
  auto run = vmlab({"run", "--workload", "fault", "--quiet"});
  EXPECT_EQ(run.status, 3) << run.err;
}

// Defect 4: --guest on a FIFO hung, on a directory said "internal error".
TEST_F(CliTest, GuestMustBeARegularFile) {
  ASSERT_EQ(::mkfifo(path("guest.fifo").c_str(), 0600), 0);
  auto fifo = vmlab({"run", "--guest", "guest.fifo"}, std::chrono::seconds(20));
  EXPECT_FALSE(fifo.timed_out) << "vmlab waited for a writer on the FIFO";
  EXPECT_EQ(fifo.status, 69) << fifo.err;
  EXPECT_TRUE(contains(fifo.err, "not a regular file")) << fifo.err;

  fs::create_directory(path("guest.d"));
  auto directory = vmlab({"run", "--guest", "guest.d"});
  EXPECT_EQ(directory.status, 69) << directory.err;
  EXPECT_TRUE(contains(directory.err, "is a directory")) << directory.err;
  EXPECT_FALSE(contains(directory.err, "internal error")) << directory.err;

  auto device = vmlab({"run", "--guest", "/dev/zero"}, std::chrono::seconds(20));
  EXPECT_FALSE(device.timed_out) << "vmlab kept reading /dev/zero";
  EXPECT_EQ(device.status, 69) << device.err;
}

TEST_F(CliTest, GuestLargerThanTheLimitIsRefusedNamingIt) {
  write_file(path("big.elf"), "");
  fs::resize_file(path("big.elf"), 64 * 1024 * 1024 + 1);  // sparse
  auto run = vmlab({"run", "--guest", "big.elf"});
  EXPECT_EQ(run.status, 69) << run.err;
  EXPECT_TRUE(contains(run.err, "64MiB")) << run.err;
}

// Defect 5: --mem and --cmdline errors named the wrong rule, or exited 69.
TEST_F(CliTest, MemoryAndCommandLineLimitsAreUsageErrors) {
  auto terabyte = vmlab({"run", "--mem", "1T"});
  EXPECT_EQ(terabyte.status, 64) << terabyte.err;
  EXPECT_TRUE(contains(terabyte.err, "maximum, 3G")) << terabyte.err;
  auto four = vmlab({"run", "--mem", "4G"});
  EXPECT_EQ(four.status, 64) << four.err;
  EXPECT_TRUE(contains(four.err, "maximum, 3G")) << four.err;
  auto compare = vmlab({"compare", "--mem", "4G"});
  EXPECT_EQ(compare.status, 64) << compare.err;
  auto command_line = vmlab({"run", "--cmdline", std::string(5000, 'x')});
  EXPECT_EQ(command_line.status, 64) << command_line.err;
  EXPECT_TRUE(contains(command_line.err, "4095")) << command_line.err;
}

// vmlab info names the backend and CPU and says whether a deprivileged
// kernel's cpuid reaches the VMM (PLATFORM.md "Hosts differ").
TEST_F(CliTest, InfoSaysWhoAnswersCpuidAtCpl3) {
  VMLAB_REQUIRE_KVM();
  auto run = vmlab({"info"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(contains(run.out, "KVM backend:")) << run.out;
  const auto line = run.out.find("CPUID_AT_CPL3");
  ASSERT_NE(line, std::string::npos) << run.out;
  const std::string rest = run.out.substr(line, run.out.find('\n', line) - line);
  EXPECT_TRUE(contains(rest, " yes ") || contains(rest, " no ") || contains(rest, " ? ")) << rest;
  EXPECT_TRUE(contains(rest, "cpuid at guest CPL3 returns the VMM's leaves")) << rest;
}

TEST_F(CliTest, UnknownOptionsAreNamed) {
  for (const auto& command : {"run", "compare"}) {
    auto last = vmlab({command, "--frobnicate"});
    EXPECT_EQ(last.status, 64) << last.err;
    EXPECT_TRUE(contains(last.err, "unknown option '--frobnicate'")) << last.err;
    auto with_value = vmlab({command, "--frobnicate", "3"});
    EXPECT_EQ(with_value.status, 64) << with_value.err;
    EXPECT_TRUE(contains(with_value.err, "unknown option '--frobnicate'")) << with_value.err;
    auto operand = vmlab({command, "stray"});
    EXPECT_EQ(operand.status, 64) << operand.err;
    EXPECT_TRUE(contains(operand.err, "'stray'")) << operand.err;
  }
  auto missing = vmlab({"run", "--trace"});
  EXPECT_EQ(missing.status, 64);
  EXPECT_TRUE(contains(missing.err, "--trace needs a value")) << missing.err;
  auto format = vmlab({"trace", "export", "x.tsv", "--format"});
  EXPECT_EQ(format.status, 64);
  EXPECT_TRUE(contains(format.err, "--format needs a value")) << format.err;
  auto trace = vmlab({"trace", "summary", "x.tsv", "--frobnicate"});
  EXPECT_EQ(trace.status, 64);
  EXPECT_TRUE(contains(trace.err, "unknown option '--frobnicate'")) << trace.err;
  auto disk = vmlab({"disk", "create", "x.img", "1M", "--frobnicate"});
  EXPECT_EQ(disk.status, 64);
  EXPECT_TRUE(contains(disk.err, "unknown option '--frobnicate'")) << disk.err;
  EXPECT_FALSE(fs::exists(path("x.img")));
}

// A usage error is one line (exit 64) that names the option and the value at
// fault and points to the command's --help; found before any VM exists.
TEST_F(CliTest, BadValuesNameTheOptionAndPointToHelp) {
  struct Case {
    std::vector<std::string> arguments;
    std::string named;
    std::string help;
  };
  for (const auto& [arguments, named, help] : {
           Case{{"run", "--cpu", "tcg"}, "--cpu: 'tcg'", "vmlab run --help"},
           Case{{"run", "--irqchip", "pic"}, "--irqchip: 'pic'", "vmlab run --help"},
           Case{{"run", "--disk-model", "nvme"}, "--disk-model: 'nvme'", "vmlab run --help"},
           Case{{"run", "--iommu", "maybe"}, "--iommu: 'maybe'", "vmlab run --help"},
           Case{{"run", "--mem", "64X"}, "--mem: '64X'", "vmlab run --help"},
           Case{{"run", "-n", "-1"}, "--count: '-1'", "vmlab run --help"},
           Case{{"compare", "--irqchip", "vmm,pic"}, "--irqchip: 'pic'", "vmlab compare --help"},
           Case{{"compare", "--cpu", "tcg"}, "--cpu: 'tcg'", "vmlab compare --help"},
           Case{{"trace", "export", "--format", "xml", "x.tsv"},
                "--format: 'xml'",
                "vmlab trace export --help"},
           Case{{"disk", "create", "x.img", "64X"}, "SIZE: '64X'", "vmlab disk create --help"},
           Case{{"frobnicate"}, "unknown command 'frobnicate'", "vmlab --help"},
       }) {
    auto run = vmlab(arguments);
    EXPECT_EQ(run.status, 64) << arguments[0] << ": " << run.err;
    EXPECT_TRUE(contains(run.err, named)) << run.err;
    EXPECT_TRUE(contains(run.err, help)) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << "one line: " << run.err;
    EXPECT_TRUE(run.out.empty()) << run.out;
  }
  EXPECT_FALSE(fs::exists(path("x.img")));
  EXPECT_EQ(m_directory.entries(), std::vector<std::string>{});
}

TEST_F(CliTest, EveryCommandsHelpExitsZeroAndListsItsOptions) {
  struct Case {
    std::vector<std::string> arguments;
    std::vector<std::string> mentions;
  };
  for (const auto& [arguments, mentions] : {
           Case{{"--help"},
                {"Usage: vmlab", "compare", "probe", "run", "trace", "info", "disk",
                 "exit status:", "64 a usage error"}},
           Case{{"run", "--help"},
                {"--cpu hvm|full|bt|para", "--mem SIZE", "--timeout S", "--disk-model",
                 "(default: virtio)", "workloads:", "syscalls    N=1000", "exit status:"}},
           Case{{"compare", "--help"}, {"--workloads LIST", "syscalls:5000", "--json FILE"}},
           Case{{"probe", "--help"}, {"Usage: vmlab probe"}},
           Case{{"info", "--help"}, {"Usage: vmlab info"}},
           Case{{"trace", "--help"}, {"summary", "export"}},
           Case{{"trace", "summary", "--help"}, {"TRACE"}},
           Case{{"trace", "export", "--help"}, {"--format perfetto|csv", "-o OUTPUT"}},
           Case{{"disk", "--help"}, {"create", "info"}},
           Case{{"disk", "create", "--help"}, {"PATH", "SIZE", "--force"}},
           Case{{"disk", "info", "--help"}, {"PATH"}},
           Case{{"help", "run"}, {"--cpu hvm|full|bt|para"}},
       }) {
    auto help = vmlab(arguments);
    EXPECT_EQ(help.status, 0) << arguments[0] << ": " << help.err;
    EXPECT_TRUE(help.err.empty()) << help.err;
    for (const auto& mention : mentions)
      EXPECT_TRUE(contains(help.out, mention)) << "no '" << mention << "' in\n" << help.out;
  }
  auto version = vmlab({"--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out, "vmlab 0.1.0\n");
  // No command at all: the overview, as a usage error.
  auto nothing = vmlab({});
  EXPECT_EQ(nothing.status, 64);
  EXPECT_TRUE(nothing.out.empty()) << nothing.out;
  EXPECT_TRUE(contains(nothing.err, "Commands:")) << nothing.err;
}

// One size grammar: what `disk create` takes, --mem takes.
TEST_F(CliTest, MemAndDiskCreateTakeTheSameSizes) {
  int index = 0;
  for (const char* size : {"64M", "64MiB", "64MB", "65536K", "67108864"}) {
    const std::string image = "d" + std::to_string(index++) + ".img";
    auto create = vmlab({"disk", "create", image, size});
    ASSERT_EQ(create.status, 0) << size << ": " << create.err;
    EXPECT_EQ(fs::file_size(path(image)), 64u * 1024 * 1024) << size;
    // Refused for --umip, after --mem was taken: no VM is made.
    auto run = vmlab({"run", "--mem", size, "--umip"});
    EXPECT_EQ(run.status, 64) << size;
    EXPECT_TRUE(contains(run.err, "--umip applies to --cpu full")) << size << ": " << run.err;
  }
  for (const char* size : {"64X", "1.5G", "0x100"}) {
    auto create = vmlab({"disk", "create", "bad.img", size});
    EXPECT_EQ(create.status, 64) << size;
    EXPECT_TRUE(contains(create.err, "is not a size")) << create.err;
    auto run = vmlab({"run", "--mem", size});
    EXPECT_EQ(run.status, 64) << size;
    EXPECT_TRUE(contains(run.err, "is not a size")) << run.err;
  }
  EXPECT_FALSE(fs::exists(path("bad.img")));
}

TEST_F(CliTest, ARunWithMemoryInMebibytes) {
  VMLAB_REQUIRE_KVM();
  auto run = vmlab({"run", "--mem", "96MiB", "--quiet"});
  EXPECT_EQ(run.status, 0) << run.err;
}

}  // namespace
}  // namespace vmlab
