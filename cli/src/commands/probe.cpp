// `vmlab probe`: the x86 holes, mode by mode (the equivalence matrix).
#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "vmlab/probe.hpp"

namespace vmlab::cli {

Subcommand add_probe_command(CLI::App& vmlab) {
  return add_command_without_options<ProbeCommand>(
      vmlab, "probe",
      "the x86 holes: what each mode shows a kernel for sensitive instructions\n"
      "Runs the guest's `probes` workload (pushf after cli, popf clearing IF, sgdt, sidt, sldt, "
      "str, smsw, mov from cs and ss, lar, lsl, verr, verw, in kernel mode) on QEMU (the native "
      "answer), hvm, full, full with CR4.UMIP and para, and prints what each saw, whether it "
      "matches native, and what UMIP closes.");
}

int execute(const ProbeCommand& /*command*/) {
  std::fprintf(stderr,
               "running the probes on QEMU, hvm, full, full+umip, bt, bt+umip and para ...\n");
  auto matrix = run_probe_matrix();
  if (!matrix) {
    report_error(matrix.error().message);
    return exit_status::kUnavailable;
  }
  print_probe_matrix(*matrix, std::cout);
  return 0;
}

}  // namespace vmlab::cli
