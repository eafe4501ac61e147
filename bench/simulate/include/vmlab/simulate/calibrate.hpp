// `vmlab calibrate`: this machine's costs per class of event, by technique,
// measured with the benchmark workloads, as a profile (kind calibrated); and
// the check that the profile predicts other runs: `vmlab compare`'s
// workloads, recorded apart from the calibration runs, replayed under it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vmlab/result.hpp"
#include "vmlab/simulate/profile.hpp"
#include "vmlab/simulate/simulate.hpp"

namespace vmlab::simulate {

// One run's counts by event class and the time they are to explain.
struct CalibrationRun {
  std::string label;                     // "full pio:200"
  std::map<std::string, double> counts;  // event class -> events (and "run" -> 1)
  double target_ns = 0;                  // the run's VMM and monitor time
  double guest_ns = 0;                   // its time at the guest's levels (halted aside)
  double vmm_ns = 0;                     // of target_ns, the VMM's
  double monitor_ns = 0;                 // and the monitor's
};

// Non-negative least squares, each run weighed by its relative error: the
// costs (ns per event, by class, and "run" once per run) that best explain
// the runs' targets, none below 0. A class no run has 50 events of (what
// boot alone does) gets no cost: it is part of "run".
std::map<std::string, double> fit_costs(const std::vector<CalibrationRun>& runs);

// A run's counts as calibration and prediction see them.
CalibrationRun calibration_run(const Trace& trace, std::string label);

struct CalibrateOptions {
  std::vector<std::string> techniques;  // empty: hvm, full, bt, para
  std::function<void(std::size_t, std::size_t, const std::string&)> progress;
};

// Runs each technique's calibration workloads at two sizes with a trace and
// fits the costs; the profile names this machine's backend and CPU.
Result<Profile> calibrate(const CalibrateOptions& options);

// The prediction of one run against its measured time.
struct ValidationRow {
  std::string technique;
  std::string workload;  // "syscalls:5000"
  double measured_ns = 0;
  double predicted_ns = 0;
  // The part the profile predicts (VMM and monitor), measured and predicted:
  // the rest (guest and halted time) is carried over.
  double measured_transitions_ns = 0;
  double predicted_transitions_ns = 0;
  std::string failure;   // the run did not complete
  double error() const;  // predicted / measured - 1
};

// `vmlab compare`'s default workloads under each technique, recorded and
// replayed under `profile`.
Result<std::vector<ValidationRow>> validate(const Profile& profile,
                                            const CalibrateOptions& options);
void print_validation(const std::vector<ValidationRow>& rows, const std::string& platform_line,
                      std::ostream& out);

}  // namespace vmlab::simulate
