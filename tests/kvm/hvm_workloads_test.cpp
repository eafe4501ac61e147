// Boots the built-in guest under --cpu hvm and checks each workload's result
// line: the oracle is what the guest itself counted and computed.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "../support/elf_builder.hpp"
#include "../support/guest_runs.hpp"
#include "../support/kvm_available.hpp"
#include "vmlab/elf_loader.hpp"
#include "vmlab/runner.hpp"

namespace vmlab {
namespace {

GuestRun run_or_fail(RunOptions options) {
  options.timeout_seconds = 60;
  return testing::start_run(options);
}

void expect_ok(const GuestRun& run, const std::string& workload, std::uint64_t count) {
  ASSERT_EQ(run.report.outcome, RunOutcome::GuestExited) << run.report.message << "\n"
                                                         << run.report.registers;
  EXPECT_EQ(run.report.exit_value, 0u);
  ASSERT_TRUE(run.result.has_value()) << "no VMLAB-RESULT line on the debug console";
  EXPECT_EQ(run.result->field("workload"), workload);
  EXPECT_EQ(run.result->number("n"), count);
  EXPECT_EQ(run.result->field("status"), "ok") << run.result->line;
  EXPECT_GT(run.result->number("cycles"), 0u) << run.result->line;
}

// What compute and kernel-compute must report as check: `rounds` rounds of
// xorshift64 (Marsaglia, "Xorshift RNGs", 2003) from the guest's seed,
// computed here without the guest's code (guest/common/integer_mix.h).
std::uint64_t integer_mix_oracle(std::uint64_t rounds) {
  std::uint64_t state = 0x9e3779b97f4a7c15;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
  }
  return state;
}

// What kernel-smc must report as check, computed here from the workload's
// definition (guest/README.md, "Self-modifying code"): generation g of the
// function computes imm(g) + a, imm(g) - a or imm(g) ^ a for g % 3 = 0, 1, 2
// (mov eax, imm32; add/sub/xor eax, edi; ret); call k passes a(k); the
// function runs generation 0 once, then each round r calls generation r,
// patches it into r + 1 and calls it again. The values are folded FNV-1a
// style. SmcCode::Stale gives what a guest reports whose every call ran
// generation 0, the code first translated: what the test must tell apart.
enum class SmcCode { Current, Stale };

std::uint64_t kernel_smc_oracle(std::uint64_t rounds, SmcCode code = SmcCode::Current) {
  const auto returns = [code](std::uint64_t generation, std::uint64_t call) -> std::uint32_t {
    if (code == SmcCode::Stale) generation = 0;
    const std::uint32_t immediate =
        static_cast<std::uint32_t>(generation) * 0x9e3779b9u + 0x7f4a7c15u;
    const std::uint32_t argument = static_cast<std::uint32_t>(call) * 0x85ebca6bu;
    switch (generation % 3) {
      case 0:
        return immediate + argument;
      case 1:
        return immediate - argument;
      default:
        return immediate ^ argument;
    }
  };
  std::uint64_t check = 0xcbf29ce484222325;
  std::uint64_t call = 0;
  const auto fold = [&](std::uint64_t generation) {
    check = (check ^ returns(generation, call++)) * 0x100000001b3;
  };
  fold(0);
  for (std::uint64_t round = 0; round < rounds; ++round) {
    fold(round);
    fold(round + 1);
  }
  return check;
}

// What pio-out must report: N << 8 and the last of the N values written
// (write i is i * 0x3b + 0x11, mod 256; guest/README.md).
std::uint64_t pio_out_oracle(std::uint64_t count) {
  const std::uint64_t last = count == 0 ? 0xa5 : ((count - 1) * 0x3b + 0x11) & 0xff;
  return (count << 8) | last;
}

// What pte-update must report: read i (after update i, 0-based) is
// quadword i mod 512 of frame (i + 1) mod 2, whose quadword q holds
// (frame + 1) * 0x0101010101010101 ^ q * 0x9e3779b97f4a7c15; the reads are
// folded FNV-1a style. A guest whose updates never took effect reads frame
// 0 every time: PteReads::Stale tells that apart.
enum class PteReads { Updated, Stale };

std::uint64_t pte_update_oracle(std::uint64_t count, PteReads reads = PteReads::Updated) {
  std::uint64_t check = 0xcbf29ce484222325;
  for (std::uint64_t update = 0; update < count; ++update) {
    const std::uint64_t frame = reads == PteReads::Stale ? 0 : (update + 1) % 2;
    const std::uint64_t value =
        ((frame + 1) * 0x0101010101010101) ^ ((update % 512) * 0x9e3779b97f4a7c15);
    check = (check ^ value) * 0x100000001b3;
  }
  return check;
}

struct WorkloadCase {
  const char* workload;
  std::uint64_t count;
  IrqchipModel irqchip;
};

class HvmWorkload : public ::testing::TestWithParam<WorkloadCase> {};

TEST_P(HvmWorkload, ReportsItsOwnCounts) {
  VMLAB_REQUIRE_KVM();
  const auto& param = GetParam();
  RunOptions options;
  options.workload = param.workload;
  options.count = param.count;
  options.irqchip = param.irqchip;
  std::string console;
  options.console_output = [&](std::uint8_t byte) { console.push_back(static_cast<char>(byte)); };
  auto run = run_or_fail(options);
  expect_ok(run, param.workload, param.count);
  if (!run.result) return;
  const auto& result = *run.result;
  const std::string workload = param.workload;
  if (workload == "hello") {
    EXPECT_NE(console.find("Hello from user mode"), std::string::npos) << console;
    EXPECT_GE(result.number("syscalls"), 3u);
  } else if (workload == "syscalls") {
    EXPECT_GE(result.number("syscalls"), param.count);
    EXPECT_LE(result.number("syscalls"), param.count + 4);
  } else if (workload == "pagefaults") {
    EXPECT_EQ(result.number("pagefaults"), param.count);
  } else if (workload == "pio") {
    EXPECT_EQ(result.number("check"), param.count * 0x5a);
    if (param.irqchip == IrqchipModel::Vmm) {
      EXPECT_GE(run.exits_by_reason["io-in"], param.count) << "every inb is an exit in hvm";
    }
  } else if (workload == "timer") {
    EXPECT_EQ(result.number("irqs"), param.count);
    EXPECT_EQ(result.number("check"), param.count);
    if (param.irqchip == IrqchipModel::Vmm) {
      EXPECT_GE(run.interrupts_injected, param.count) << "the VMM's PIC injects every tick";
    }
  } else if (workload == "compute") {
    EXPECT_EQ(result.number("check"), integer_mix_oracle(param.count)) << result.line;
    EXPECT_EQ(result.number("syscalls"), 2u) << "report and exit";
  } else if (workload == "kernel-compute") {
    EXPECT_EQ(result.number("check"), integer_mix_oracle(param.count)) << result.line;
    EXPECT_EQ(result.number("syscalls"), 0u) << "no user task: the kernel runs the rounds";
  } else if (workload == "kernel-smc") {
    ASSERT_NE(kernel_smc_oracle(param.count), kernel_smc_oracle(param.count, SmcCode::Stale));
    EXPECT_EQ(result.number("check"), kernel_smc_oracle(param.count)) << result.line;
    EXPECT_EQ(result.number("syscalls"), 0u) << "no user task: the kernel patches and calls";
  } else if (workload == "rtc") {
    EXPECT_EQ(result.number("check"), 0x3ffu) << "every check of the rtc workload holds";
  } else if (workload == "pio-out") {
    EXPECT_EQ(result.number("check"), pio_out_oracle(param.count)) << result.line;
    if (param.irqchip == IrqchipModel::Vmm) {
      EXPECT_GE(run.exits_by_reason["io-out"], param.count) << "every outb is an exit in hvm";
    }
  } else if (workload == "cr8-write" || workload == "call-ret" || workload == "divide-error") {
    EXPECT_EQ(result.number("check"), param.count) << result.line;
    EXPECT_EQ(result.number("syscalls"), 0u) << "no user task: the kernel does the operations";
  } else if (workload == "pte-update") {
    ASSERT_NE(pte_update_oracle(param.count), pte_update_oracle(param.count, PteReads::Stale));
    EXPECT_EQ(result.number("check"), pte_update_oracle(param.count)) << result.line;
  } else if (workload == "interrupts") {
    EXPECT_EQ(result.number("check"), param.count) << result.line;
    EXPECT_EQ(result.number("irqs"), param.count + 1) << "N measured ticks, one to stop";
    if (param.irqchip == IrqchipModel::Vmm) {
      EXPECT_GE(run.interrupts_injected, param.count + 1) << "the VMM's PIC injects every tick";
    }
  }
  if (workload != "timer" && workload != "interrupts") {
    EXPECT_EQ(result.number("irqs"), 0u) << result.line;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Workloads, HvmWorkload,
    ::testing::Values(WorkloadCase{"hello", 1, IrqchipModel::Vmm},
                      WorkloadCase{"syscalls", 200, IrqchipModel::Vmm},
                      WorkloadCase{"pagefaults", 64, IrqchipModel::Vmm},
                      WorkloadCase{"compute", 1000000, IrqchipModel::Vmm},
                      WorkloadCase{"kernel-compute", 100000, IrqchipModel::Vmm},
                      WorkloadCase{"kernel-smc", 1000, IrqchipModel::Vmm},
                      WorkloadCase{"cli-sti", 200, IrqchipModel::Vmm},
                      WorkloadCase{"pio", 200, IrqchipModel::Vmm},
                      WorkloadCase{"timer", 5, IrqchipModel::Vmm},
                      WorkloadCase{"pio-out", 200, IrqchipModel::Vmm},
                      WorkloadCase{"cr8-write", 200, IrqchipModel::Vmm},
                      WorkloadCase{"cr8-write", 100, IrqchipModel::Kernel},
                      WorkloadCase{"call-ret", 10000, IrqchipModel::Vmm},
                      WorkloadCase{"divide-error", 200, IrqchipModel::Vmm},
                      WorkloadCase{"pte-update", 600, IrqchipModel::Vmm},
                      WorkloadCase{"interrupts", 5, IrqchipModel::Vmm},
                      WorkloadCase{"interrupts", 5, IrqchipModel::Kernel},
                      WorkloadCase{"rtc", 3, IrqchipModel::Vmm},
                      WorkloadCase{"rtc", 3, IrqchipModel::Kernel},
                      WorkloadCase{"hello", 1, IrqchipModel::Kernel},
                      WorkloadCase{"timer", 5, IrqchipModel::Kernel},
                      WorkloadCase{"pio", 100, IrqchipModel::Kernel}),
    [](const auto& test_case) {
      std::string name = test_case.param.workload;
      std::replace(name.begin(), name.end(), '-', '_');
      return name + (test_case.param.irqchip == IrqchipModel::Kernel ? "_kernel_irqchip" : "");
    });

// The two runs of the integer mix, in user mode and in the kernel, compute
// the same value for the same n: what lets a table set their cycles side by
// side.
TEST(ComputeWorkloads, KernelComputeChecksAsCompute) {
  VMLAB_REQUIRE_KVM();
  constexpr std::uint64_t kRounds = 54321;
  RunOptions options;
  options.count = kRounds;
  options.workload = "compute";
  auto user = run_or_fail(options);
  options.workload = "kernel-compute";
  auto kernel = run_or_fail(options);
  expect_ok(user, "compute", kRounds);
  expect_ok(kernel, "kernel-compute", kRounds);
  ASSERT_TRUE(user.result && kernel.result);
  EXPECT_FALSE(user.result->field("check").empty()) << user.result->line;
  EXPECT_EQ(kernel.result->field("check"), user.result->field("check"))
      << kernel.result->line << "\n"
      << user.result->line;
}

TEST(HvmRun, InterruptDrivenConsole) {
  VMLAB_REQUIRE_KVM();
  // Both interrupt controllers: the VMM's PIC (KVM_INTERRUPT) and KVM's own
  // (KVM_IRQ_LINE from the UART model).
  for (auto irqchip : {IrqchipModel::Vmm, IrqchipModel::Kernel}) {
    RunOptions options;
    options.workload = "hello";
    options.irqchip = irqchip;
    options.extra_command_line = "console=irq";
    std::string console;
    options.console_output = [&](std::uint8_t byte) { console.push_back(static_cast<char>(byte)); };
    auto run = run_or_fail(options);
    expect_ok(run, "hello", 1);
    EXPECT_NE(console.find("Hello from user mode"), std::string::npos) << console;
    ASSERT_TRUE(run.result.has_value());
    EXPECT_EQ(run.result->number("irqs"), 2u) << "two THRE interrupts, as in QEMU";
    if (irqchip == IrqchipModel::Vmm) {
      EXPECT_GT(run.interrupts_injected, 0u) << "the VMM's PIC injects the THRE interrupts";
    }
  }
}

// The guest reads the board's MC146818 the way a PC kernel does and prints
// the date: the host's wall clock, in UTC, give or take the run.
TEST(HvmRun, RtcShowsTheHostsTimeInUtc) {
  VMLAB_REQUIRE_KVM();
  RunOptions options;
  options.workload = "rtc";
  options.count = 2;
  const auto before = std::chrono::system_clock::now();
  auto run = run_or_fail(options);
  const auto after = std::chrono::system_clock::now();
  expect_ok(run, "rtc", 2);
  std::string line;
  for (const auto& debug_line : run.debug_lines) {
    if (debug_line.rfind("VMLAB-RTC ", 0) == 0) line = debug_line;
  }
  ASSERT_FALSE(line.empty()) << "no VMLAB-RTC line";
  EXPECT_NE(line.find(" status-a=0x26 status-b=0x2 status-d=0x80 "), std::string::npos) << line;
  const auto at = line.find(" time=");
  ASSERT_NE(at, std::string::npos) << line;
  std::tm date{};
  std::istringstream text(line.substr(at + 6, 20));
  text >> std::get_time(&date, "%Y-%m-%dT%H:%M:%SZ");
  ASSERT_FALSE(text.fail()) << line;
  const auto shown = std::chrono::system_clock::from_time_t(timegm(&date));
  EXPECT_GE(shown, std::chrono::floor<std::chrono::seconds>(before) - std::chrono::seconds(1))
      << line;
  EXPECT_LE(shown, after + std::chrono::seconds(1)) << line;
}

// Only a paravirtualized kernel makes hypercalls: natively the workload
// ends with status=error and says what it needs.
TEST(HvmRun, HypercallWorkloadNeedsPara) {
  VMLAB_REQUIRE_KVM();
  RunOptions options;
  options.workload = "hypercall";
  options.count = 10;
  std::string console;
  options.console_output = [&](std::uint8_t byte) { console.push_back(static_cast<char>(byte)); };
  auto run = run_or_fail(options);
  ASSERT_EQ(run.report.outcome, RunOutcome::GuestExited) << run.report.message;
  EXPECT_EQ(run.report.exit_value, 2u);
  ASSERT_TRUE(run.result.has_value());
  EXPECT_EQ(run.result->field("status"), "error");
  EXPECT_NE(console.find("hypercall needs --cpu para"), std::string::npos) << console;
}

TEST(HvmRun, BadCommandLineEndsWithStatusTwo) {
  VMLAB_REQUIRE_KVM();
  RunOptions options;
  options.workload = "syscalls";
  options.extra_command_line = "n=banana";
  auto run = run_or_fail(options);
  ASSERT_EQ(run.report.outcome, RunOutcome::GuestExited) << run.report.message;
  EXPECT_EQ(run.report.exit_value, 2u);
}

TEST(HvmRun, GuestFaultsEndWithTheirStatus) {
  VMLAB_REQUIRE_KVM();
  struct Case {
    const char* workload;
    std::uint32_t status;
    const char* result;
  };
  for (const auto& expected : {Case{"fault", 3, "fault"}, Case{"segfault", 4, "segfault"}}) {
    RunOptions options;
    options.workload = expected.workload;
    auto run = run_or_fail(options);
    ASSERT_EQ(run.report.outcome, RunOutcome::GuestExited) << run.report.message;
    EXPECT_EQ(run.report.exit_value, expected.status) << expected.workload;
    ASSERT_TRUE(run.result.has_value());
    EXPECT_EQ(run.result->field("status"), expected.result);
  }
}

TEST(HvmRun, KvmStatsAreRead) {
  VMLAB_REQUIRE_KVM();
  RunOptions options;
  options.workload = "pio";
  options.count = 50;
  auto run = run_or_fail(options);
  ASSERT_TRUE(run.report.stats_available) << run.report.stats_error;
  // Every backend counts "exits"; kvm_pvm leaves io_exits at 0, so only the
  // total is checked: 50 port reads cannot take fewer than 50 exits.
  EXPECT_GE(run.report.kvm_stats.value("exits"), 50u);
  EXPECT_GT(run.report.kvm_stats.values.size(), 10u) << "the descriptor table was parsed";
}

TEST(HvmRun, TraceFileHasEveryExit) {
  VMLAB_REQUIRE_KVM();
  const auto path = std::filesystem::temp_directory_path() / "vmlab-hvm-trace-test.tsv";
  RunOptions options;
  options.workload = "pio";
  options.count = 20;
  options.trace_path = path.string();
  auto run = run_or_fail(options);
  std::ifstream trace(path);
  std::string line;
  ASSERT_TRUE(std::getline(trace, line));
  EXPECT_EQ(line, "# vmlab-trace 2");
  std::uint64_t events = 0, io_in_scratch = 0;
  while (std::getline(trace, line)) {
    if (line.empty() || line[0] == '#') continue;
    ++events;
    if (line.find("\tio-in\t") != std::string::npos &&
        line.find("\t0x3ff\t") != std::string::npos) {
      ++io_in_scratch;
    }
  }
  std::uint64_t total = 0;
  for (const auto& [reason, count] : run.exits_by_reason)
    total += count;
  EXPECT_GE(events, total);
  EXPECT_EQ(io_in_scratch, 20u);
  std::filesystem::remove(path);
}

// Hand-made guests that misbehave.
TEST(HvmRun, TripleFaultIsReported) {
  VMLAB_REQUIRE_KVM();
  // lidt [rip+6] with a zero-limit IDT, then ud2: #UD cannot be delivered,
  // neither can #DF, so the CPU shuts down (Intel SDM vol. 3, 6.15 #DF).
  const std::vector<std::uint8_t> code{0x0f, 0x01, 0x1d, 0x06, 0,    0, 0, 0x0f,
                                       0x0b, 0x90, 0x90, 0x90, 0x90, 0, 0, 0,
                                       0,    0,    0,    0,    0,    0, 0};
  const auto path = testing::write_guest_file("vmlab-triple-fault.elf", code, 0x1000);
  RunOptions options;
  options.guest_path = path.string();
  auto run = run_or_fail(options);
  EXPECT_EQ(run.report.outcome, RunOutcome::GuestCrashed) << run.report.message;
  EXPECT_NE(run.report.message.find("triple-fault"), std::string::npos) << run.report.message;
  std::filesystem::remove(path);
}

TEST(HvmRun, DebugConsoleFloodIsBounded) {
  VMLAB_REQUIRE_KVM();
  // 20 x `rep outsb` of a page of newlines to port 0xe9, then exit 0:
  // 81,920 empty lines the VMM must not all keep.
  std::vector<std::uint8_t> code{0xbb, 0x14, 0x00, 0x00, 0x00,  // mov $20, %ebx
                                 0x48, 0xc7, 0xc6, 0x00, 0x01,
                                 0x10, 0x00,                     // loop: mov $0x100100, %rsi
                                 0xb9, 0x00, 0x10, 0x00, 0x00,   // mov $4096, %ecx
                                 0x66, 0xba, 0xe9, 0x00,         // mov $0xe9, %dx
                                 0xf3, 0x6e,                     // rep outsb
                                 0xff, 0xcb,                     // dec %ebx
                                 0x75, 0xea,                     // jnz loop
                                 0xb0, 0x00, 0xe6, 0xf4, 0xf4};  // out 0 to 0xf4; hlt
  code.resize(0x100, 0x90);
  code.insert(code.end(), 4096, '\n');
  const auto path = testing::write_guest_file("vmlab-flood.elf", code, 0x2000);
  RunOptions options;
  options.guest_path = path.string();
  auto run = run_or_fail(options);
  ASSERT_EQ(run.report.outcome, RunOutcome::GuestExited) << run.report.message;
  EXPECT_EQ(run.report.exit_value, 0u);
  EXPECT_LE(run.debug_lines.size(), 16384u + 256u) << "the VMM kept the whole flood";
  std::filesystem::remove(path);
}

TEST(HvmRun, HangingGuestTimesOut) {
  VMLAB_REQUIRE_KVM();
  const auto path = testing::write_guest_file(
      "vmlab-hang.elf", std::vector<std::uint8_t>{0xeb, 0xfe}, 0x1000);  // jmp .
  RunOptions options;
  options.guest_path = path.string();
  options.timeout_seconds = 1;
  auto run = run_guest(options);
  ASSERT_TRUE(run.ok()) << run.error().message;
  EXPECT_EQ(run->report.outcome, RunOutcome::Timeout);
  EXPECT_NE(run->report.message.find("timeout"), std::string::npos);
  EXPECT_LT(run->report.wall_time, std::chrono::seconds(10));
  std::filesystem::remove(path);
}

TEST(HvmRun, MalformedGuestIsRefusedBeforeBoot) {
  const auto path = std::filesystem::temp_directory_path() / "vmlab-bad.elf";
  std::ofstream(path, std::ios::binary) << "\x7f"
                                           "ELF but not really";
  RunOptions options;
  options.guest_path = path.string();
  auto run = run_guest(options);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.error().kind, ElfError::kTruncated) << run.error().message;
  std::filesystem::remove(path);
}

TEST(HvmRun, UnknownWorkloadAndModeAreRefused) {
  RunOptions options;
  options.workload = "frobnicate";
  auto run = run_guest(options);
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.error().message.find("syscalls"), std::string::npos) << "lists the valid ones";
  options.workload = "hello";
  options.cpu = "vt-z";
  EXPECT_FALSE(run_guest(options).ok());
}

}  // namespace
}  // namespace vmlab
