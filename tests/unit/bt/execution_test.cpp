// Translated code, executed. Guest snippets (guest_snippets.S) are placed at
// a low host address and run twice: natively, as the CPU itself runs them
// (the reference), and from a translation cache mapped at another low
// address, with the guest's pages no longer executable, driven as the VMM
// will drive it (chain on a branch exit, translate on a lookup miss, stop at
// a call-out). Single-stepping both runs compares the guest's state after
// every guest instruction with the state the cache rebuilds at every TC
// instruction: the precise-state map is checked at each point an interrupt
// could stop the TC.
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "bt_test_support.hpp"
#include "host_harness.hpp"

extern "C" {
#define VMLAB_SNIPPET(name) \
  extern const std::uint8_t bt_snippet_##name##_start[], bt_snippet_##name##_end[];
VMLAB_SNIPPET(compute)
VMLAB_SNIPPET(call_ret)
VMLAB_SNIPPET(indirect)
VMLAB_SNIPPET(flags)
VMLAB_SNIPPET(mixed)
VMLAB_SNIPPET(divide)
VMLAB_SNIPPET(push_fault)
VMLAB_SNIPPET(interrupt_flag)
VMLAB_SNIPPET(flags_read)
VMLAB_SNIPPET(flags_write)
VMLAB_SNIPPET(flags_write_word)
VMLAB_SNIPPET(misaligned_after_popf)
VMLAB_SNIPPET(segment_reads)
VMLAB_SNIPPET(system_reads)
#undef VMLAB_SNIPPET
}

