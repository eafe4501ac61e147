// What went wrong in the CLI's own code (STYLE.md 6: one error type per
// module): the command line, the options' values, the files a command reads
// or writes, and the reference machine. An error the CLI passes on from a
// lower module (a disk image, an ELF, KVM) keeps that module's kind.
#pragma once

#include <string>
#include <string_view>

#include "vmlab/result.hpp"

namespace vmlab {

enum class CliError {
  // The command line is malformed: an unknown command, action or option, an
  // operand with no place, a missing argument or value.
  kUsage = 1,
  // A value outside its grammar or range: a size, count, timeout, choice,
  // workload name or list, the guest command line.
  kInvalidValue,
  // Options that do not go together, one that needs another (--umip without
  // --cpu full, a disk workload without --disk), or two that name one file
  // (--trace onto the run's --disk).
  kConflictingOptions,
  // An output's target must not be replaced: write-protected, in use by
  // another vmlab, or data vmlab did not write (a disk image, an ELF).
  kOutputProtected,
  // An output path that is or names no regular file: a directory, FIFO,
  // device or socket, a symbolic link to nothing, an empty name.
  kOutputNotAFile,
  // An output could not be created, checked or written (a missing directory,
  // no permission, a full disk); system_errno says why where a call failed.
  kOutputUnwritable,
  // --guest could not be opened or read; system_errno says why.
  kGuestUnreadable,
  // --guest is a directory, FIFO, device or socket.
  kGuestNotAFile,
  // --guest is larger than kMaximumGuestFileSize.
  kGuestTooLarge,
  // A run the command depends on ended without its workload's result.
  kWorkloadFailed,
  // QEMU, the reference machine, is not installed or cannot be started.
  kReferenceUnavailable,
  // QEMU started but failed before the guest said anything.
  kReferenceFailed,
  // QEMU ran past its timeout.
  kTimeout,
};

constexpr const char* error_domain(CliError) {
  return "cli";
}

// `error` with what it is about in front, "context: message" ("--mem: guest
// memory of 4G is ..."), its kind and errno kept: how the CLI passes on an
// error of a lower module or of one of its own parsers.
inline Error with_context(std::string_view context, const Error& error) {
  return Error{error.kind, std::string(context) + ": " + error.message, error.system_errno};
}

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::CliError);
