// Each command's parser, from an argv to its typed command: what the options
// fill in, the defaults, the usage errors (named, and pointing to --help),
// and the help. Parsing starts no VM and opens no file.
#include "vmlab/command_line.hpp"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

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
std::string refused(const Arguments& arguments) {
  auto command = parse_command_line(arguments);
  EXPECT_FALSE(command.ok()) << "accepted";
  return command.ok() ? std::string() : command.error().message;
}

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

TEST(RunParser, UnknownOptionsAndOperandsAreNamed) {
  for (const Arguments& arguments :
       {Arguments{"run", "--frobnicate"}, Arguments{"run", "--frobnicate", "3"},
        Arguments{"run", "stray", "--frobnicate"}}) {
    const auto message = refused(arguments);
    EXPECT_TRUE(contains(message, "unknown option '--frobnicate'")) << message;
    EXPECT_TRUE(contains(message, "vmlab run --help")) << message;
  }
  EXPECT_TRUE(contains(refused({"run", "stray"}), "run takes options only, not 'stray'"));
  // Another command's name is an operand, not a second command.
  EXPECT_TRUE(contains(refused({"run", "compare"}), "not 'compare'"));
  EXPECT_TRUE(contains(refused({"run", "--trace"}), "--trace needs a value"));
}

TEST(RunParser, BadEnumerationValuesNameTheOptionAndTheChoices) {
  struct Case {
    Arguments arguments;
    std::string expected;
  };
  for (const auto& [arguments, expected] : {
           Case{{"run", "--cpu", "bt"}, "--cpu: 'bt' is not one of hvm, full, para"},
           Case{{"run", "--irqchip", "pic"}, "--irqchip: 'pic' is not one of vmm, kernel"},
           Case{{"run", "--irqchip", "1"}, "--irqchip: '1' is not one of vmm, kernel"},
           Case{{"run", "--disk", "d.img", "--disk-model", "nvme"},
                "--disk-model: 'nvme' is not one of ata, virtio, passthrough"},
           Case{{"run", "--iommu", "maybe"}, "--iommu: 'maybe' is not one of on, off"},
       }) {
    const auto message = refused(arguments);
    EXPECT_TRUE(contains(message, expected)) << message;
    EXPECT_TRUE(contains(message, "see 'vmlab run --help'")) << message;
  }
}

TEST(RunParser, NumbersUseTheProjectsParsers) {
  EXPECT_TRUE(contains(refused({"run", "-n", "-1"}), "--count: '-1' is not a count"));
  EXPECT_TRUE(contains(refused({"run", "-n", "0x10"}), "--count: '0x10' is not a count"));
  EXPECT_TRUE(contains(refused({"run", "-n", "99999999999999999999"}), "largest count"));
  EXPECT_TRUE(contains(refused({"run", "--workload", "syscalls:x"}), "bad count"));
  EXPECT_TRUE(contains(refused({"run", "--timeout", "inf"}), "--timeout: 'inf'"));
  EXPECT_TRUE(contains(refused({"run", "--timeout", "1e300"}), "86400"));
  EXPECT_TRUE(contains(refused({"run", "--mem", "4G"}), "--mem: guest memory of 4G"));
  EXPECT_TRUE(contains(refused({"run", "--mem", "4G"}), "maximum, 3G"));
  EXPECT_TRUE(contains(refused({"run", "--mem", "65M"}), "2M steps"));
  EXPECT_TRUE(contains(refused({"run", "--workload", "syscalls:5", "-n", "6"}), "given twice"));
}

// The options are judged by check_run_options, in one place with one set of
// messages: the parser's error is its error, for the same options made by
// hand.
TEST(RunParser, TheOptionsAreCheckedByCheckRunOptions) {
  struct Case {
    Arguments arguments;
    void (*make)(RunOptions&);
  };
  for (const auto& [arguments, make] : {
           Case{{"run", "--umip"}, [](RunOptions& options) { options.umip = true; }},
           Case{{"run", "--workload", "warp"},
                [](RunOptions& options) { options.workload = "warp"; }},
           Case{{"run", "--workload", "disk-read"},
                [](RunOptions& options) { options.workload = "disk-read"; }},
           Case{{"run", "--virtio-event-idx"},
                [](RunOptions& options) { options.virtio_event_index = true; }},
           Case{{"run", "--iommu", "off"}, [](RunOptions& options) { options.iommu = false; }},
           Case{{"run", "--disk-readonly"},
                [](RunOptions& options) { options.disk_readonly = true; }},
           Case{{"run", "--disk-model", "ata"},
                [](RunOptions& options) { options.disk_model = "ata"; }},
           Case{{"run", "--cmdline", std::string(5000, 'x')},
                [](RunOptions& options) { options.extra_command_line = std::string(5000, 'x'); }},
       }) {
    RunOptions options;
    make(options);
    const Status checked = check_run_options(options);
    ASSERT_FALSE(checked.ok()) << arguments[1];
    const auto message = refused(arguments);
    EXPECT_EQ(message, checked.error().message + "; see 'vmlab run --help'");
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
    EXPECT_TRUE(contains(refused({"run", "--mem", spelling}), "is not a size")) << spelling;
    EXPECT_TRUE(contains(refused({"disk", "create", "d.img", spelling}), "is not a size"))
        << spelling;
  }
}