namespace vmlab::bt {
namespace {

using monitor::GuestRegisters;
using test_support::FakeCodeReader;
using test_support::FixedMapping;
using test_support::HostHarness;
using test_support::HostStop;

#define SNIPPET(name) std::span(bt_snippet_##name##_start, bt_snippet_##name##_end)

constexpr std::uint64_t kGuestBase = 0x10000000;
// Above 4 GiB, where calls push their return address in two halves; high
// enough to be ordinary user memory under AddressSanitizer too (its shadow
// gap and high shadow cover 0x8fff7000 to 0x10007fff7fff on x86-64).
constexpr std::uint64_t kHighGuestBase = 0x200000000000;
constexpr std::uint64_t kGuestSize = 0x10000;
constexpr std::uint64_t kTcBase = 0x20000000;
constexpr std::uint64_t kStackBase = 0x30000000;  // a guard page below it
constexpr std::uint64_t kStackSize = 0x4000;
constexpr int kReadWrite = PROT_READ | PROT_WRITE;
constexpr int kAll = PROT_READ | PROT_WRITE | PROT_EXEC;

std::string difference(const GuestRegisters& expected, const GuestRegisters& actual) {
  // Of the flags, the arithmetic ones and DF: TF (single-stepping) and the
  // rest are not the guest's.
  constexpr std::uint64_t kComparedFlags = 0xcd5;
  std::ostringstream text;
  text << std::hex;
  for (const test_support::RegisterField& each : test_support::kRegisterFields) {
    const bool is_flags = each.field == &GuestRegisters::rflags;
    const std::uint64_t mask = is_flags ? kComparedFlags : ~std::uint64_t{0};
    if ((expected.*each.field & mask) != (actual.*each.field & mask)) {
      text << each.name << " " << expected.*each.field << " != " << actual.*each.field << "; ";
    }
  }
  return text.str();
}

// The guest's stack, read by recover_guest_registers.
class HostStackMemory final : public monitor::GuestVirtualMemory {
 public:
  std::optional<Fault> read(GuestVirtAddr address, std::span<std::uint8_t> out,
                            monitor::AccessPrivilege) override {
    if (address.value() < kStackBase || address.value() + out.size() > kStackBase + kStackSize) {
      return Fault{address, 0};
    }
    std::memcpy(out.data(), reinterpret_cast<const void*>(address.value()), out.size());
    return std::nullopt;
  }
  std::optional<Fault> write(GuestVirtAddr address, std::span<const std::uint8_t>,
                             monitor::AccessPrivilege) override {
    return Fault{address, 2};
  }
  std::optional<Fault> fetch(GuestVirtAddr address, std::span<std::uint8_t>,
                             monitor::AccessPrivilege) override {
    return Fault{address, 0x10};
  }
};

struct Trace {
  std::vector<GuestRegisters> states;  // single-stepped: the guest's state at each stop
  GuestRegisters final;                // where it stopped for good, as the guest sees it
  HostStop last;
};

class ExecutionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m_guest.ok() && m_high_guest.ok() && m_tc.ok() && m_stack.ok())
        << "cannot map the test's fixed low addresses";
    m_stack.protect(kStackBase - kPageSize, kPageSize, PROT_NONE);
    for (std::uint64_t page = 0; page < kGuestSize; page += kPageSize) {
      m_reader.map_host(kGuestBase + page, m_guest.bytes().data() + page);
      m_reader.map_host(kHighGuestBase + page, m_high_guest.bytes().data() + page);
    }
    auto cache = TranslationCache::create(m_layout, m_tc.bytes());
    ASSERT_TRUE(cache.ok()) << cache.error().message;
    m_cache.emplace(std::move(cache).value());
  }

  // Copies a snippet to `at` (and what the guest memory held is forgotten).
  std::uint64_t place(std::span<const std::uint8_t> snippet, std::uint64_t at = kGuestBase) {
    const FixedMapping& mapping = at >= kHighGuestBase ? m_high_guest : m_guest;
    std::span<std::uint8_t> bytes = mapping.bytes();
    std::fill(bytes.begin(), bytes.end(), 0xcc);
    std::copy(snippet.begin(), snippet.end(),
              bytes.begin() + static_cast<std::ptrdiff_t>(at - mapping.address()));
    m_placed.assign(snippet.begin(), snippet.end());
    m_placed_at = at;
    return at;
  }
  void reset_memory() {
    place(m_placed, m_placed_at);
    std::fill(stack().begin(), stack().end(), 0);
  }
  // The stack without its guard page.
  std::span<std::uint8_t> stack() const { return m_stack.bytes().subspan(kPageSize); }

  // A distinct value in every register, so that a register the TC
  // clobbers shows.
  static GuestRegisters entry(std::uint64_t rip) {
    GuestRegisters registers;
    std::uint64_t value = 0x0101010101010101;
    for (const test_support::RegisterField& each : test_support::kRegisterFields) {
      registers.*each.field = value;
      value += 0x0101010101010101;
    }
    registers.rsp = kStackBase + kStackSize - 0x100;
    registers.rip = rip;
    registers.rflags = 0x2;
    return registers;
  }

  // The CPU's own run of the guest code.
  Trace run_native(GuestRegisters registers, bool single_step) {
    protect_guest(kAll);
    Trace trace;
    trace.states.push_back(registers);
    for (;;) {
      trace.last = m_harness.run(registers, single_step);
      if (!trace.last.single_step()) break;
      registers = trace.last.registers;
      trace.states.push_back(registers);
    }
    trace.final = trace.last.registers;
    return trace;
  }

  // What a test may do while the translated run goes on: see each guest
  // state (single-stepped), and fix a fault (true: run the faulting TC
  // instruction again).
  struct Observer {
    std::function<void(const GuestRegisters& guest)> on_step;
    std::function<bool(const HostStop& stop, const GuestRegisters& guest)> on_fault;
  };

  // The translated run, driven as the VMM drives it. The guest's own pages
  // are not executable meanwhile: a jump out of the TC would fault.
  Trace run_translated(GuestRegisters guest, bool single_step, const Observer& observer = {}) {
    GuestRegisters real = guest;
    real.rip = resume_at(guest.rip);
    return drive(guest, real, single_step, observer);
  }
  // The same from real registers at a TC address (`guest`: what they stand for).
  Trace drive(const GuestRegisters& guest, GuestRegisters real, bool single_step,
              const Observer& observer = {}) {
    protect_guest(kReadWrite);
    Trace trace;
    trace.states.push_back(guest);
    for (;;) {
      trace.last = m_harness.run(real, single_step);
      const HostStop& stop = trace.last;
      real = stop.registers;
      if (stop.single_step()) {
        const GuestRegisters recovered = recover(stop.registers.rip, stop.registers);
        // Several TC instructions for one guest instruction: one state.
        if (!difference(trace.states.back(), recovered).empty()) {
          trace.states.push_back(recovered);
          if (observer.on_step) observer.on_step(recovered);
        }
        continue;
      }
      if (!stop.breakpoint()) {
        trace.final = recover(stop.registers.rip, stop.registers);
        if (observer.on_fault && observer.on_fault(stop, trace.final)) continue;
        return trace;
      }
      const GuestVirtAddr site_address(stop.registers.rip - 1);
      const std::optional<ExitSite> site = m_cache->take_exit(site_address);
      if (!site) {
        ADD_FAILURE() << "an int3 that is no exit site: " << stop.describe();
        return trace;
      }
      if (const auto* branch = std::get_if<BranchExit>(&*site)) {
        auto target = m_cache->chain(*branch, m_reader);
        EXPECT_TRUE(target.ok()) << target.error().message;
        if (!target) return trace;
        real.rip = target->value();
      } else if (std::holds_alternative<LookupMiss>(*site)) {
        // The VMM translates the target, enters it in the table, resumes
        // with the guest's registers (rcx back from its slot).
        real = recover(site_address.value(), stop.registers);
        real.rip = resume_at(real.rip);
      } else {
        trace.final = recover(site_address.value(), stop.registers);
        return trace;
      }
    }
  }

  std::uint64_t resume_at(std::uint64_t guest_rip) {
    auto tc = m_cache->lookup_or_translate(GuestVirtAddr(guest_rip), m_reader);
    EXPECT_TRUE(tc.ok()) << tc.error().message;
    return tc.ok() ? tc->value() : 0;
  }
  GuestRegisters recover(std::uint64_t tc_address, const GuestRegisters& real) {
    auto guest = m_cache->recover_guest_registers(GuestVirtAddr(tc_address), real, m_stack_memory);
    EXPECT_TRUE(guest.ok()) << guest.error().message;
    return guest.ok() ? *guest : GuestRegisters{};
  }
  void protect_guest(int protection) {
    m_guest.protect(kGuestBase, kGuestSize, protection);
    m_high_guest.protect(kHighGuestBase, kGuestSize, protection);
  }

  // Both runs single-stepped, from the same memory: the same states in the
  // same order, the same end, the same stack above the final RSP.
  void expect_same_as_native(std::uint64_t at) {
    const GuestRegisters start = entry(at);
    reset_memory();
    const Trace native = run_native(start, true);
    const std::vector<std::uint8_t> native_stack(stack().begin(), stack().end());
    reset_memory();
    const Trace translated = run_translated(start, true);
    ASSERT_EQ(translated.states.size(), native.states.size());
    for (std::size_t index = 0; index < native.states.size(); ++index) {
      EXPECT_EQ(difference(native.states[index], translated.states[index]), "")
          << "after " << index << " guest instructions";
    }
    EXPECT_EQ(difference(native.final, translated.final), "");
    const auto live = static_cast<std::ptrdiff_t>(translated.final.rsp - kStackBase);
    EXPECT_TRUE(std::equal(native_stack.begin() + live, native_stack.end(), stack().begin() + live))
        << "the guest's stack differs";
  }

  // What the TC keeps of the virtual CPU's flags on its pages.
  struct VirtualFlags {
    bool interrupt_flag = true;
    std::uint64_t rflags = 0;  // ScratchPage::virtual_rflags: IOPL and AC
    bool operator==(const VirtualFlags&) const = default;
  };
  VirtualFlags virtual_flags() const {
    return {m_cache->virtual_interrupt_flag(), m_cache->scratch().virtual_rflags};
  }
  void set_virtual_flags(const VirtualFlags& flags) {
    m_cache->set_virtual_interrupt_flag(flags.interrupt_flag);
    ScratchPage page = m_cache->scratch();
    page.virtual_rflags = flags.rflags;
    m_cache->write_scratch(page);
  }

  // The TC's own instructions of the block for guest_rip, in address order
  // (its out-of-line code and exit stubs included).
  std::vector<test_support::DecodedTc> block_instructions(std::uint64_t guest_rip) {
    std::vector<test_support::DecodedTc> instructions;
    for (std::uint64_t at = resume_at(guest_rip); m_cache->guest_state_at(GuestVirtAddr(at));) {
      instructions.push_back(test_support::decode_one(m_tc.bytes().subspan(at - kTcBase), at));
      at = instructions.back().next();
    }
    return instructions;
  }

  // The translated run from `start`, stopped before the TC instruction at
  // `at` as an interrupt would stop it there (an int3 written over its first
  // byte, put back afterwards): the real registers there, or nothing if the
  // run does not get there. `prepare` sets what the run starts from besides
  // memory (the virtual flags, the scratch page).
  std::optional<HostStop> stop_before(const GuestRegisters& start, std::uint64_t at,
                                      const std::function<void()>& prepare) {
    reset_memory();
    prepare();
    std::uint8_t& first = m_tc.bytes()[at - kTcBase];
    const std::uint8_t saved = std::exchange(first, std::uint8_t{0xcc});
    protect_guest(kReadWrite);
    GuestRegisters real = start;
    real.rip = resume_at(start.rip);
    std::optional<HostStop> stopped;
    for (;;) {
      const HostStop stop = m_harness.run(real, false);
      if (stop.breakpoint() && stop.registers.rip - 1 == at) {
        stopped = stop;
        stopped->registers.rip = at;
        break;
      }
      if (!stop.breakpoint()) break;
      const auto site = m_cache->take_exit(GuestVirtAddr(stop.registers.rip - 1));
      if (!site || std::holds_alternative<CallOut>(*site)) break;
      if (const auto* branch = std::get_if<BranchExit>(&*site)) {
        real = stop.registers;
        real.rip = m_cache->chain(*branch, m_reader).value().value();
      } else {
        real = recover(stop.registers.rip - 1, stop.registers);
        real.rip = resume_at(real.rip);
      }
    }
    first = saved;
    return stopped;
  }

  struct PreciseCount {
    std::size_t stops = 0;  // TC instructions the run went through, each checked
    std::size_t ahead = 0;  // of them, inside a popf with its IOPL and AC stored ahead
  };

  // The precise-state map, checked where it matters: the run from `start`
  // is stopped before each TC instruction of its block in turn. The guest
  // registers rebuilt there must be the guest's at the guest instruction the
  // state names, as an undisturbed run has them when it gets there (before
  // the instruction, or after it once it has completed); so must the virtual
  // IF, and the virtual IOPL and AC unless the state says they are ahead
  // (then they are those after the instruction). From the stop the run must
  // then go on to the same end.
  PreciseCount expect_precise_everywhere(const GuestRegisters& start,
                                         const std::function<void()>& prepare) {
    const auto instructions = block_instructions(start.rip);
    struct Reference {
      GuestRegisters registers;
      VirtualFlags flags;
    };
    std::map<std::uint64_t, Reference> reference;  // by guest RIP
    for (const auto& instruction : instructions) {
      const GuestState state = *m_cache->guest_state_at(GuestVirtAddr(instruction.address));
      if (!(state == test_support::state_at_guest(state.rip.value())) ||
          reference.contains(state.rip.value())) {
        continue;  // not a boundary between guest instructions, or known
      }
      if (auto stop = stop_before(start, instruction.address, prepare)) {
        reference[state.rip.value()] = {recover(instruction.address, stop->registers),
                                        virtual_flags()};
      }
    }
    reset_memory();
    prepare();
    const Trace undisturbed = run_translated(start, false);
    const VirtualFlags end_flags = virtual_flags();

    PreciseCount count;
    for (const auto& instruction : instructions) {
      auto stop = stop_before(start, instruction.address, prepare);
      if (!stop) continue;  // off this run's path (the exit of a popf setting TF, a stub)
      ++count.stops;
      const GuestState state = *m_cache->guest_state_at(GuestVirtAddr(instruction.address));
      const auto named = reference.find(state.rip.value());
      if (named == reference.end()) {
        ADD_FAILURE() << "the state at " << instruction.text << " names guest " << std::hex
                      << state.rip.value() << ", no boundary of the run";
        continue;
      }
      const GuestRegisters recovered = recover(instruction.address, stop->registers);
      EXPECT_EQ(difference(named->second.registers, recovered), "")
          << "stopped before " << std::hex << instruction.address << " " << instruction.text;
      const VirtualFlags flags = virtual_flags();
      EXPECT_EQ(flags.interrupt_flag, named->second.flags.interrupt_flag)
          << "the virtual IF before " << instruction.text;
      if (state.virtual_flags_ahead) {
        ++count.ahead;
        const auto after = std::next(named);
        EXPECT_TRUE(after != reference.end() && flags.rflags == after->second.flags.rflags)
            << "ahead: the values after the instruction, before " << instruction.text;
      } else {
        EXPECT_EQ(flags.rflags, named->second.flags.rflags)
            << "the virtual IOPL and AC before " << instruction.text;
      }
      const Trace rest = drive(recovered, stop->registers, false);
      EXPECT_EQ(difference(undisturbed.final, rest.final), "")
          << "going on from before " << instruction.text;
      EXPECT_EQ(virtual_flags(), end_flags)
          << "the same virtual flags at the end, going on from before " << instruction.text;
    }
    EXPECT_GT(count.stops, 0u);
    return count;
  }

  CacheLayout m_layout{GuestVirtAddr(kTcBase), 1 * MiB, 1024, 32};
  FixedMapping m_guest{kGuestBase, kGuestSize, kAll};
  FixedMapping m_high_guest{kHighGuestBase, kGuestSize, kAll};
  FixedMapping m_tc{kTcBase, 1 * MiB, kAll};
  FixedMapping m_stack{kStackBase - kPageSize, kStackSize + kPageSize, kReadWrite};
  HostStackMemory m_stack_memory;
  FakeCodeReader m_reader;
  std::optional<TranslationCache> m_cache;
  HostHarness m_harness;
  std::vector<std::uint8_t> m_placed;
  std::uint64_t m_placed_at = 0;
};

