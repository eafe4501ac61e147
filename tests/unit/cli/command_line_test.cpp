// Each command's parser, from an argv to its typed command: what the options
// fill in, the defaults, the usage errors (named, and pointing to --help),
// and the help. Parsing starts no VM and opens no file.
#include "vmlab/command_line.hpp"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "vmlab/cli_error.hpp"

namespace vmlab::cli {
namespace {

using Arguments = std::vector<std::string>;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The command `arguments` parse to, which must be a `Kind`.
template <typename Kind>
Kind parsed(const Arguments& arguments) {
  auto command = parse_command_line(arguments);
  EXPECT_TRUE(command.ok()) << (command.ok() ? "" : command.error().message);
  if (!command.ok()) return Kind{};
  const Kind* kind = std::get_if<Kind>(&*command);
  EXPECT_NE(kind, nullptr) << "another command, index " << command->index();
  return kind != nullptr ? *kind : Kind{};
}

// The usage error `arguments` give.
Error refused(const Arguments& arguments) {
  auto command = parse_command_line(arguments);
  EXPECT_FALSE(command.ok()) << "accepted";
  return command.ok() ? Error{std::error_code(), "accepted"} : command.error();
}

std::string joined(const Arguments& arguments) {
  std::string text = "vmlab";
  for (const auto& argument : arguments)
    text += " " + argument;
  return text;
}

// A command line the parser refuses, the kind of its error, and what the
// message must name for the user to fix it.
struct Refusal {
  Arguments arguments;
  CliError kind;
  std::string names;
};

std::string help_of(const Arguments& arguments) {
  const auto help = parsed<HelpText>(arguments);
  EXPECT_FALSE(help.usage_error);
  return help.text;
}

TEST(RunParser, DefaultsAreRunOptionsDefaults) {
  const auto run = parsed<RunCommand>({"run"});
  const RunOptions defaults;
  EXPECT_EQ(run.options.cpu, defaults.cpu);
  EXPECT_EQ(run.options.workload, defaults.workload);
  EXPECT_FALSE(run.options.count.has_value());
  EXPECT_EQ(run.options.memory_size, defaults.memory_size);
  EXPECT_EQ(run.options.timeout_seconds, defaults.timeout_seconds);
  EXPECT_EQ(run.options.irqchip, defaults.irqchip);
  EXPECT_EQ(run.options.disk_model, defaults.disk_model);
  EXPECT_TRUE(run.options.iommu);
  EXPECT_TRUE(run.options.virtio_ioeventfd);
  EXPECT_FALSE(run.quiet);
}

TEST(RunParser, EveryOptionReachesTheTypedOptions) {
  const auto run = parsed<RunCommand>({"run",          "--cpu",          "full",
                                       "--umip",       "--workload",     "syscalls:100",
                                       "--mem",        "128MiB",         "--timeout",
                                       "2.5",          "--irqchip",      "kernel",
                                       "--trace",      "t.tsv",          "--console",
                                       "c.txt",        "--quiet",        "--cmdline",
                                       "hz=1000",      "--disk",         "d.img",
                                       "--disk-model", "passthrough",    "--iommu",
                                       "off",          "--no-ioeventfd", "--disk-readonly",
                                       "--guest",      "g.elf"});
  const RunOptions& options = run.options;
  EXPECT_EQ(options.cpu, "full");
  EXPECT_TRUE(options.umip);
  EXPECT_EQ(options.workload, "syscalls");
  EXPECT_EQ(options.count, std::uint64_t{100});
  EXPECT_EQ(options.memory_size, 128 * MiB);
  EXPECT_DOUBLE_EQ(options.timeout_seconds, 2.5);
  EXPECT_EQ(options.irqchip, IrqchipModel::Kernel);
  EXPECT_EQ(options.trace_path, "t.tsv");
  EXPECT_EQ(options.console_path, "c.txt");
  EXPECT_TRUE(run.quiet);
  EXPECT_EQ(options.extra_command_line, "hz=1000");
  EXPECT_EQ(options.disk_path, "d.img");
  EXPECT_EQ(options.disk_model, "passthrough");
  EXPECT_FALSE(options.iommu);
  EXPECT_FALSE(options.virtio_ioeventfd);
  EXPECT_TRUE(options.disk_readonly);
  EXPECT_EQ(options.guest_path, "g.elf");

  const auto virtio = parsed<RunCommand>(
      {"run", "--disk=d.img", "--virtio-event-idx", "--workload=disk-verify", "-n", "8"});
  EXPECT_TRUE(virtio.options.virtio_event_index);
  EXPECT_EQ(virtio.options.workload, "disk-verify");
  EXPECT_EQ(virtio.options.count, std::uint64_t{8});
  EXPECT_EQ(parsed<RunCommand>({"run", "-n5"}).options.count, std::uint64_t{5});
}

TEST(RunParser, TheLastOfARepeatedOptionCounts) {
  EXPECT_EQ(parsed<RunCommand>({"run", "--cpu", "full", "--cpu", "para"}).options.cpu, "para");
}

// The options are judged by check_run_options, in one place with one set of
// messages: the parser's error is its error, for the same options made by
// hand.
TEST(RunParser, TheOptionsAreCheckedByCheckRunOptions) {
  struct Case {
    Arguments arguments;
    void (*make)(RunOptions&);
    CliError kind;
  };
  constexpr auto kConflict = CliError::kConflictingOptions;
  for (const auto& [arguments, make, kind] : {
           Case{{"run", "--umip"}, [](RunOptions& options) { options.umip = true; }, kConflict},
           Case{{"run", "--workload", "warp"},
                [](RunOptions& options) { options.workload = "warp"; },
                CliError::kInvalidValue},
           Case{{"run", "--workload", "disk-read"},
                [](RunOptions& options) { options.workload = "disk-read"; },
                kConflict},
           Case{{"run", "--virtio-event-idx"},
                [](RunOptions& options) { options.virtio_event_index = true; },
                kConflict},
           Case{{"run", "--iommu", "off"},
                [](RunOptions& options) { options.iommu = false; },
                kConflict},
           Case{{"run", "--disk-readonly"},
                [](RunOptions& options) { options.disk_readonly = true; },
                kConflict},
           Case{{"run", "--disk-model", "ata"},
                [](RunOptions& options) { options.disk_model = "ata"; },
                kConflict},
           Case{{"run", "--cmdline", std::string(5000, 'x')},
                [](RunOptions& options) { options.extra_command_line = std::string(5000, 'x'); },
                CliError::kInvalidValue},
       }) {
    RunOptions options;
    make(options);
    const Status checked = check_run_options(options);
    ASSERT_FALSE(checked.ok()) << arguments[1];
    EXPECT_EQ(checked.error().kind, kind) << arguments[1] << ": " << checked.error().message;
    const Error error = refused(arguments);
    EXPECT_EQ(error.kind, kind) << arguments[1];
    EXPECT_EQ(error.message, checked.error().message + "; see 'vmlab run --help'");
  }
  // A guest of one's own may have workloads the built-in guest has not.
  EXPECT_EQ(parsed<RunCommand>({"run", "--guest", "g.elf", "--workload", "mine"}).options.workload,
            "mine");
}

// One size grammar: --mem and `disk create` take the same spellings.
TEST(SizeOptions, MemAndDiskCreateTakeTheSameSpellings) {
  for (const char* spelling :
       {"64M", "64m", "64MiB", "64mib", "64MB", "65536K", "65536KiB", "67108864", "67108864B"}) {
    EXPECT_EQ(parsed<RunCommand>({"run", "--mem", spelling}).options.memory_size, 64 * MiB)
        << spelling;
    EXPECT_EQ(parsed<DiskCreateCommand>({"disk", "create", "d.img", spelling}).size_bytes, 64 * MiB)
        << spelling;
  }
  for (const char* spelling : {"1G", "1GiB", "1gb", "1024M"}) {
    EXPECT_EQ(parsed<RunCommand>({"run", "--mem", spelling}).options.memory_size, GiB) << spelling;
    EXPECT_EQ(parsed<DiskCreateCommand>({"disk", "create", "d.img", spelling}).size_bytes, GiB)
        << spelling;
  }
  // What neither takes, both refuse as no size at all.
  for (const char* spelling : {"64X", "1.5G", "-64M", "0x100", "64 M", "64KiBB", "512iB"}) {
    for (const Arguments& arguments :
         {Arguments{"run", "--mem", spelling}, Arguments{"disk", "create", "d.img", spelling}}) {
      const Error error = refused(arguments);
      EXPECT_EQ(error.kind, CliError::kInvalidValue) << joined(arguments);
      EXPECT_TRUE(contains(error.message, "is not a size")) << error.message;
    }
  }
}

TEST(CompareParser, ListsBecomeTypedOptions) {
  const auto compare = parsed<CompareCommand>(
      {"compare", "--workloads", "syscalls:50,pio", "--cpu", "hvm,full", "--irqchip", "kernel",
       "--disk-model", "ata,virtio", "--json", "r.json", "--mem", "1GiB", "--timeout", "90"});
  const CompareOptions& options = compare.options;
  ASSERT_EQ(options.workloads.size(), 2u);
  EXPECT_EQ(options.workloads[0].name, "syscalls");
  EXPECT_EQ(options.workloads[0].count, 50u);
  EXPECT_EQ(options.workloads[1].count, find_workload("pio")->default_count);
  EXPECT_EQ(options.cpus, (std::vector<std::string>{"hvm", "full"}));
  EXPECT_EQ(options.irqchips, std::vector<IrqchipModel>{IrqchipModel::Kernel});
  EXPECT_EQ(options.disk_models, (std::vector<std::string>{"ata", "virtio"}));
  EXPECT_EQ(compare.json_path, "r.json");
  EXPECT_EQ(options.memory_size, GiB);
  EXPECT_DOUBLE_EQ(options.timeout_seconds, 90);

  const auto defaults = parsed<CompareCommand>({"compare"});
  EXPECT_TRUE(defaults.options.workloads.empty()) << "empty: the default set";
  EXPECT_TRUE(defaults.json_path.empty());
  EXPECT_DOUBLE_EQ(defaults.options.timeout_seconds, CompareOptions{}.timeout_seconds);
}

TEST(TraceParser, SummaryAndExport) {
  EXPECT_EQ(parsed<TraceSummaryCommand>({"trace", "summary", "run.tsv"}).trace_path, "run.tsv");
  const auto csv = parsed<TraceExportCommand>(
      {"trace", "export", "--format", "csv", "run.tsv", "-o", "run.csv"});
  EXPECT_EQ(csv.format, TraceFormat::Csv);
  EXPECT_EQ(csv.trace_path, "run.tsv");
  EXPECT_EQ(csv.output_path, "run.csv");
  const auto perfetto =
      parsed<TraceExportCommand>({"trace", "export", "run.tsv", "--format", "perfetto"});
  EXPECT_EQ(perfetto.format, TraceFormat::Perfetto);
  EXPECT_TRUE(perfetto.output_path.empty()) << "standard output";
}

TEST(DiskParser, CreateAndInfo) {
  const auto create = parsed<DiskCreateCommand>({"disk", "create", "d.img", "16M", "--force"});
  EXPECT_EQ(create.path, "d.img");
  EXPECT_EQ(create.size_bytes, 16 * MiB);
  EXPECT_TRUE(create.force);
  EXPECT_FALSE(parsed<DiskCreateCommand>({"disk", "create", "d.img", "16M"}).force);
  EXPECT_EQ(parsed<DiskInfoCommand>({"disk", "info", "d.img"}).path, "d.img");
}

TEST(ScorecardParser, TechniquesOutputsAndInput) {
  const auto scorecard =
      parsed<ScorecardCommand>({"scorecard", "--cpu", "hvm,qemu-tcg,hvm", "--json", "s.json"});
  EXPECT_EQ(scorecard.techniques, (std::vector<std::string>{"hvm", "qemu-tcg"}));
  EXPECT_EQ(scorecard.json_path, "s.json");
  EXPECT_TRUE(scorecard.input_path.empty());
  const auto defaults = parsed<ScorecardCommand>({"scorecard"});
  EXPECT_TRUE(defaults.techniques.empty()) << "empty: every technique";
  EXPECT_EQ(parsed<ScorecardCommand>({"scorecard", "--input", "s.json"}).input_path, "s.json");
}

TEST(SimulateParser, ProfilesRepeatedOrListed) {
  const auto simulate =
      parsed<SimulateCommand>({"simulate", "t.tsv", "--profile", "vtx-2006", "--profile",
                               "amdv-npt,x.json", "--json", "s.json"});
  EXPECT_EQ(simulate.trace_path, "t.tsv");
  EXPECT_EQ(simulate.profiles, (std::vector<std::string>{"vtx-2006", "amdv-npt", "x.json"}));
  EXPECT_EQ(simulate.json_path, "s.json");
  EXPECT_TRUE(parsed<SimulateCommand>({"simulate", "t.tsv"}).profiles.empty());
  const auto calibrate =
      parsed<CalibrateCommand>({"calibrate", "-o", "p.json", "--cpu", "full,bt", "--no-validate"});
  EXPECT_EQ(calibrate.output_path, "p.json");
  EXPECT_EQ(calibrate.techniques, (std::vector<std::string>{"full", "bt"}));
  EXPECT_TRUE(calibrate.no_validate);
}

TEST(OtherParsers, ProbeAndInfo) {
  parsed<ProbeCommand>({"probe"});
  parsed<InfoCommand>({"info"});
}

// Every usage error the parsers make, command by command: the kind, and what
// the message must say for the user to fix it, with the --help it points to
// where that is the point.
TEST(UsageErrors, EachHasItsKindAndNamesTheProblem) {
  constexpr auto kUsage = CliError::kUsage;
  constexpr auto kInvalid = CliError::kInvalidValue;
  const Refusal refusals[] = {
      // run: what CLI11 cannot place.
      {{"run", "--frobnicate"}, kUsage, "unknown option '--frobnicate'; see 'vmlab run --help'"},
      {{"run", "--frobnicate", "3"}, kUsage, "unknown option '--frobnicate'; see 'vmlab run"},
      {{"run", "stray", "--frobnicate"}, kUsage, "unknown option '--frobnicate'; see 'vmlab run"},
      {{"run", "stray"}, kUsage, "run takes options only, not 'stray'"},
      // Another command's name is an operand, not a second command.
      {{"run", "compare"}, kUsage, "not 'compare'"},
      {{"run", "--trace"}, kUsage, "--trace needs a value"},
      // run: enumerations name the option and the choices.
      {{"run", "--cpu", "tcg"},
       kInvalid,
       "--cpu: 'tcg' is not one of hvm, full, bt, para; see 'vmlab run --help'"},
      {{"run", "--irqchip", "pic"}, kInvalid, "--irqchip: 'pic' is not one of vmm, kernel; see"},
      {{"run", "--irqchip", "1"}, kInvalid, "--irqchip: '1' is not one of vmm, kernel; see"},
      {{"run", "--disk", "d.img", "--disk-model", "nvme"},
       kInvalid,
       "--disk-model: 'nvme' is not one of ata, virtio, passthrough; see 'vmlab run --help'"},
      {{"run", "--iommu", "maybe"}, kInvalid, "--iommu: 'maybe' is not one of on, off; see"},
      // run: numbers use the project's parsers.
      {{"run", "-n", "-1"}, kInvalid, "--count: '-1' is not a count"},
      {{"run", "-n", "0x10"}, kInvalid, "--count: '0x10' is not a count"},
      {{"run", "-n", "99999999999999999999"}, kInvalid, "largest count"},
      {{"run", "--workload", "syscalls:x"}, kInvalid, "bad count"},
      {{"run", "--timeout", "inf"}, kInvalid, "--timeout: 'inf'"},
      {{"run", "--timeout", "1e300"}, kInvalid, "86400"},
      {{"run", "--mem", "4G"}, kInvalid, "--mem: guest memory of 4G is more than the maximum, 3G"},
      {{"run", "--mem", "65M"}, kInvalid, "2M steps"},
      {{"run", "--mem", "512"}, kInvalid, "minimum, 4M"},
      {{"run", "--workload", "syscalls:5", "-n", "6"},
       CliError::kConflictingOptions,
       "given twice"},
      // Each size has its own range.
      {{"disk", "create", "d.img", "1000"}, kInvalid, "512-byte sectors"},
      {{"disk", "create", "d.img", "2T"}, kInvalid, "maximum, 1T"},
      {{"disk", "create", "d.img", "0"}, kInvalid, "no sectors"},
      // compare: bad list items are named.
      {{"compare", "--cpu", "hvm,tcg"}, kInvalid, "--cpu: 'tcg' is not one of"},
      {{"compare", "--irqchip", "vmm,pic"}, kInvalid, "--irqchip: 'pic'"},
      {{"compare", "--disk-model", "nvme"}, kInvalid, "--disk-model: 'nvme'"},
      {{"compare", "--workloads", "pio,warp"}, kInvalid, "unknown workload 'warp'"},
      {{"compare", "--workloads", "pio:0"}, kInvalid, "N > 0"},
      {{"compare", "--cpu", ","}, kInvalid, "the list is empty"},
      {{"compare", "--frobnicate"},
       kUsage,
       "unknown option '--frobnicate'; see 'vmlab compare --help'"},
      // scorecard: its techniques, and --input scores a file as it is.
      {{"scorecard", "--cpu", "hvm,tcg"},
       kInvalid,
       "--cpu: 'tcg' is not one of hvm, full, bt, para, qemu-tcg; see 'vmlab scorecard --help'"},
      {{"scorecard", "--cpu", ","}, kInvalid, "the list is empty"},
      {{"scorecard", "--input", "s.json", "--cpu", "hvm"},
       CliError::kConflictingOptions,
       "--input scores a file as it is"},
      {{"scorecard", "extra"}, kUsage, "scorecard takes options only, not 'extra'"},
      // simulate and calibrate.
      {{"simulate"}, kUsage, "TRACE is required"},
      {{"simulate", "a.tsv", "b.tsv"}, kUsage, "not also 'b.tsv'"},
      {{"calibrate", "--cpu", "qemu-tcg"}, kInvalid, "--cpu: 'qemu-tcg' is not one of hvm"},
      // trace and disk: their actions.
      {{"trace"}, kUsage, "trace needs an action: summary or export; see 'vmlab trace --help'"},
      {{"trace", "frob", "x.tsv"}, kUsage, "unknown trace action 'frob'"},
      {{"trace", "summary"}, kUsage, "TRACE is required"},
      {{"trace", "export", "x.tsv"}, kUsage, "--format is required"},
      {{"trace", "export", "x.tsv", "--format"}, kUsage, "--format needs a value"},
      {{"trace", "export", "x.tsv", "--format", "xml"},
       kInvalid,
       "--format: 'xml' is not one of perfetto, csv; see 'vmlab trace export --help'"},
      {{"trace", "summary", "x.tsv", "--format", "csv"}, kUsage, "unknown option '--format'"},
      {{"trace", "summary", "a.tsv", "b.tsv"}, kUsage, "takes TRACE, not also 'b.tsv'"},
      {{"disk", "create", "d.img"}, kUsage, "SIZE is required"},
      {{"disk", "info", "d.img", "--force"}, kUsage, "unknown option '--force'"},
      {{"disk", "frob"}, kUsage, "unknown disk action 'frob'"},
      {{"disk", "create", "d.img", "1M", "x"}, kUsage, "not also 'x'"},
      // The other commands, and none.
      {{"probe", "x"}, kUsage, "probe takes options only, not 'x'"},
      {{"info", "--all"}, kUsage, "unknown option '--all'"},
      {{"frob"}, kUsage, "unknown command 'frob'; see 'vmlab --help'"},
      {{"--frob"}, kUsage, "unknown option '--frob'"},
      {{"help", "frob"}, kUsage, "unknown command 'frob'; see 'vmlab --help'"},
      {{"help", "trace", "frob"}, kUsage, "unknown trace action 'frob'"},
  };
  for (const auto& [arguments, kind, names] : refusals) {
    const Error error = refused(arguments);
    EXPECT_EQ(error.kind, kind) << joined(arguments) << ": " << error.message;
    EXPECT_TRUE(contains(error.message, names)) << joined(arguments) << ": " << error.message;
  }
}

TEST(Help, NoCommandIsAUsageErrorShowingTheCommands) {
  const auto overview = parsed<HelpText>({});
  EXPECT_TRUE(overview.usage_error);
  for (const char* command : {"compare", "report", "scorecard", "simulate", "calibrate", "probe",
                              "run", "trace", "info", "disk", "help"})
    EXPECT_TRUE(contains(overview.text, command)) << overview.text;
  EXPECT_EQ(help_of({"--help"}), overview.text);
  EXPECT_EQ(help_of({"help"}), overview.text);
  EXPECT_EQ(help_of({"--version"}), "vmlab 0.1.0\n");
  // vmlab's own exit statuses, usage errors apart from failed runs.
  EXPECT_TRUE(contains(overview.text, "exit status: 0 done; 64 a usage error")) << overview.text;
  EXPECT_FALSE(contains(help_of({"compare", "--help"}), "exit status:")) << "not inherited";
}

TEST(Help, EachCommandsHelpListsItsOptions) {
  struct Case {
    Arguments arguments;
    std::vector<std::string> mentions;
  };
  for (const auto& [arguments, mentions] : {
           Case{{"run", "--help"},
                {"Usage: vmlab run",
                 "--cpu hvm|full|bt|para",
                 "(default: hvm)",
                 "--workload W[:N]",
                 "-n,--count N",
                 "--mem SIZE",
                 "(default 64M)",
                 "--timeout S",
                 "(default 30)",
                 "--irqchip vmm|kernel",
                 "--trace FILE",
                 "--console FILE",
                 "--quiet",
                 "--cmdline TEXT",
                 "--disk PATH",
                 "--disk-readonly",
                 "--disk-model ata|virtio|passthrough",
                 "(default: virtio)",
                 "--iommu on|off",
                 "--virtio-event-idx",
                 "--no-ioeventfd",
                 "--umip",
                 "--guest ELF",
                 "workloads:",
                 "syscalls    N=1000",
                 "dma-attack",
                 "exit status:"}},
           Case{{"compare", "--help"},
                {"Usage: vmlab compare", "--workloads LIST", "syscalls:5000", "--cpu LIST",
                 "--irqchip LIST", "--disk-model LIST", "disk-verify:128", "--json FILE",
                 "--mem SIZE", "--timeout S", "(default 60)"}},
           Case{{"probe", "--help"}, {"Usage: vmlab probe", "QEMU"}},
           Case{{"simulate", "--help"},
                {"Usage: vmlab simulate", "TRACE", "--profile NAME", "vtx-2006",
                 "--host-profile NAME", "--json FILE"}},
           Case{{"calibrate", "--help"},
                {"Usage: vmlab calibrate", "-o,--output FILE", "--cpu LIST", "--no-validate"}},
           Case{{"scorecard", "--help"},
                {"Usage: vmlab scorecard", "Popek and Goldberg", "--cpu LIST", "qemu-tcg",
                 "--json FILE", "--input FILE"}},
           Case{{"info", "--help"}, {"Usage: vmlab info", "capabilities"}},
           Case{{"trace", "--help"}, {"Usage: vmlab trace", "summary", "export"}},
           Case{{"trace", "summary", "--help"}, {"Usage: vmlab trace summary", "TRACE"}},
           Case{{"trace", "export", "--help"},
                {"Usage: vmlab trace export", "--format perfetto|csv", "-o OUTPUT", "TRACE"}},
           Case{{"disk", "--help"}, {"Usage: vmlab disk", "create", "info"}},
           Case{{"disk", "create", "--help"},
                {"Usage: vmlab disk create", "PATH", "SIZE", "64MiB", "--force"}},
           Case{{"disk", "info", "--help"}, {"Usage: vmlab disk info", "PATH"}},
       }) {
    const std::string help = help_of(arguments);
    for (const auto& mention : mentions)
      EXPECT_TRUE(contains(help, mention)) << arguments[0] << ": no '" << mention << "' in\n"
                                           << help;
    // `vmlab help COMMAND` shows the same text.
    Arguments words{"help"};
    for (const auto& argument : arguments) {
      if (argument != "--help") words.push_back(argument);
    }
    EXPECT_EQ(help_of(words), help);
  }
}

TEST(Help, EveryBuiltInWorkloadIsListed) {
  const std::string help = help_of({"run", "--help"});
  for (const auto& workload : builtin_workloads())
    EXPECT_TRUE(contains(help, "  " + std::string(workload.name) + " ")) << workload.name;
}

TEST(Help, LinesFitEightyColumns) {
  for (const Arguments& arguments :
       {Arguments{"--help"}, Arguments{"run", "--help"}, Arguments{"compare", "--help"},
        Arguments{"trace", "export", "--help"}}) {
    const std::string help = help_of(arguments);
    std::size_t start = 0;
    while (start < help.size()) {
      const std::size_t end = std::min(help.find('\n', start), help.size());
      EXPECT_LE(end - start, 80u) << help.substr(start, end - start);
      start = end + 1;
    }
  }
}

}  // namespace
}  // namespace vmlab::cli