TEST(SizeOptions, EachSizeHasItsOwnRange) {
  EXPECT_TRUE(contains(refused({"disk", "create", "d.img", "1000"}), "512-byte sectors"));
  EXPECT_TRUE(contains(refused({"disk", "create", "d.img", "2T"}), "maximum, 1T"));
  EXPECT_TRUE(contains(refused({"disk", "create", "d.img", "0"}), "no sectors"));
  EXPECT_EQ(parsed<DiskCreateCommand>({"disk", "create", "d.img", "512"}).size_bytes, 512u);
  EXPECT_EQ(parsed<DiskCreateCommand>({"disk", "create", "d.img", "1T"}).size_bytes, 1ull << 40);
  EXPECT_TRUE(contains(refused({"run", "--mem", "512"}), "minimum, 4M"));
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

TEST(CompareParser, BadListItemsAreNamed) {
  EXPECT_TRUE(contains(refused({"compare", "--cpu", "hvm,bt"}), "--cpu: 'bt' is not one of"));
  EXPECT_TRUE(contains(refused({"compare", "--irqchip", "vmm,pic"}), "--irqchip: 'pic'"));
  EXPECT_TRUE(contains(refused({"compare", "--disk-model", "nvme"}), "--disk-model: 'nvme'"));
  EXPECT_TRUE(contains(refused({"compare", "--workloads", "pio,warp"}), "unknown workload 'warp'"));
  EXPECT_TRUE(contains(refused({"compare", "--workloads", "pio:0"}), "N > 0"));
  EXPECT_TRUE(contains(refused({"compare", "--cpu", ","}), "the list is empty"));
  const auto message = refused({"compare", "--frobnicate"});
  EXPECT_TRUE(contains(message, "unknown option '--frobnicate'")) << message;
  EXPECT_TRUE(contains(message, "see 'vmlab compare --help'")) << message;
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

TEST(TraceParser, UsageErrorsNameTheProblem) {
  EXPECT_TRUE(contains(refused({"trace"}), "trace needs an action: summary or export"));
  EXPECT_TRUE(contains(refused({"trace", "frob", "x.tsv"}), "unknown trace action 'frob'"));
  EXPECT_TRUE(contains(refused({"trace", "summary"}), "TRACE is required"));
  EXPECT_TRUE(contains(refused({"trace", "export", "x.tsv"}), "--format is required"));
  EXPECT_TRUE(
      contains(refused({"trace", "export", "x.tsv", "--format"}), "--format needs a value"));
  const auto format = refused({"trace", "export", "x.tsv", "--format", "xml"});
  EXPECT_TRUE(contains(format, "--format: 'xml' is not one of perfetto, csv")) << format;
  EXPECT_TRUE(contains(format, "see 'vmlab trace export --help'")) << format;
  EXPECT_TRUE(contains(refused({"trace", "summary", "x.tsv", "--format", "csv"}),
                       "unknown option '--format'"));
  EXPECT_TRUE(
      contains(refused({"trace", "summary", "a.tsv", "b.tsv"}), "takes TRACE, not also 'b.tsv'"));
}

TEST(DiskParser, CreateAndInfo) {
  const auto create = parsed<DiskCreateCommand>({"disk", "create", "d.img", "16M", "--force"});
  EXPECT_EQ(create.path, "d.img");
  EXPECT_EQ(create.size_bytes, 16 * MiB);
  EXPECT_TRUE(create.force);
  EXPECT_FALSE(parsed<DiskCreateCommand>({"disk", "create", "d.img", "16M"}).force);
  EXPECT_EQ(parsed<DiskInfoCommand>({"disk", "info", "d.img"}).path, "d.img");
  EXPECT_TRUE(contains(refused({"disk", "create", "d.img"}), "SIZE is required"));
  EXPECT_TRUE(contains(refused({"disk", "info", "d.img", "--force"}), "unknown option '--force'"));
  EXPECT_TRUE(contains(refused({"disk", "frob"}), "unknown disk action 'frob'"));
  EXPECT_TRUE(contains(refused({"disk", "create", "d.img", "1M", "x"}), "not also 'x'"));
}

TEST(OtherParsers, ProbeInfoAndUnknownCommands) {
  parsed<ProbeCommand>({"probe"});
  parsed<InfoCommand>({"info"});
  EXPECT_TRUE(contains(refused({"probe", "x"}), "probe takes options only, not 'x'"));
  EXPECT_TRUE(contains(refused({"info", "--all"}), "unknown option '--all'"));
  EXPECT_TRUE(contains(refused({"frob"}), "unknown command 'frob'"));
  EXPECT_TRUE(contains(refused({"--frob"}), "unknown option '--frob'"));
}

TEST(Help, NoCommandIsAUsageErrorShowingTheCommands) {
  const auto overview = parsed<HelpText>({});
  EXPECT_TRUE(overview.usage_error);
  for (const char* command : {"compare", "probe", "run", "trace", "info", "disk", "help"})
    EXPECT_TRUE(contains(overview.text, command)) << overview.text;
  EXPECT_EQ(help_of({"--help"}), overview.text);
  EXPECT_EQ(help_of({"help"}), overview.text);
  EXPECT_EQ(help_of({"--version"}), "vmlab 0.1.0\n");
}

TEST(Help, EachCommandsHelpListsItsOptions) {
  struct Case {
    Arguments arguments;
    std::vector<std::string> mentions;
  };
  for (const auto& [arguments, mentions] : {
           Case{{"run", "--help"},
                {"Usage: vmlab run",
                 "--cpu hvm|full|para",
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
  EXPECT_TRUE(contains(refused({"help", "frob"}), "unknown command 'frob'"));
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