// What the compute snippet leaves in rax, with `constant` as its xor's.
std::uint64_t compute_result(std::uint64_t constant) {
  std::uint64_t value = 0;
  for (std::uint64_t counter = 10; counter > 0; --counter)
    value = ((value + counter) * 3) ^ constant;
  return value;
}

TEST_F(ExecutionTest, ArithmeticLoopComputesWhatTheCpuComputes) {
  const std::uint64_t at = place(SNIPPET(compute));
  const Trace translated = run_translated(entry(at), false);
  EXPECT_EQ(translated.final.rax, compute_result(0x55));
  EXPECT_EQ(translated.final.rip, at + (SNIPPET(compute).size() - 1)) << "stopped at the hlt";
  expect_same_as_native(at);
}

TEST_F(ExecutionTest, CallAndRetUseTheGuestsStackWithGuestAddresses) {
  const std::uint64_t at = place(SNIPPET(call_ret));
  const Trace translated = run_translated(entry(at), false);
  // rbx = 5; rax = 11; rbx = 16; rax = 33.
  EXPECT_EQ(translated.final.rax, 33u);
  EXPECT_EQ(translated.final.rbx, 16u);
  EXPECT_EQ(translated.final.rsp, entry(at).rsp);
  expect_same_as_native(at);
}

