#include "host_harness.hpp"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace vmlab::bt::test_support {

const RegisterField kRegisterFields[18] = {
    {"rax", REG_RAX, &monitor::GuestRegisters::rax},
    {"rbx", REG_RBX, &monitor::GuestRegisters::rbx},
    {"rcx", REG_RCX, &monitor::GuestRegisters::rcx},
    {"rdx", REG_RDX, &monitor::GuestRegisters::rdx},
    {"rsi", REG_RSI, &monitor::GuestRegisters::rsi},
    {"rdi", REG_RDI, &monitor::GuestRegisters::rdi},
    {"rbp", REG_RBP, &monitor::GuestRegisters::rbp},
    {"rsp", REG_RSP, &monitor::GuestRegisters::rsp},
    {"r8", REG_R8, &monitor::GuestRegisters::r8},
    {"r9", REG_R9, &monitor::GuestRegisters::r9},
    {"r10", REG_R10, &monitor::GuestRegisters::r10},
    {"r11", REG_R11, &monitor::GuestRegisters::r11},
    {"r12", REG_R12, &monitor::GuestRegisters::r12},
    {"r13", REG_R13, &monitor::GuestRegisters::r13},
    {"r14", REG_R14, &monitor::GuestRegisters::r14},
    {"r15", REG_R15, &monitor::GuestRegisters::r15},
    {"rip", REG_RIP, &monitor::GuestRegisters::rip},
    {"rflags", REG_EFL, &monitor::GuestRegisters::rflags},
};

namespace {

constexpr std::uint64_t kTrapFlag = 1u << 8;
// What a guest may set: CF, PF, AF, ZF, SF, OF and DF (and bit 1, always 1).
constexpr std::uint64_t kGuestFlags = 0xcd5;
constexpr int kSignals[] = {SIGUSR1, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGALRM};
constexpr unsigned kTimeoutSeconds = 5;

// What the handler works on. Only one harness exists at a time, and the
// handler runs with every harness signal blocked, so plain statics do.
struct HandlerState {
  bool entry_pending = false;
  bool in_guest = false;
  monitor::GuestRegisters entry;
  gregset_t host{};  // the host's registers at raise(SIGUSR1)
  HostStop stop;
};
HandlerState g_state;
std::vector<std::uint8_t> g_alternate_stack;
struct sigaction g_previous[std::size(kSignals)];
stack_t g_previous_stack;

void on_signal(int signal, siginfo_t* info, void* context) {
  // Linux delivers a signal with the interrupted code's RFLAGS.AC as it was
  // (it clears DF, TF and RF only): after a snippet set AC, any unaligned
  // access of this handler's own (glibc's memcpy variant for the host CPU
  // may make one; seen on an AMD host) would raise SIGBUS while SIGBUS is
  // blocked, which kills the test. AC is any CPL's to clear with popf.
  asm volatile("pushfq\n\tandq $~0x40000, (%%rsp)\n\tpopfq" ::: "memory", "cc");
  greg_t* gregs = static_cast<ucontext_t*>(context)->uc_mcontext.gregs;
  if (signal == SIGUSR1 && g_state.entry_pending) {
    std::memcpy(g_state.host, gregs, sizeof g_state.host);
    for (const RegisterField& each : kRegisterFields) {
      gregs[each.greg] = static_cast<greg_t>(g_state.entry.*each.field);
    }
    g_state.entry_pending = false;
    g_state.in_guest = true;
    return;
  }
  if (!g_state.in_guest) {
    // Not the guest's: the test program itself crashed. Let it.
    std::signal(signal, SIG_DFL);
    return;
  }
  HostStop& stop = g_state.stop;
  stop.signal = signal;
  stop.code = info->si_code;
  stop.fault_address = reinterpret_cast<std::uint64_t>(info->si_addr);
  for (const RegisterField& each : kRegisterFields) {
    stop.registers.*each.field = static_cast<std::uint64_t>(gregs[each.greg]);
  }
  std::memcpy(gregs, g_state.host, sizeof g_state.host);
  g_state.in_guest = false;
}

}  // namespace

bool HostStop::single_step() const {
  return signal == SIGTRAP && code == TRAP_TRACE;
}

bool HostStop::breakpoint() const {
  return signal == SIGTRAP && code == SI_KERNEL;
}

std::string HostStop::describe() const {
  char text[160];
  std::snprintf(text, sizeof text, "signal %d (code %d) at rip %#llx, address %#llx", signal, code,
                static_cast<unsigned long long>(registers.rip),
                static_cast<unsigned long long>(fault_address));
  return text;
}

HostHarness::HostHarness() {
  g_alternate_stack.assign(256 * 1024, 0);
  stack_t alternate{};
  alternate.ss_sp = g_alternate_stack.data();
  alternate.ss_size = g_alternate_stack.size();
  if (sigaltstack(&alternate, &g_previous_stack) != 0) throw std::runtime_error("sigaltstack");
  struct sigaction action {};
  action.sa_sigaction = on_signal;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  for (const int signal : kSignals)
    sigaddset(&action.sa_mask, signal);
  for (std::size_t index = 0; index < std::size(kSignals); ++index) {
    sigaction(kSignals[index], &action, &g_previous[index]);
  }
}

HostHarness::~HostHarness() {
  for (std::size_t index = 0; index < std::size(kSignals); ++index) {
    sigaction(kSignals[index], &g_previous[index], nullptr);
  }
  sigaltstack(&g_previous_stack, nullptr);
}

HostStop HostHarness::run(const monitor::GuestRegisters& registers, bool single_step) {
  g_state.entry = registers;
  g_state.entry.rflags = (registers.rflags & kGuestFlags) | 0x202 | (single_step ? kTrapFlag : 0);
  g_state.stop = HostStop{};
  g_state.entry_pending = true;
  alarm(kTimeoutSeconds);
  raise(SIGUSR1);
  alarm(0);
  HostStop stop = g_state.stop;
  stop.raw_rflags = stop.registers.rflags;
  stop.registers.rflags &= kGuestFlags | 0x2;
  return stop;
}

FixedMapping::FixedMapping(std::uint64_t address, std::size_t size, int protection)
    : m_address(address), m_size(size) {
  void* mapped = mmap(reinterpret_cast<void*>(address), size, protection,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (mapped == MAP_FAILED || reinterpret_cast<std::uint64_t>(mapped) != address) {
    if (mapped != MAP_FAILED) munmap(mapped, size);
    return;
  }
  m_bytes = static_cast<std::uint8_t*>(mapped);
}

FixedMapping::~FixedMapping() {
  if (m_bytes != nullptr) munmap(m_bytes, m_size);
}

void FixedMapping::protect(std::uint64_t address, std::size_t length, int protection) const {
  if (mprotect(reinterpret_cast<void*>(address), length, protection) != 0) {
    throw std::runtime_error("mprotect");
  }
}

}  // namespace vmlab::bt::test_support
