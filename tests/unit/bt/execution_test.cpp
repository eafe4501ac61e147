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
#include <sstream>
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
    protect_guest(kReadWrite);
    Trace trace;
    trace.states.push_back(guest);
    GuestRegisters real = guest;
    real.rip = resume_at(guest.rip);
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
    stored.push_back(store->interrupts_enabled);
    m_tc.protect(kTcBase, kPageSize, kReadWrite);
    m_cache->set_virtual_interrupt_flag(store->interrupts_enabled);
    m_tc.protect(kTcBase, kPageSize, PROT_READ);
    real = stop.registers;
    real.rip = store->resume_address.value();
  }
  m_tc.protect(kTcBase, kPageSize, kReadWrite);
  EXPECT_EQ(stored, (std::vector<bool>{false, true, false}));
  EXPECT_FALSE(m_cache->virtual_interrupt_flag());
}

}  // namespace
}  // namespace vmlab::bt