TEST_F(ExecutionTest, CallAboveFourGibibytesPushesTheFullReturnAddress) {
  const std::uint64_t at = place(SNIPPET(call_ret), kHighGuestBase);
  const std::uint64_t function = at + 19;  // after mov, call, add, call, hlt
  // Inside the function, [rsp] is the guest's return address, all 64 bits.
  std::vector<std::uint64_t> returns;
  Observer observer;
  observer.on_step = [&](const GuestRegisters& guest) {
    if (guest.rip != function) return;
    std::uint64_t pushed = 0;
    std::memcpy(&pushed, reinterpret_cast<const void*>(guest.rsp), 8);
    returns.push_back(pushed);
  };
  reset_memory();
  run_translated(entry(at), true, observer);
  EXPECT_EQ(returns, (std::vector<std::uint64_t>{at + 10, at + 18}));
  expect_same_as_native(at);
}

TEST_F(ExecutionTest, IndirectBranchesMissOnceThenHitInsideTheCache) {
  const std::uint64_t at = place(SNIPPET(indirect));
  const Trace first = run_translated(entry(at), false);
  EXPECT_EQ(first.final.rbx, 3u * 0x11);
  // jmp rax to 4:, call rax to 5:, ret to after the call: each target
  // misses once; the loop's other rounds find them in the table.
  EXPECT_EQ(m_cache->statistics().lookup_misses, 3u);
  const std::uint64_t branch_exits = m_cache->statistics().branch_exits;

  const Trace second = run_translated(entry(at), false);
  EXPECT_EQ(second.final.rbx, 3u * 0x11);
  EXPECT_EQ(m_cache->statistics().lookup_misses, 3u) << "every target hits now";
  EXPECT_EQ(m_cache->statistics().branch_exits, branch_exits) << "every direct branch is chained";
  expect_same_as_native(at);
}

TEST_F(ExecutionTest, ChainedBranchesNoLongerExit) {
  const std::uint64_t at = place(SNIPPET(compute));
  run_translated(entry(at), false);
  const Statistics after_first = m_cache->statistics();
  EXPECT_GT(after_first.branch_exits, 0u);
  EXPECT_GT(after_first.chained_branches, 0u);
  run_translated(entry(at), false);
  EXPECT_EQ(m_cache->statistics().branch_exits, after_first.branch_exits);
  EXPECT_EQ(m_cache->statistics().blocks_translated, after_first.blocks_translated);
}

TEST_F(ExecutionTest, RewrittenCodeRunsOnceItsPageIsInvalidated) {
  // The guest rewrites the constant of `xor rax, 0x55` (48 83 f0 ib). The TC
  // still holds the old translation until the VMM, told of the write (it
  // write-protects code pages), invalidates the frame.
  const std::uint64_t at = place(SNIPPET(compute));
  const std::uint8_t xor_rax[] = {0x48, 0x83, 0xf0, 0x55};
  const auto found =
      std::search(m_placed.begin(), m_placed.end(), std::begin(xor_rax), std::end(xor_rax));
  ASSERT_NE(found, m_placed.end());
  const std::uint64_t immediate = at + static_cast<std::uint64_t>(found - m_placed.begin()) + 3;

  EXPECT_EQ(run_translated(entry(at), false).final.rax, compute_result(0x55));

  *reinterpret_cast<std::uint8_t*>(immediate) = 0x66;
  EXPECT_EQ(run_translated(entry(at), false).final.rax, compute_result(0x55))
      << "stale, as expected";
  const std::uint64_t frame = (immediate & ~(kPageSize - 1)) + FakeCodeReader::kFrameOffset;
  EXPECT_GE(m_cache->invalidate_page(GuestPhysAddr(frame)), 1u);
  EXPECT_EQ(run_translated(entry(at), false).final.rax, compute_result(0x66));
}

TEST_F(ExecutionTest, FlagsSurviveTheLookupRoutine) {
  const std::uint64_t at = place(SNIPPET(flags));
  const Trace translated = run_translated(entry(at), false);
  // cmp 1, 2: CF=1, SF=1, ZF=0, OF=0.
  EXPECT_EQ(translated.final.rbx & 0xffff, 0x0101u);
  EXPECT_EQ(translated.final.rdx & 0xffff, 0x0000u);
  expect_same_as_native(at);
}

TEST_F(ExecutionTest, StringOpsLoopsRipRelativeStoresAndRetImm16) {
  const std::uint64_t at = place(SNIPPET(mixed));
  const Trace translated = run_translated(entry(at), false);
  EXPECT_EQ(translated.final.rax, 5u) << "inc [rip+counter] five times";
  EXPECT_EQ(translated.final.rbx, 0x6867666564636261u) << "rep movsb copied \"abcdefgh\"";
  EXPECT_EQ(translated.final.rdx, 0x1234u) << "ret 8 released the function pointer";
  EXPECT_EQ(translated.final.rsp, entry(at).rsp);
  expect_same_as_native(at);
}

TEST_F(ExecutionTest, ADivideErrorMapsBackToTheGuestDiv) {
  const std::uint64_t at = place(SNIPPET(divide));
  reset_memory();
  const Trace native = run_native(entry(at), false);
  ASSERT_EQ(native.last.signal, SIGFPE) << native.last.describe();
  reset_memory();
  const Trace translated = run_translated(entry(at), false);
  ASSERT_EQ(translated.last.signal, SIGFPE) << translated.last.describe();
  EXPECT_TRUE(m_cache->contains(GuestVirtAddr(translated.last.registers.rip)));
  EXPECT_EQ(difference(native.final, translated.final), "") << "#DE at the guest's div";
}

