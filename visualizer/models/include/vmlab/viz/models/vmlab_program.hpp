// The `vmlab` program vmlab-viz drives for live runs: where it is, and the
// values its options take (`vmlab info --choices`), so the run dialog offers
// exactly what the binary it will start accepts.
#pragma once

#include <QString>
#include <QStringList>
#include <cstdint>
#include <utility>
#include <vector>

#include "vmlab/result.hpp"

namespace vmlab::viz {

struct ProgramChoice {
  QString value;    // "full"
  QString meaning;  // the option's help line for it
};

struct WorkloadChoice {
  QString name;
  std::uint64_t default_count = 0;
  QString description;
};

struct RunChoices {
  std::vector<ProgramChoice> cpus;
  std::vector<ProgramChoice> disk_models;
  std::vector<ProgramChoice> irqchips;
  std::vector<WorkloadChoice> workloads;
  // `vmlab compare`'s own default set, each at the N it uses (sized for a
  // comparison of every mode, often more than run's default).
  std::vector<std::pair<QString, std::uint64_t>> compare_workloads;
};

enum class ProgramError {
  kNotFound = 1,  // no vmlab binary where vmlab-viz looks
  kFailed,        // it did not start, or did not answer in time, or failed
  kMalformed,     // its answer is not `vmlab info --choices`' format
};
constexpr const char* error_domain(ProgramError) {
  return "vmlab program";
}
using vmlab::make_error_code;

// The vmlab binary: $VMLAB_CLI if set; else beside vmlab-viz (an
// installation's bin/); else the build tree's cli/vmlab next to
// visualizer/app/; else `vmlab` on PATH. The error says where it looked.
Result<QString> find_vmlab_program();

// Parses `vmlab info --choices`' output.
Result<RunChoices> parse_run_choices(const QString& text);
// Runs `program info --choices` (waiting at most a few seconds) and parses it.
Result<RunChoices> query_run_choices(const QString& program);

}  // namespace vmlab::viz

VMLAB_ERROR_KINDS(vmlab::viz::ProgramError);
