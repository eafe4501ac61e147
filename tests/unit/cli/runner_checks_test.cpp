// The checks `vmlab run` and `vmlab compare` make before anything runs: the
// timeout, the memory size, the command line, the exit status of a guest, and
// which files an output may replace (OutputFile). No KVM needed.
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "../../support/scratch_files.hpp"
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

TEST(TimeoutOption, OverflowingAndNonFiniteValuesAreRefused) {
  for (const char* text : {"inf", "infinity", "nan", "1e300", "1e10", "86401", "-1", "0", "0.0", "",
                           " 5", "+5", "0x10", "5s", "1e400"}) {
    EXPECT_FALSE(parse_timeout_seconds(text).ok()) << "'" << text << "' was accepted";
  }
  auto refused = parse_timeout_seconds("inf");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("86400"), std::string::npos) << "names the maximum";
}

TEST(TimeoutOption, SaneValuesAreAcceptedAndRoundedUpToAMillisecond) {
  auto seconds = parse_timeout_seconds("0.0001");
  ASSERT_TRUE(seconds.ok()) << seconds.error().message;
  auto tiny = timeout_duration(*seconds);
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(*tiny, std::chrono::milliseconds(1)) << "a 0.1 ms timeout must not become 0 ms";
  EXPECT_EQ(*timeout_duration(0.0015), std::chrono::milliseconds(2));
  EXPECT_EQ(*timeout_duration(30), std::chrono::milliseconds(30'000));
  auto longest = parse_timeout_seconds("86400");
  ASSERT_TRUE(longest.ok());
  EXPECT_EQ(*timeout_duration(*longest), std::chrono::hours(24));
  EXPECT_TRUE(parse_timeout_seconds("2e3").ok());
  // What Machine's wait_for gets fits steady_clock's nanoseconds with room.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout_duration(86400)).count(),
            std::chrono::nanoseconds::max().count() / 1000);
  EXPECT_FALSE(timeout_duration(1e300).ok());
  EXPECT_FALSE(timeout_duration(std::numeric_limits<double>::infinity()).ok());
  EXPECT_FALSE(timeout_duration(std::numeric_limits<double>::quiet_NaN()).ok());
}

TEST(MemoryOption, TooLargeNamesTheMaximum) {
  for (const char* text : {"1T", "4G", "3073M", "99999999999999999999G", "18446744073709551615"}) {
    auto size = parse_memory_size(text);
    ASSERT_FALSE(size.ok()) << text;
    EXPECT_NE(size.error().message.find("maximum, 3G"), std::string::npos)
        << text << ": " << size.error().message;
  }
  auto small = parse_memory_size("2M");
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.error().message.find("minimum, 4M"), std::string::npos) << small.error().message;
  auto odd = parse_memory_size("65M");
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message.find("2M steps"), std::string::npos) << odd.error().message;
  EXPECT_FALSE(parse_memory_size("lots").ok());
  EXPECT_FALSE(parse_memory_size("64MX").ok());
  EXPECT_EQ(*parse_memory_size("64M"), 64 * MiB);
  // The size grammar of `disk create` too (tests/unit/cli): binary units,
  // with or without iB or B.
  EXPECT_EQ(*parse_memory_size("64MiB"), 64 * MiB);
  EXPECT_EQ(*parse_memory_size("64MB"), 64 * MiB);
  EXPECT_EQ(*parse_memory_size("3G"), 3 * GiB);
  EXPECT_EQ(*parse_memory_size("4096k"), 4 * MiB);
}

TEST(RunOptionsCheck, RefusesWhatMachineWouldRefuseLater) {
  RunOptions options;
  EXPECT_TRUE(check_run_options(options).ok());
  options.memory_size = kMaximumGuestMemory + 2 * MiB;
  EXPECT_FALSE(check_run_options(options).ok());
  options.memory_size = 64 * MiB;
  options.timeout_seconds = 1e300;
  EXPECT_FALSE(check_run_options(options).ok());
  options.timeout_seconds = 30;
  options.extra_command_line = std::string(kMaximumCommandLine, 'x');
  auto long_line = check_run_options(options);
  ASSERT_FALSE(long_line.ok());
  EXPECT_NE(long_line.error().message.find("4095"), std::string::npos) << long_line.error().message;
  // Exactly the limit, with "workload=hello " in front, is fine.
  options.extra_command_line =
      std::string(kMaximumCommandLine - command_line_for({}).size() - 1, 'x');
  EXPECT_TRUE(check_run_options(options).ok()) << command_line_for(options).size();
}