TEST_F(ExecutionTest, AFaultingPushOfACallMapsBackToTheCall) {
  const std::uint64_t at = place(SNIPPET(push_fault));
  GuestRegisters start = entry(at);
  start.rsp = kStackBase;  // the call's push goes to the guard page
  reset_memory();
  const Trace native = run_native(start, false);
  ASSERT_EQ(native.last.signal, SIGSEGV) << native.last.describe();
  reset_memory();
  const Trace translated = run_translated(start, false);
  ASSERT_EQ(translated.last.signal, SIGSEGV) << translated.last.describe();
  EXPECT_EQ(translated.last.fault_address, native.last.fault_address);
  EXPECT_EQ(difference(native.final, translated.final), "") << "the call, with the guest's RSP";
  EXPECT_EQ(translated.final.rip, at + 5);
}

TEST_F(ExecutionTest, AFaultInsideTheLookupRoutineReportsTheCompletedRet) {
  // Once the function is called, its stack page becomes read-only: the ret
  // still pops (a read), but the lookup routine's pushfq below RSP faults.
  // The guest state at that fault is the completed ret's: at its target,
  // with the guest's RSP and rcx. The VMM makes the page writable again and
  // the run goes on to the native end.
  const std::uint64_t at = place(SNIPPET(call_ret));
  const std::uint64_t ret = at + SNIPPET(call_ret).size() - 1;  // its last byte
  const std::uint64_t stack_page = kStackBase + kStackSize - kPageSize;
  reset_memory();
  const Trace native = run_native(entry(at), true);
  std::optional<GuestRegisters> after_ret;
  for (std::size_t index = 1; index < native.states.size(); ++index) {
    if (native.states[index - 1].rip == ret) {
      after_ret = native.states[index];
      break;
    }
  }
  ASSERT_TRUE(after_ret && after_ret->rip == at + 10) << "the first ret returns after the call";

  reset_memory();
  int faults = 0;
  Observer observer;
  observer.on_step = [&](const GuestRegisters& guest) {
    if (guest.rip == ret && faults == 0) m_stack.protect(stack_page, kPageSize, PROT_READ);
  };
  observer.on_fault = [&](const HostStop& stop, const GuestRegisters& guest) {
    ++faults;
    EXPECT_EQ(stop.signal, SIGSEGV) << stop.describe();
    EXPECT_EQ(stop.registers.rip, m_cache->lookup_routine().value()) << "the pushfq";
    EXPECT_EQ(difference(*after_ret, guest), "");
    m_stack.protect(stack_page, kPageSize, kReadWrite);
    return true;
  };
  const Trace translated = run_translated(entry(at), true, observer);
  EXPECT_EQ(faults, 1);
  EXPECT_EQ(difference(native.final, translated.final), "");
}

TEST_F(ExecutionTest, CliAndStiStoreTheVirtualInterruptFlagWithoutTrapping) {
  const std::uint64_t at = place(SNIPPET(interrupt_flag));
  m_cache->set_virtual_interrupt_flag(true);
  const Trace translated = run_translated(entry(at), false);
  EXPECT_EQ(translated.last.signal, SIGTRAP) << "only the hlt call-out stopped it";
  EXPECT_FALSE(m_cache->virtual_interrupt_flag());
  EXPECT_EQ(translated.final.rax, 1u);
  EXPECT_EQ(translated.final.rbx, 2u);
}

TEST_F(ExecutionTest, AWriteProtectedInterruptFlagPageMakesEveryStoreFault) {
  // What the VMM does while an interrupt is pending: each cli/sti faults,
  // the VMM performs the store and resumes after it.
  const std::uint64_t at = place(SNIPPET(interrupt_flag));
  m_cache->set_virtual_interrupt_flag(true);
  m_tc.protect(kTcBase, kPageSize, PROT_READ);
  std::vector<bool> stored;
  protect_guest(kReadWrite);
  GuestRegisters real = entry(at);
  real.rip = resume_at(at);
  for (;;) {
    const HostStop stop = m_harness.run(real, false);
    if (stop.signal != SIGSEGV) break;
    ASSERT_EQ(stop.fault_address, kTcBase) << stop.describe();
    const auto store = m_cache->flag_store_at(GuestVirtAddr(stop.registers.rip));
    ASSERT_TRUE(store.has_value()) << stop.describe();
    stored.push_back(store->interrupts_enabled(stop.registers));
    m_tc.protect(kTcBase, kPageSize, kReadWrite);
    m_cache->set_virtual_interrupt_flag(store->interrupts_enabled(stop.registers));
    m_tc.protect(kTcBase, kPageSize, PROT_READ);
    real = stop.registers;
    real.rip = store->resume_address.value();
  }
  m_tc.protect(kTcBase, kPageSize, kReadWrite);
  EXPECT_EQ(stored, (std::vector<bool>{false, true, false}));
  EXPECT_FALSE(m_cache->virtual_interrupt_flag());
}

// --- The x86 holes, inline ------------------------------------------------------

constexpr std::uint64_t kCarry = 1u << 0;
constexpr std::uint64_t kParity = 1u << 2;
constexpr std::uint64_t kAuxiliaryCarry = 1u << 4;
constexpr std::uint64_t kZero = 1u << 6;
constexpr std::uint64_t kSign = 1u << 7;
constexpr std::uint64_t kTrap = 1u << 8;
constexpr std::uint64_t kInterrupt = 1u << 9;
constexpr std::uint64_t kDirection = 1u << 10;
constexpr std::uint64_t kOverflow = 1u << 11;
constexpr std::uint64_t kNestedTask = 1u << 14;
constexpr std::uint64_t kAlignmentCheck = 1u << 18;
constexpr std::uint64_t kIdentification = 1u << 21;
constexpr std::uint64_t iopl(unsigned level) {
  return std::uint64_t{level} << 12;
}

// Every register but those named as the start had it.
std::string others_changed(const GuestRegisters& start, const GuestRegisters& end,
                           std::initializer_list<std::uint64_t GuestRegisters::*> changed) {
  GuestRegisters expected = start;
  for (const auto field : changed)
    expected.*field = end.*field;
  expected.rip = end.rip;
  return difference(expected, end);
}

