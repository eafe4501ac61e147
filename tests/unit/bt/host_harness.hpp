// Running guest code on the host, for the bt tests: natively (the reference:
// what the CPU itself does with the guest's instructions) and from a
// translation cache mapped at a low host address. Entry and exit are both
// signals, so no assembly is needed: raise(SIGUSR1) enters, its handler
// swaps the host's registers for the guest's in the signal frame and
// returns into the guest; the guest stops with a signal (SIGTRAP for an
// int3 or a single step, SIGSEGV, SIGFPE, ...), whose handler records the
// guest's registers and puts the host's back, so raise() returns. Handlers
// run on an alternate stack: the guest's stack is never touched by them.
#pragma once

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmlab/monitor/guest_context.hpp"

namespace vmlab::bt::test_support {

// The guest's registers by name and by their place in a signal frame's
// gregs (sys/ucontext.h): the sixteen, then rip, then rflags.
struct RegisterField {
  const char* name;
  int greg;
  std::uint64_t monitor::GuestRegisters::*field;
};
extern const RegisterField kRegisterFields[18];

struct HostStop {
  int signal = 0;  // SIGTRAP, SIGSEGV, SIGFPE, SIGILL, SIGBUS; SIGALRM: it ran too long
  int code = 0;    // si_code: TRAP_TRACE for a single step, SI_KERNEL for an int3
  std::uint64_t fault_address = 0;    // si_addr
  monitor::GuestRegisters registers;  // rip as the CPU reported it (after an int3)
  // rflags as the CPU had them; registers.rflags keeps only what a guest may
  // set (the arithmetic flags and DF), which is what a test resumes with.
  std::uint64_t raw_rflags = 0;

  bool single_step() const;
  bool breakpoint() const;  // an int3: the site is registers.rip - 1
  std::string describe() const;
};

// Installs the handlers for its lifetime. One at a time.
class HostHarness {
 public:
  HostHarness();
  ~HostHarness();
  HostHarness(const HostHarness&) = delete;
  HostHarness& operator=(const HostHarness&) = delete;

  // Runs from registers.rip with the registers given (rflags: the
  // arithmetic flags and DF; TF when single_step) until a signal.
  HostStop run(const monitor::GuestRegisters& registers, bool single_step = false);
};

// An anonymous mapping at a fixed low address (MAP_FIXED_NOREPLACE), unmapped
// on destruction.
class FixedMapping {
 public:
  FixedMapping(std::uint64_t address, std::size_t size, int protection);
  ~FixedMapping();
  FixedMapping(const FixedMapping&) = delete;
  FixedMapping& operator=(const FixedMapping&) = delete;

  bool ok() const { return m_bytes != nullptr; }
  std::uint64_t address() const { return m_address; }
  std::span<std::uint8_t> bytes() const { return {m_bytes, m_size}; }
  void protect(std::uint64_t address, std::size_t length, int protection) const;

 private:
  std::uint64_t m_address = 0;
  std::size_t m_size = 0;
  std::uint8_t* m_bytes = nullptr;
};

}  // namespace vmlab::bt::test_support