TEST(CompareOptionsCheck, RefusesBadMemoryAndTimeoutBeforeRunning) {
  CompareOptions options;
  EXPECT_TRUE(check_compare_options(options).ok());
  options.timeout_seconds = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(check_compare_options(options).ok());
  EXPECT_FALSE(run_comparison(options, nullptr).ok()) << "refused before any run";
  options.timeout_seconds = 60;
  options.memory_size = 4 * GiB;
  EXPECT_FALSE(check_compare_options(options).ok());
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
  ASSERT_FALSE(in_directory.ok());
  EXPECT_NE(in_directory.error().message.find("directory"), std::string::npos);

  auto device = read_guest_file("/dev/zero");
  ASSERT_FALSE(device.ok());
  EXPECT_NE(device.error().message.find("not a regular file"), std::string::npos)
      << device.error().message;

  const auto fifo = directory / "guest.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto from_fifo = read_guest_file(fifo.string());  // must return at once, not wait for a writer
  ASSERT_FALSE(from_fifo.ok());
  EXPECT_NE(from_fifo.error().message.find("not a regular file"), std::string::npos);

  const auto big = directory / "big.elf";
  write_file(big, "");
  fs::resize_file(big, kMaximumGuestFileSize + 1);  // sparse
  auto too_big = read_guest_file(big.string());
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.error().message.find("64MiB"), std::string::npos) << too_big.error().message;

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
    ASSERT_FALSE(output.ok());
    EXPECT_NE(output.error().message.find("will not replace"), std::string::npos)
        << output.error().message;
  }
  EXPECT_EQ(fs::file_size(image), 64u * 1024);
  // Text is a console log's to replace, but no trace's.
  const auto notes = directory / "notes.txt";
  write_file(notes, "my notes\n");
  EXPECT_FALSE(OutputFile::create(notes.string(), "--trace", OutputKind::Report).ok());
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
  ASSERT_FALSE(output.ok());
  EXPECT_NE(output.error().message.find("same file"), std::string::npos) << output.error().message;
  // Also through another name for it.
  const auto link = directory / "link.tsv";
  fs::create_symlink(input, link);
  EXPECT_FALSE(OutputFile::create(link.string(), "-o", OutputKind::Report,
                                  {{"the trace file", input.string()}})
                   .ok());
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
  ASSERT_FALSE(output.ok());
  EXPECT_NE(output.error().message.find("in use by another vmlab"), std::string::npos)
      << output.error().message;
}

TEST(OutputFile, DirectoriesFifosAndMissingDirectoriesAreRefused) {
  ScratchDirectory directory;
  EXPECT_FALSE(OutputFile::create((directory / "").string(), "--json", OutputKind::Report).ok());
  const auto subdirectory = directory / "sub";
  fs::create_directory(subdirectory);
  EXPECT_FALSE(OutputFile::create(subdirectory.string(), "--json", OutputKind::Report).ok());
  const auto fifo = directory / "out.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto to_fifo = OutputFile::create(fifo.string(), "--console", OutputKind::Console);
  ASSERT_FALSE(to_fifo.ok());
  EXPECT_NE(to_fifo.error().message.find("not a regular file"), std::string::npos);
  auto missing =
      OutputFile::create((directory / "no/such/out.json").string(), "--json", OutputKind::Report);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("does not exist"), std::string::npos)
      << missing.error().message;
  EXPECT_FALSE(OutputFile::create("/proc/vmlab-output.json", "--json", OutputKind::Report).ok());
  EXPECT_EQ(directory.entries(), 2u);
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
  auto outputs = open_run_outputs(options);
  ASSERT_FALSE(outputs.ok());
  EXPECT_NE(outputs.error().message.find("same file"), std::string::npos)
      << outputs.error().message;
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
  ASSERT_FALSE(outputs.ok());
  EXPECT_NE(outputs.error().message.find("--disk"), std::string::npos) << outputs.error().message;
  // run_guest itself refuses too, before running, and writes nothing.
  auto run = run_guest(options);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(fs::file_size(image), 1024u * 1024);
  EXPECT_EQ(directory.entries(), 1u);
}

}  // namespace
}  // namespace vmlab