TEST_F(ExecutionTest, PushfPushesTheRealFlagsWithTheVirtualIfIoplAndAc) {
  const std::uint64_t at = place(SNIPPET(flags_read));
  GuestRegisters start = entry(at);
  start.rflags = 0x2 | kZero | kSign | kOverflow;
  for (const VirtualFlags flags :
       {VirtualFlags{true, 0}, VirtualFlags{false, 0},
        VirtualFlags{true, iopl(3) | kAlignmentCheck}, VirtualFlags{false, iopl(2)}}) {
    reset_memory();
    set_virtual_flags(flags);
    const Trace translated = run_translated(start, false);
    ASSERT_TRUE(translated.last.breakpoint()) << "only the hlt call-out stops it";
    const std::uint64_t arithmetic = start.rflags | kCarry;  // after stc
    const std::uint64_t image = arithmetic | (flags.interrupt_flag ? kInterrupt : 0) | flags.rflags;
    // NT and ID are the host's (a test cannot set them through a signal frame).
    EXPECT_EQ(translated.final.rbx & ~(kNestedTask | kIdentification), image)
        << std::hex << "pushfq with the virtual IF " << flags.interrupt_flag << ", rflags "
        << flags.rflags;
    EXPECT_EQ(translated.final.rcx & 0xffff, image & 0xffff) << "pushf: the low 16 bits";
    EXPECT_EQ(translated.final.rcx >> 16, start.rcx >> 16) << "pop cx kept the rest";
    EXPECT_EQ(translated.final.rflags & 0xcd5, arithmetic & 0xcd5) << "flags unchanged after";
    EXPECT_EQ(translated.last.raw_rflags & (kAlignmentCheck | iopl(3) | kInterrupt), kInterrupt)
        << "the real IF, IOPL and AC stay 1, 0, 0";
    EXPECT_EQ(others_changed(start, translated.final,
                             {&GuestRegisters::rbx, &GuestRegisters::rcx, &GuestRegisters::rflags}),
              "");
    EXPECT_EQ(virtual_flags(), flags) << "pushf changes nothing";
  }
  // With IF 1, IOPL 0 and AC 0 the virtual CPU agrees with the host's: the
  // translated run is the native one, step by step and on the stack.
  set_virtual_flags({true, 0});
  expect_same_as_native(at);
  const PreciseCount count = expect_precise_everywhere(start, [&] {
    set_virtual_flags({false, iopl(1) | kAlignmentCheck});
  });
  EXPECT_GE(count.stops, 2u * 12 + 4) << "both pushf sequences, each instruction";
}

TEST_F(ExecutionTest, PopfqLoadsTheRealFlagsAndTheVirtualIfIoplAndAc) {
  const std::uint64_t at = place(SNIPPET(flags_write));
  struct Case {
    VirtualFlags before;
    std::uint64_t image;
    VirtualFlags after;
  };
  const Case cases[] = {
      {{false, 0},
       0x2 | kCarry | kZero | kSign | kOverflow | kDirection | kInterrupt | iopl(2) |
           kAlignmentCheck | kNestedTask | kIdentification,
       {true, iopl(2) | kAlignmentCheck}},
      {{true, iopl(3) | kAlignmentCheck}, 0x2 | kParity | kAuxiliaryCarry, {false, 0}},
      // Bits popf never loads (RF, VM, VIF, VIP, reserved) are left out.
      {{true, 0},
       0x2 | kCarry | (1u << 16) | (1u << 17) | (1u << 19) | (1u << 20) | (1u << 3),
       {false, 0}},
  };
  for (const Case& each : cases) {
    GuestRegisters start = entry(at);
    start.rdi = each.image;
    start.rflags = 0x2;
    reset_memory();
    set_virtual_flags(each.before);
    const Trace translated = run_translated(start, false);
    ASSERT_TRUE(translated.last.breakpoint()) << translated.last.describe();
    EXPECT_EQ(virtual_flags(), each.after) << std::hex << "image " << each.image;
    // What popfq loads at CPL0: the status flags, TF, IF, DF, OF, IOPL, NT,
    // AC and ID; bit 1 is always set.
    const std::uint64_t loaded = each.image & 0x247fd7;
    EXPECT_EQ(translated.final.rbx, loaded) << std::hex << "pushfq reads back what popfq loaded";
    EXPECT_EQ(translated.final.rflags & 0xcd5, loaded & 0xcd5);
    EXPECT_EQ(translated.last.raw_rflags & (kNestedTask | kIdentification),
              loaded & (kNestedTask | kIdentification))
        << "NT and ID in the real flags";
    EXPECT_EQ(translated.last.raw_rflags & (kAlignmentCheck | iopl(3) | kInterrupt | kTrap),
              kInterrupt)
        << "never the guest's IF, IOPL, AC or TF in the real flags";
    EXPECT_EQ(
        others_changed(start, translated.final, {&GuestRegisters::rbx, &GuestRegisters::rflags}),
        "");
    const PreciseCount count =
        expect_precise_everywhere(start, [&] { set_virtual_flags(each.before); });
    EXPECT_GE(count.stops, 17u) << "every instruction of the popfq sequence";
    EXPECT_GT(count.ahead, 0u);
  }
}

TEST_F(ExecutionTest, PopfOf16BitsLoadsTheLowHalfAndLeavesAcAlone) {
  const std::uint64_t at = place(SNIPPET(flags_write_word));
  GuestRegisters start = entry(at);
  start.rdi = 0xffff0000 | kCarry | kInterrupt | iopl(3) | kNestedTask | kDirection;
  start.rflags = 0x2 | kZero;
  const VirtualFlags before{false, iopl(1) | kAlignmentCheck};
  reset_memory();
  set_virtual_flags(before);
  const Trace translated = run_translated(start, false);
  ASSERT_TRUE(translated.last.breakpoint()) << translated.last.describe();
  EXPECT_EQ(virtual_flags(), (VirtualFlags{true, iopl(3) | kAlignmentCheck}))
      << "IF and IOPL from the word, AC as it was";
  EXPECT_EQ(translated.final.rbx & 0xffff, (start.rdi & 0x7fd7) | 0x2);
  EXPECT_EQ(translated.final.rbx & kAlignmentCheck, kAlignmentCheck) << "the virtual AC";
  EXPECT_EQ(translated.final.rsp, start.rsp);
  EXPECT_EQ(translated.last.raw_rflags & kNestedTask, kNestedTask);
  const PreciseCount count = expect_precise_everywhere(start, [&] { set_virtual_flags(before); });
  EXPECT_GT(count.ahead, 0u);
}

