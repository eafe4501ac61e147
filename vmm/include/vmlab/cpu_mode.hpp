// One CPU virtualization technique behind the interface the core calls
// (DESIGN.md section 2). The core owns the run loop; a mode decides how the
// guest is entered and how interrupts reach it.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "vmlab/board.hpp"
#include "vmlab/elf_loader.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/kvm.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

class EventRecorder;

struct ModeContext {
  Vm& vm;
  Vcpu& vcpu;
  GuestMemory& memory;
  Board& board;
  EventRecorder& recorder;
};

// What a mode did with an exit it was offered first.
enum class ExitDisposition {
  NotMine,           // the core handles it (device I/O, hlt, errors)
  Handled,           // the mode handled it; run on
  WaitForInterrupt,  // the guest halted (virtually): sleep until an interrupt is due
  Stop,              // the guest cannot go on (the message says why)
};

class CpuMode {
 public:
  virtual ~CpuMode() = default;
  virtual std::string_view name() const = 0;
  // Sets the vCPU up for the first entry; boot structures are in memory.
  virtual Status prepare(ModeContext& context, const LoadedImage& image) = 0;
  // Called before every KVM_RUN: deliver a pending interrupt if the guest can
  // take one, or ask KVM for an exit when it can. Returns the injected vector
  // or -1.
  virtual Result<int> deliver_interrupts(ModeContext& context) = 0;
  // After a run: whether memory the guest must never change (a monitor
  // region) is as the mode left it. A description of the damage, or nullopt.
  virtual std::optional<std::string> integrity_violation() const { return std::nullopt; }
  // Offered every exit before the core handles it.
  virtual ExitDisposition handle_exit(ModeContext& context, const VcpuExit& exit,
                                      std::string& stop_message) {
    (void)context;
    (void)exit;
    (void)stop_message;
    return ExitDisposition::NotMine;
  }
};

}  // namespace vmlab
