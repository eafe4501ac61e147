// One CPU virtualization technique behind the interface the core calls
// (DESIGN.md section 2). The core owns the run loop; a mode decides how the
// guest is entered and how interrupts reach it.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vmlab/board.hpp"
#include "vmlab/clock.hpp"
#include "vmlab/elf_loader.hpp"
#include "vmlab/events.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

// Why a CPU mode failed a call from the run loop.
enum class ModeError {
  kGuestTripleFault = 1,  // the guest cannot take an event (it would triple-fault on hardware)
};
constexpr const char* error_domain(ModeError) {
  return "cpu mode";
}

struct ModeContext {
  Vm& vm;
  Vcpu& vcpu;
  GuestMemory& memory;
  Board& board;
  EventRecorder& recorder;
  // Nanoseconds since the run started: what event times are.
  const Clock& run_time;

  std::uint64_t elapsed_ns() const { return run_time.now_ns(); }
};

// What a mode did with an exit it was offered first; a Stop carries why.
class ExitDisposition {
 public:
  enum class Kind {
    NotMine,           // the core handles it (device I/O, hlt, errors)
    Handled,           // the mode handled it; run on
    WaitForInterrupt,  // the guest halted (virtually): sleep until an interrupt is due
    Stop,              // the guest cannot go on: stop_reason() says why
  };
  static ExitDisposition not_mine() { return ExitDisposition(Kind::NotMine, {}); }
  static ExitDisposition handled() { return ExitDisposition(Kind::Handled, {}); }
  static ExitDisposition wait_for_interrupt() {
    return ExitDisposition(Kind::WaitForInterrupt, {});
  }
  static ExitDisposition stop(std::string reason) {
    return ExitDisposition(Kind::Stop, std::move(reason));
  }

  Kind kind() const { return m_kind; }
  const std::string& stop_reason() const { return m_stop_reason; }

 private:
  ExitDisposition(Kind kind, std::string reason) : m_kind(kind), m_stop_reason(std::move(reason)) {}
  Kind m_kind;
  std::string m_stop_reason;
};

// What deliver_interrupts did: the vector it injected, if any.
using Injection = std::optional<std::uint8_t>;
inline constexpr Injection kNoInjection{};

// The guest's instructions a census run counted, one single step each, by
// the level they ran at (RunOptions::instruction_census; a mode
// counts when it was made with its census option on). A step counts an
// instruction that retired on the CPU; an instruction a monitor emulated
// instead (it trapped) or KVM's emulator ran is no step, except under hvm,
// where KVM steps the code its emulator runs too (on kvm_pvm: all CPL0 code).
struct InstructionCensus {
  std::uint64_t kernel_steps = 0;  // in (virtual) kernel mode at the guest's own addresses
  std::uint64_t user_steps = 0;    // in (virtual) user mode
  // bt: instructions the CPU ran from the translation cache in virtual
  // kernel mode, the translator's output standing for the kernel's code.
  std::uint64_t translated_steps = 0;
  // Whether user mode was stepped: false where the backend does not
  // single-step CPL3 for KVM_SET_GUEST_DEBUG (kvm_pvm under hvm: the
  // emulated iretq drops KVM's TF), so user_steps is no count there.
  bool user_mode_counted = true;
};

class CpuMode {
 public:
  virtual ~CpuMode() = default;
  virtual std::string_view name() const = 0;
  // The paravirtual ABI version the boot protocol announces to the guest
  // kernel (boot_info.paravirtual_abi), or 0: the kernel runs natively.
  virtual std::uint32_t paravirtual_abi() const { return 0; }
  // Sets the vCPU up for the first entry; boot structures are in memory.
  virtual Status prepare(ModeContext& context, const LoadedImage& image) = 0;
  // Called before every KVM_RUN: deliver a pending interrupt if the guest can
  // take one, or ask KVM for an exit when it can. Returns the vector it
  // injected, or kNoInjection.
  virtual Result<Injection> deliver_interrupts(ModeContext& context) = 0;
  // The level the guest was running at when the vCPU exited (for time
  // shares and events), from the state KVM synced into kvm_run.
  virtual PrivilegeLevel level_at_exit(const kvm_run& run) const {
    return run.s.regs.sregs.cs.dpl == 0 ? PrivilegeLevel::GuestKernel : PrivilegeLevel::GuestUser;
  }
  // Whether the guest would take a pending interrupt now (its IF): decides
  // when a halted vCPU wakes.
  virtual bool interrupts_enabled(ModeContext& context) const {
    return context.vcpu.run_state().if_flag != 0;
  }
  // After a run: whether memory the guest must never change (a monitor
  // region) is as the mode left it. A description of the damage, or nullopt.
  virtual std::optional<std::string> integrity_violation() const { return std::nullopt; }
  // What the mode's instruction census counted; nullopt when it was made
  // without one.
  virtual std::optional<InstructionCensus> census() const { return std::nullopt; }
  // Offered every exit before the core handles it.
  virtual ExitDisposition handle_exit(ModeContext& context, const VcpuExit& exit) {
    (void)context;
    (void)exit;
    return ExitDisposition::not_mine();
  }
};

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::ModeError);