TEST_F(ExecutionTest, APopfThatSetsTfLeavesThroughItsCallOut) {
  const std::uint64_t at = place(SNIPPET(flags_write));
  GuestRegisters start = entry(at);
  start.rdi = 0x2 | kTrap | kCarry;
  start.rflags = 0x2 | kZero;
  reset_memory();
  set_virtual_flags({true, 0});
  const Trace translated = run_translated(start, false);
  ASSERT_TRUE(translated.last.breakpoint()) << translated.last.describe();
  const GuestVirtAddr site_address(translated.last.registers.rip - 1);
  const auto site = m_cache->exit_at(site_address);
  ASSERT_TRUE(site && std::holds_alternative<CallOut>(*site));
  const CallOut& call_out = std::get<CallOut>(*site);
  EXPECT_EQ(call_out.mnemonic, "popfq");
  EXPECT_EQ(call_out.reason, CallOutReason::kFlagsWrite);
  EXPECT_EQ(call_out.guest_rip.value(), at + 1);
  // The guest's registers, before the popf: its image still on the stack.
  GuestRegisters before_popf = start;
  before_popf.rsp -= 8;
  before_popf.rip = at + 1;
  EXPECT_EQ(difference(before_popf, translated.final), "");
  EXPECT_EQ(virtual_flags(), (VirtualFlags{true, 0})) << "nothing stored";
  // The VMM emulates the popf and resumes after the call-out, where the
  // block goes on at the next guest instruction.
  const GuestVirtAddr resume = TranslationCache::resume_after(call_out);
  EXPECT_EQ(m_cache->guest_state_at(resume), test_support::state_at_guest(at + 2));
  GuestRegisters emulated = translated.final;
  emulated.rsp += 8;
  emulated.rflags = 0x2 | kCarry;
  GuestRegisters real = emulated;
  real.rip = resume.value();
  emulated.rip = at + 2;
  const Trace rest = drive(emulated, real, false);
  EXPECT_EQ(rest.final.rip, at + 4) << "at the hlt";
  // NT and ID are the host's (a test cannot set them through a signal frame).
  EXPECT_EQ(rest.final.rbx & ~(kNestedTask | kIdentification), 0x2 | kCarry | kInterrupt);
}

TEST_F(ExecutionTest, AWriteProtectedFlagPageMakesPopfsCommitFaultWithItsValue) {
  // While an interrupt is pending the VMM write-protects the flag page: the
  // popf's store of the new IF faults, and flag_store_at says what it stores.
  const std::uint64_t at = place(SNIPPET(flags_write));
  for (const bool enables : {true, false}) {
    GuestRegisters start = entry(at);
    start.rdi = 0x2 | kCarry | (enables ? kInterrupt : 0) | iopl(1);
    reset_memory();
    set_virtual_flags({false, 0});
    m_tc.protect(kTcBase, kPageSize, PROT_READ);
    protect_guest(kReadWrite);
    GuestRegisters real = start;
    real.rip = resume_at(at);
    HostStop stop = m_harness.run(real, false);
    ASSERT_EQ(stop.signal, SIGSEGV) << stop.describe();
    ASSERT_EQ(stop.fault_address, kTcBase) << stop.describe();
    const auto store = m_cache->flag_store_at(GuestVirtAddr(stop.registers.rip));
    ASSERT_TRUE(store.has_value()) << stop.describe();
    EXPECT_EQ(store->value, VirtualFlagStore::Value::kRegisterAl);
    EXPECT_EQ(store->interrupts_enabled(stop.registers), enables);
    EXPECT_FALSE(store->opens_interrupt_shadow) << "popf has no interrupt shadow";
    EXPECT_EQ(store->mnemonic, "popfq");
    EXPECT_EQ(store->guest_rip.value(), at + 1);
    EXPECT_EQ(store->next_guest_rip.value(), at + 2);
    // Stopped at the store, the guest has not done the popf yet; after it, has.
    GuestRegisters before_popf = start;
    before_popf.rsp -= 8;
    before_popf.rip = at + 1;
    EXPECT_EQ(difference(before_popf, recover(stop.registers.rip, stop.registers)), "");
    const auto after = m_cache->guest_state_at(store->resume_address);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->rip.value(), at + 2);
    EXPECT_FALSE(after->virtual_flags_ahead);
    // What the VMM does: the store, then on from after it.
    m_tc.protect(kTcBase, kPageSize, kReadWrite);
    m_cache->set_virtual_interrupt_flag(store->interrupts_enabled(stop.registers));
    real = stop.registers;
    real.rip = store->resume_address.value();
    GuestRegisters guest = start;
    guest.rip = at + 2;
    const Trace rest = drive(guest, real, false);
    EXPECT_EQ(rest.final.rip, at + 4);
    EXPECT_EQ(rest.final.rsp, start.rsp);
    EXPECT_EQ(rest.final.rbx, start.rdi);
    EXPECT_EQ(virtual_flags(), (VirtualFlags{enables, iopl(1)}));
  }
}

TEST_F(ExecutionTest, APopfThatSetsAcTakesNoAlignmentCheck) {
  const std::uint64_t at = place(SNIPPET(misaligned_after_popf));
  GuestRegisters start = entry(at);
  start.rdi = 0x2 | kAlignmentCheck;
  reset_memory();
  const Trace native = run_native(start, false);
  EXPECT_EQ(native.last.signal, SIGBUS) << "the host CPU checks alignment at CPL3 (CR0.AM)";
  reset_memory();
  set_virtual_flags({true, 0});
  const Trace translated = run_translated(start, false);
  ASSERT_TRUE(translated.last.breakpoint()) << translated.last.describe();
  EXPECT_EQ(translated.final.rbx & kAlignmentCheck, kAlignmentCheck) << "the guest sees its AC";
  EXPECT_EQ(virtual_flags().rflags, kAlignmentCheck);
}

