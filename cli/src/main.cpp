// vmlab: the command-line front end (DESIGN.md section 8). The commands are
// in commands/, one file each; command_line.cpp parses the arguments into
// one of them and runs it.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "vmlab/command_line.hpp"
#include "vmlab/runner.hpp"

int main(int argc, char** argv) {
  // Ctrl-C and the like remove the outputs' temporary files (OutputFile).
  vmlab::remove_temporary_outputs_on_signals();
  // Library code reports errors as values; what can still throw is the
  // standard library running out of memory. Say so instead of aborting.
  try {
    return vmlab::cli::run_command_line(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "vmlab: internal error: %s\n", error.what());
    return vmlab::exit_status::kVmmError;
  }
}
