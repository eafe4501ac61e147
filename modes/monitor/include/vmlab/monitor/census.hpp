// The instruction census of the monitor-based techniques (full, bt, para;
// InstructionCensus, cpu_mode.hpp): with the real TF set, every instruction
// that retires raises a single-step #DB into the monitor's stub, which hands
// the step to count() and resumes the guest.
#pragma once

#include <cstdint>
#include <optional>

#include "vmlab/cpu_mode.hpp"

namespace vmlab::monitor {

class InstructionCounter {
 public:
  // A step in virtual kernel mode (cpl 0) or user mode, the guest now at
  // `rip`. A repeated string instruction raises the trap after each
  // iteration, RIP still at the instruction until the last (Intel SDM vol.
  // 3A, 18.3.1.4): a step that leaves RIP where the previous one did is an
  // iteration of the same instruction, not another instruction. (KVM's
  // emulator, which hvm's census steps on kvm_pvm, steps a whole `rep` once.)
  void count(std::uint8_t cpl, std::uint64_t rip) {
    if (m_last_rip == rip) return;
    m_last_rip = rip;
    ++(cpl == 0 ? m_counts.kernel_steps : m_counts.user_steps);
  }
  const InstructionCensus& counts() const { return m_counts; }

 private:
  InstructionCensus m_counts;
  std::optional<std::uint64_t> m_last_rip;
};

}  // namespace vmlab::monitor