TEST_F(ExecutionTest, MovFromSegmentRegistersAndPushFsGsGiveTheVirtualSelectors) {
  const std::uint64_t at = place(SNIPPET(segment_reads));
  const std::uint64_t buffer = kGuestBase + 0x8000;
  const std::uint64_t gs_word = at + SNIPPET(segment_reads).size() - 2;
  const auto prepare = [&] {
    ScratchPage page = m_cache->scratch();
    page.cs = 0x1108;
    page.ss = 0x2210;
    page.ds = 0x3318;
    page.es = 0x4420;
    page.fs = 0x5528;
    page.gs = 0x6630;
    m_cache->write_scratch(page);
  };
  GuestRegisters start = entry(at);
  start.rsi = buffer;
  start.rax = 0x10;
  start.rcx = 3;
  start.rdx = buffer + 0x40;
  start.rflags = 0x2 | kCarry | kSign;
  reset_memory();
  prepare();
  const Trace translated = run_translated(start, false);
  ASSERT_TRUE(translated.last.breakpoint()) << translated.last.describe();
  const auto word = [](std::uint64_t address) {
    std::uint16_t value = 0;
    std::memcpy(&value, reinterpret_cast<const void*>(address), 2);
    return value;
  };
  EXPECT_EQ(word(buffer + 0x10), 0x4420) << "mov [rsi+rax], es";
  EXPECT_EQ(word(buffer + 0x12), 0xcccc) << "16 bits, no more";
  EXPECT_EQ(word(buffer + 10), 0x3318) << "mov [rsi+rcx*2+4], ds";
  EXPECT_EQ(word(buffer + 0x40), 0x2210) << "mov [rdx], ss";
  EXPECT_EQ(word(gs_word), 0x6630) << "mov [rip+d], gs";
  const GuestRegisters& end = translated.final;
  EXPECT_EQ(end.rax, 0x4420u) << "mov ax, es keeps rax's upper bits (0 here)";
  EXPECT_EQ(end.rbx, 0x3318u) << "mov ebx, ds: zero-extended";
  EXPECT_EQ(end.rcx, 0x5528u) << "mov rcx, fs";
  EXPECT_EQ(end.r9, (start.r9 & ~0xffffull) | 0x6630) << "mov r9w, gs keeps the upper bits";
  EXPECT_EQ(end.r10, 0x1108u) << "mov r10d, cs";
  EXPECT_EQ(end.r11, 0x2210u) << "mov r11, ss";
  EXPECT_EQ(end.r12, 0x5528u) << "push fs: the selector zero-extended to 64 bits";
  EXPECT_EQ(end.r13, (start.r13 & ~0xffffull) | 0x6630) << "pushw gs, pop r13w";
  EXPECT_EQ(end.rsp, start.rsp);
  EXPECT_EQ(end.rflags & 0xcd5, start.rflags & 0xcd5) << "no flag changes";
  EXPECT_EQ(others_changed(start, end,
                           {&GuestRegisters::rax, &GuestRegisters::rbx, &GuestRegisters::rcx,
                            &GuestRegisters::r9, &GuestRegisters::r10, &GuestRegisters::r11,
                            &GuestRegisters::r12, &GuestRegisters::r13}),
            "");
  expect_precise_everywhere(start, prepare);
}

TEST_F(ExecutionTest, SgdtSidtSldtStrAndSmswGiveTheVirtualTablesSelectorsAndCr0) {
  const std::uint64_t at = place(SNIPPET(system_reads));
  const std::uint64_t buffer = kGuestBase + 0x8000;
  constexpr std::uint64_t kCr0 = 0x0000000a8005003bull;  // a test value with bits above 31
  const auto prepare = [&] {
    ScratchPage page = m_cache->scratch();
    page.gdtr_base = 0xffff800000123000;
    page.gdtr_limit = 0x7f;
    page.idtr_base = 0xffff800000456000;
    page.idtr_limit = 0xfff;
    page.ldtr = 0x0048;
    page.tr = 0x0040;
    page.cr0 = kCr0;
    m_cache->write_scratch(page);
  };
  GuestRegisters start = entry(at);
  start.rax = buffer;
  start.rdx = buffer;
  start.rcx = 4;
  reset_memory();
  prepare();
  const Trace translated = run_translated(start, false);
  ASSERT_TRUE(translated.last.breakpoint()) << translated.last.describe();
  const auto read = [](std::uint64_t address, std::size_t length) {
    std::uint64_t value = 0;
    std::memcpy(&value, reinterpret_cast<const void*>(address), length);
    return value;
  };
  EXPECT_EQ(read(buffer, 2), 0x7fu) << "sgdt: the limit";
  EXPECT_EQ(read(buffer + 2, 8), 0xffff800000123000u) << "then the base";
  EXPECT_EQ(read(buffer + 20, 2), 0xfffu) << "sidt [rax+rcx+16]";
  EXPECT_EQ(read(buffer + 22, 8), 0xffff800000456000u);
  EXPECT_EQ(read(buffer + 32, 2), 0x48u) << "sldt m16";
  EXPECT_EQ(read(buffer + 40, 2), 0x40u) << "str m16";
  EXPECT_EQ(read(buffer + 48, 2), kCr0 & 0xffff) << "smsw m16";
  EXPECT_EQ(read(buffer + 50, 2), 0xccccu) << "16 bits, no more";
  const GuestRegisters& end = translated.final;
  EXPECT_EQ(end.r8, (start.r8 & ~0xffffull) | 0x48) << "sldt r8w keeps the upper bits";
  EXPECT_EQ(end.r9, 0x40u) << "str r9d: zero-extended";
  EXPECT_EQ(end.r10, kCr0) << "smsw r10: all of CR0";
  EXPECT_EQ(end.r11, kCr0 & 0xffffffff) << "smsw r11d: its low 32 bits";
  EXPECT_EQ(end.r12, (start.r12 & ~0xffffull) | (kCr0 & 0xffff)) << "smsw r12w";
  EXPECT_EQ(end.rbx, 0x48u) << "sldt rbx";
  EXPECT_EQ(others_changed(start, end,
                           {&GuestRegisters::r8, &GuestRegisters::r9, &GuestRegisters::r10,
                            &GuestRegisters::r11, &GuestRegisters::r12, &GuestRegisters::rbx}),
            "");
  expect_precise_everywhere(start, prepare);
}

}  // namespace
}  // namespace vmlab::bt
