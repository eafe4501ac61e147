// The checks `vmlab run` and `vmlab compare` make before anything runs (the
// options together, the guest file, which files an output may replace:
// OutputFile), and the exit status of a guest. No KVM needed.
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "../../support/scratch_files.hpp"
#include "vmlab/cli_error.hpp"
#include "vmlab/compare.hpp"
#include "vmlab/devices/raw_image_file.hpp"
#include "vmlab/runner.hpp"
#include "vmlab/trace.hpp"

namespace vmlab {
namespace {

namespace fs = std::filesystem;

using testing::contents_of;
using testing::write_file;

// A fresh directory per test; entries() counts what is in it.
class ScratchDirectory : public testing::ScratchDirectory {
 public:
  ScratchDirectory() : testing::ScratchDirectory("vmlab-cli-") {}
  std::size_t entries() const { return testing::ScratchDirectory::entries().size(); }
};

// A call that must fail with `kind`.
template <typename Value>
void expect_error(const Result<Value>& result, CliError kind) {
  ASSERT_FALSE(result.ok()) << "accepted";
  EXPECT_EQ(result.error().kind, kind) << result.error().message;
}

TEST(RunOptionsCheck, RefusesWhatMachineWouldRefuseLater) {
  RunOptions options;
  EXPECT_TRUE(check_run_options(options).ok());
  options.memory_size = kMaximumGuestMemory + 2 * MiB;
  expect_error(check_run_options(options), CliError::kInvalidValue);
  options.memory_size = 64 * MiB;
  options.timeout_seconds = 1e300;
  expect_error(check_run_options(options), CliError::kInvalidValue);
  options.timeout_seconds = 30;
  options.extra_command_line = std::string(kMaximumCommandLine, 'x');
  auto long_line = check_run_options(options);
  expect_error(long_line, CliError::kInvalidValue);
  EXPECT_NE(long_line.error().message.find("4095"), std::string::npos) << long_line.error().message;
  // Exactly the limit, with "workload=hello " in front, is fine.
  options.extra_command_line =
      std::string(kMaximumCommandLine - command_line_for({}).size() - 1, 'x');
  EXPECT_TRUE(check_run_options(options).ok()) << command_line_for(options).size();
  options.extra_command_line = std::string("a\0b", 3);
  expect_error(check_run_options(options), CliError::kInvalidValue);
}

TEST(RunOptionsCheck, OptionsThatNeedAnotherAreConflicts) {
  RunOptions umip;
  umip.umip = true;
  expect_error(check_run_options(umip), CliError::kConflictingOptions);
  umip.cpu = "full";
  EXPECT_TRUE(check_run_options(umip).ok());
  RunOptions disk_workload;
  disk_workload.workload = "disk-verify";
  expect_error(check_run_options(disk_workload), CliError::kConflictingOptions);
  disk_workload.disk_path = "d.img";
  EXPECT_TRUE(check_run_options(disk_workload).ok()) << "nothing is opened";
  RunOptions bad_mode;
  bad_mode.cpu = "tcg";
  auto refused = check_run_options(bad_mode);
  expect_error(refused, CliError::kInvalidValue);
  EXPECT_EQ(refused.error().message.rfind("--cpu: ", 0), 0u) << refused.error().message;
}

TEST(CompareOptionsCheck, RefusesBadMemoryAndTimeoutBeforeRunning) {
  CompareOptions options;
  EXPECT_TRUE(check_compare_options(options).ok());
  options.timeout_seconds = std::numeric_limits<double>::infinity();
  expect_error(check_compare_options(options), CliError::kInvalidValue);
  expect_error(run_comparison(options, nullptr), CliError::kInvalidValue);  // before any run
  options.timeout_seconds = 60;
  options.memory_size = 4 * GiB;
  expect_error(check_compare_options(options), CliError::kInvalidValue);
}

TEST(GuestExitStatus, NeverLooksLikeSuccessOrLikeVmlabsOwnStatus) {
  EXPECT_EQ(guest_exit_status(0), 0);
  EXPECT_EQ(guest_exit_status(3), 3);
  EXPECT_EQ(guest_exit_status(62), 62);
  for (std::uint32_t status :
       {63u, 64u, 69u, 70u, 124u, 255u, 256u, 257u, 512u, 0x10000u, 0x80000000u, 0xffffffffu}) {
    const int code = guest_exit_status(status);
    EXPECT_EQ(code, exit_status::kGuestStatusCap) << status;
    EXPECT_NE(code, 0) << status;
  }
  RunReport report;
  report.outcome = RunOutcome::GuestExited;
  report.exit_value = 256;
  EXPECT_EQ(run_exit_status(report), exit_status::kGuestStatusCap);
  report.outcome = RunOutcome::Timeout;
  EXPECT_EQ(run_exit_status(report), exit_status::kTimeout);
}

TEST(GuestFile, OnlyBoundedRegularFilesAreRead) {
  ScratchDirectory directory;
  auto in_directory = read_guest_file((directory / "").string());
  expect_error(in_directory, CliError::kGuestNotAFile);
  EXPECT_NE(in_directory.error().message.find("directory"), std::string::npos);

  expect_error(read_guest_file("/dev/zero"), CliError::kGuestNotAFile);

  const auto fifo = directory / "guest.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Must return at once, not wait for a writer.
  expect_error(read_guest_file(fifo.string()), CliError::kGuestNotAFile);

  const auto big = directory / "big.elf";
  write_file(big, "");
  fs::resize_file(big, kMaximumGuestFileSize + 1);  // sparse
  auto too_big = read_guest_file(big.string());
  expect_error(too_big, CliError::kGuestTooLarge);
  EXPECT_NE(too_big.error().message.find("64MiB"), std::string::npos) << too_big.error().message;

  auto missing = read_guest_file((directory / "missing.elf").string());
  expect_error(missing, CliError::kGuestUnreadable);
  EXPECT_EQ(missing.error().system_errno, ENOENT);

  const auto small = directory / "small.elf";
  write_file(small,
             "\x7f"
             "ELF");
  auto read = read_guest_file(small.string());
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->size(), 4u);
}

TEST(OutputFile, NewFileAppearsOnlyOnCommit) {
  ScratchDirectory directory;
  const auto target = directory / "out.json";
  auto output = OutputFile::create(target.string(), "--json", OutputKind::Report);
  ASSERT_TRUE(output.ok()) << output.error().message;
  output->stream() << "{\n  \"platform\": \"x\"\n}\n";
  EXPECT_FALSE(fs::exists(target));
  ASSERT_TRUE(output->commit().ok());
  EXPECT_EQ(contents_of(target), "{\n  \"platform\": \"x\"\n}\n");
  EXPECT_EQ(directory.entries(), 1u) << "the temporary file is gone";
  // A second run replaces what the first wrote.
  auto again = OutputFile::create(target.string(), "--json", OutputKind::Report);
  ASSERT_TRUE(again.ok()) << again.error().message;
  again->stream() << "{\n  \"platform\": \"y\"\n}\n";
  ASSERT_TRUE(again->commit().ok());
  EXPECT_EQ(contents_of(target), "{\n  \"platform\": \"y\"\n}\n");
  expect_error(again->commit(), CliError::kOutputUnwritable);  // committed already
}

// What each writer produces is recognized as vmlab's, so the next run may
// replace it (a change of format that breaks this shows here).
TEST(OutputFile, EveryReportVmlabWritesMayBeReplacedByTheNext) {
  ScratchDirectory directory;
  const auto target = directory / "report";
  auto check_replaceable = [&](const std::string& what, auto write) {
    {
      std::ofstream file(target, std::ios::binary);
      write(file);
    }
    ASSERT_GT(fs::file_size(target), 0u) << what;
    auto output = OutputFile::create(target.string(), "-o", OutputKind::Report);
    EXPECT_TRUE(output.ok()) << what << ": " << output.error().message;
  };
  check_replaceable("trace", [](std::ostream& out) {
    write_trace(out, EventRecorder(16), "platform: test", "cpu=hvm workload=hello");
  });
  check_replaceable("comparison", [](std::ostream& out) {
    Comparison comparison;
    comparison.platform_line = "platform: test";
    write_comparison_json(comparison, out);
  });
  check_replaceable("perfetto export", [](std::ostream& out) { export_perfetto(Trace{}, out); });
  check_replaceable("csv export", [](std::ostream& out) { export_csv(Trace{}, out); });
}

TEST(OutputFile, UncommittedOutputLeavesTheTargetAsItWas) {
  ScratchDirectory directory;
  const auto target = directory / "run.tsv";
  write_file(target, "# vmlab-trace 2\nold\n");
  {
    auto output = OutputFile::create(target.string(), "--trace", OutputKind::Report);
    ASSERT_TRUE(output.ok()) << output.error().message;
    output->stream() << "# vmlab-trace 2\nnew\n";
  }  // a refused or failed run never commits
  EXPECT_EQ(contents_of(target), "# vmlab-trace 2\nold\n");
  EXPECT_EQ(directory.entries(), 1u) << "the temporary file is gone";
}

TEST(OutputFile, DiskImagesAndOtherDataAreNeverReplaced) {
  ScratchDirectory directory;
  const auto image = directory / "disk.img";
  ASSERT_TRUE(devices::create_raw_image(image.string(), 64 * 1024, false).ok());
  for (auto kind : {OutputKind::Report, OutputKind::Console}) {
    auto output = OutputFile::create(image.string(), "--trace", kind);
    expect_error(output, CliError::kOutputProtected);
    EXPECT_NE(output.error().message.find("--trace '" + image.string() + "'"), std::string::npos)
        << output.error().message;
  }
  EXPECT_EQ(fs::file_size(image), 64u * 1024);
  // Text is a console log's to replace, but no trace's.
  const auto notes = directory / "notes.txt";
  write_file(notes, "my notes\n");
  expect_error(OutputFile::create(notes.string(), "--trace", OutputKind::Report),
               CliError::kOutputProtected);
  EXPECT_TRUE(OutputFile::create(notes.string(), "--console", OutputKind::Console).ok());
  EXPECT_EQ(contents_of(notes), "my notes\n");
  EXPECT_EQ(directory.entries(), 2u);
}

TEST(OutputFile, AnInputOfTheCommandIsNeverReplaced) {
  ScratchDirectory directory;
  const auto input = directory / "run.tsv";
  write_file(input, "# vmlab-trace 2\n");  // replaceable by contents, but it is the input
  auto output = OutputFile::create(input.string(), "-o", OutputKind::Report,
                                   {{"the trace file", input.string()}});
  expect_error(output, CliError::kConflictingOptions);
  EXPECT_NE(output.error().message.find("the trace file"), std::string::npos)
      << output.error().message;
  // Also through another name for it.
  const auto link = directory / "link.tsv";
  fs::create_symlink(input, link);
  expect_error(OutputFile::create(link.string(), "-o", OutputKind::Report,
                                  {{"the trace file", input.string()}}),
               CliError::kConflictingOptions);
  EXPECT_EQ(contents_of(input), "# vmlab-trace 2\n");
}

TEST(OutputFile, AFileAnotherVmlabHoldsLockedIsNeverReplaced) {
  ScratchDirectory directory;
  const auto target = directory / "shared.tsv";
  write_file(target, "");  // empty: replaceable but for the lock
  const int descriptor = ::open(target.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(descriptor, 0);
  ASSERT_EQ(::flock(descriptor, LOCK_SH), 0);  // as a read-only RawImageFile does
  auto output = OutputFile::create(target.string(), "--trace", OutputKind::Report);
  ::close(descriptor);
  expect_error(output, CliError::kOutputProtected);
}

TEST(OutputFile, AWriteProtectedFileIsNeverReplaced) {
  ScratchDirectory directory;
  const auto target = directory / "kept.tsv";
  write_file(target, "# vmlab-trace 2\n");  // replaceable but for its permissions
  fs::permissions(target, fs::perms::owner_read | fs::perms::group_read);
  expect_error(OutputFile::create(target.string(), "--trace", OutputKind::Report),
               CliError::kOutputProtected);
  EXPECT_EQ(contents_of(target), "# vmlab-trace 2\n");
  EXPECT_EQ(directory.entries(), 1u);
}

TEST(OutputFile, DirectoriesFifosAndMissingDirectoriesAreRefused) {
  ScratchDirectory directory;
  const auto report = [](const fs::path& path) {
    return OutputFile::create(path.string(), "--json", OutputKind::Report);
  };
  expect_error(report(directory / ""), CliError::kOutputNotAFile);
  expect_error(OutputFile::create("", "--json", OutputKind::Report), CliError::kOutputNotAFile);
  const auto subdirectory = directory / "sub";
  fs::create_directory(subdirectory);
  expect_error(report(subdirectory), CliError::kOutputNotAFile);
  const auto fifo = directory / "out.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error(OutputFile::create(fifo.string(), "--console", OutputKind::Console),
               CliError::kOutputNotAFile);
  fs::create_symlink(directory / "nowhere", directory / "dangling.json");
  expect_error(report(directory / "dangling.json"), CliError::kOutputNotAFile);
  auto missing = report(directory / "no/such/out.json");
  expect_error(missing, CliError::kOutputUnwritable);
  EXPECT_NE(missing.error().message.find("does not exist"), std::string::npos)
      << missing.error().message;
  expect_error(report("/proc/vmlab-output.json"), CliError::kOutputUnwritable);
  EXPECT_EQ(directory.entries(), 3u);
}

TEST(OutputFile, ReplacementKeepsThePermissionsAndALinkItsTarget) {
  ScratchDirectory directory;
  const auto target = directory / "out.csv";
  write_file(target, "time_ns,duration_ns,old\n");
  fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  const auto link = directory / "latest.csv";
  fs::create_symlink(target.filename(), link);
  auto output = OutputFile::create(link.string(), "-o", OutputKind::Report);
  ASSERT_TRUE(output.ok()) << output.error().message;
  output->stream() << "time_ns,duration_ns,new\n";
  ASSERT_TRUE(output->commit().ok());
  EXPECT_TRUE(fs::is_symlink(link)) << "the link stays a link";
  EXPECT_EQ(contents_of(target), "time_ns,duration_ns,new\n");
  EXPECT_EQ(fs::status(target).permissions(),
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
}

TEST(RunOutputs, ConsoleAndTraceMayNotShareAFile) {
  ScratchDirectory directory;
  RunOptions options;
  options.trace_path = (directory / "out.txt").string();
  options.console_path = (directory / "." / "out.txt").string();
  expect_error(open_run_outputs(options), CliError::kConflictingOptions);
  EXPECT_EQ(directory.entries(), 0u);
}

TEST(RunOutputs, NeverTheRunsDiskOrGuest) {
  ScratchDirectory directory;
  const auto image = directory / "d.img";
  ASSERT_TRUE(devices::create_raw_image(image.string(), 1024 * 1024, false).ok());
  RunOptions options;
  options.workload = "disk-read";
  options.disk_path = image.string();
  options.trace_path = image.string();
  auto outputs = open_run_outputs(options);
  expect_error(outputs, CliError::kConflictingOptions);
  EXPECT_NE(outputs.error().message.find("--disk"), std::string::npos) << outputs.error().message;
  // run_guest itself refuses too, before running, and writes nothing.
  expect_error(run_guest(options), CliError::kConflictingOptions);
  EXPECT_EQ(fs::file_size(image), 1024u * 1024);
  EXPECT_EQ(directory.entries(), 1u);
}

}  // namespace
}  // namespace vmlab
