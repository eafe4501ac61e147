// The core's half of exit handling (STYLE.md 2, "decode, then dispatch"): an
// exit that no CPU mode claimed is device I/O on the board's buses, a halt,
// a kick, or the end of the run, named with the reason and the fix. It needs
// only a Board, so unit tests drive it with a fake board and no KVM; the run
// loop (Machine) adds the vCPU's registers to a report of an ended run.
#pragma once

#include <string>

#include "vmlab/board.hpp"
#include "vmlab/kvm.hpp"

namespace vmlab {

enum class RunOutcome {
  GuestExited,   // the guest wrote its status to the exit port
  GuestCrashed,  // triple fault, failed entry, emulation failure
  Timeout,       // still running after the timeout
  Stopped,       // ended on request (vmlab run's Ctrl-C, vmlab-viz's Stop) while it ran
  VmmError,      // an ioctl failed or an exit nobody handles
};

struct ExitAction {
  enum class Kind {
    Continue,  // enter the guest again
    Halt,      // the guest executed hlt: sleep until an interrupt is due
    End,       // the run is over: `outcome` and `message` say why
  };
  Kind kind = Kind::Continue;
  RunOutcome outcome = RunOutcome::GuestExited;
  std::string message;
};

// Takes the board's device lock for device accesses. Every kind of exit has
// its case: a new kind does not compile until it has one.
ExitAction handle_core_exit(Board& board, const VcpuExit& exit);

}  // namespace vmlab
