#include "vmlab/exit_handler.hpp"

#include <cstddef>
#include <mutex>
#include <string>

namespace vmlab {

ExitAction handle_core_exit(Board& board, const VcpuExit& exit) {
  auto run_on = [] { return ExitAction{ExitAction::Kind::Continue, RunOutcome::GuestExited, {}}; };
  auto halt = [] { return ExitAction{ExitAction::Kind::Halt, RunOutcome::GuestExited, {}}; };
  auto fail = [](RunOutcome outcome, std::string message) {
    return ExitAction{ExitAction::Kind::End, outcome, std::move(message)};
  };
  // One case per kind of exit: a kind without one does not compile.
  return std::visit(
      Overloaded{
          [&](const exits::PortIn& in) {
            // String I/O (rep ins) arrives as `count` elements in one exit.
            std::lock_guard lock(board.device_lock());
            for (std::uint32_t index = 0; index < in.count; ++index) {
              (void)board.port_bus().read(in.port.value(),
                                          in.data.subspan(std::size_t{index} * in.size, in.size));
            }
            return run_on();
          },
          [&](const exits::PortOut& out) {
            std::lock_guard lock(board.device_lock());
            for (std::uint32_t index = 0; index < out.count; ++index) {
              (void)board.port_bus().write(
                  out.port.value(), out.data.subspan(std::size_t{index} * out.size, out.size));
            }
            return run_on();
          },
          [&](const exits::MmioRead& read) {
            std::lock_guard lock(board.device_lock());
            (void)board.mmio_bus().read(read.address.value(), read.data);
            return run_on();
          },
          [&](const exits::MmioWrite& write) {
            std::lock_guard lock(board.device_lock());
            (void)board.mmio_bus().write(write.address.value(), write.data);
            return run_on();
          },
          [&](const exits::Halt&) { return halt(); },
          // The loop top delivers interrupts and checks for a stop.
          [&](const exits::Interrupted&) { return run_on(); },
          [&](const exits::InterruptWindowOpen&) { return run_on(); },
          [&](const exits::Shutdown&) {
            return fail(RunOutcome::GuestCrashed,
                        "the guest triple-faulted (KVM_EXIT_SHUTDOWN): an exception it could not "
                        "handle; `dmesg | grep kvm` may say which");
          },
          [&](const exits::FailEntry& failed) {
            return fail(RunOutcome::GuestCrashed,
                        "KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware reason " +
                            std::to_string(failed.hardware_reason) + "): its CPU state is invalid");
          },
          [&](const exits::InternalError& internal) {
            if (internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
              return fail(RunOutcome::GuestCrashed,
                          "KVM's instruction emulator could not run a guest instruction "
                          "(KVM_EXIT_INTERNAL_ERROR, emulation failure). Where the backend "
                          "emulates all CPL0 code (kvm_pvm), instructions it does not know, such "
                          "as lar, lsl, verr and verw, stop the guest; the rip below names the "
                          "instruction");
            }
            return fail(RunOutcome::GuestCrashed,
                        "KVM reported an internal error (KVM_EXIT_INTERNAL_ERROR, suberror " +
                            std::to_string(internal.suberror) + ")");
          },
          [&](const exits::SystemEvent& event) {
            return fail(RunOutcome::GuestCrashed,
                        "the guest requested a system event (type " + std::to_string(event.type) +
                            ": shutdown or reset) instead of using the exit port");
          },
          [&](const exits::Debug&) {
            return fail(RunOutcome::VmmError, "unexpected debug exit: no debugging was requested");
          },
          [&](const exits::Unknown& unknown) {
            return fail(RunOutcome::VmmError, std::string("unexpected VM exit ") +
                                                  kvm_exit_reason_name(unknown.reason) + " (" +
                                                  std::to_string(unknown.reason) + ")");
          },
      },
      exit);
}

}  // namespace vmlab
