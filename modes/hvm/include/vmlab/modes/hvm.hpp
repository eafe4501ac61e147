// Hardware-assisted virtualization: the unmodified guest kernel runs at CPL0
// and KVM (VT-x, AMD-V, or here a software backend) is the hardware assist;
// the VMM handles only the exits KVM passes up.
#pragma once

#include "vmlab/cpu_mode.hpp"

namespace vmlab::modes {

class HvmMode final : public CpuMode {
 public:
  // census: single-step the whole run through KVM_SET_GUEST_DEBUG and count
  // the steps by CPL (InstructionCensus).
  explicit HvmMode(bool census = false) : m_census(census) {}
  std::string_view name() const override { return "hvm"; }
  Status prepare(ModeContext& context, const LoadedImage& image) override;
  Result<Injection> deliver_interrupts(ModeContext& context) override;
  std::optional<InstructionCensus> census() const override;
  ExitDisposition handle_exit(ModeContext& context, const VcpuExit& exit) override;

 private:
  bool m_census = false;
  InstructionCensus m_counts;
};

}  // namespace vmlab::modes
