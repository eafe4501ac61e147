// Hardware-assisted virtualization: the unmodified guest kernel runs at CPL0
// and KVM (VT-x, AMD-V, or here a software backend) is the hardware assist;
// the VMM handles only the exits KVM passes up.
#pragma once

#include "vmlab/cpu_mode.hpp"

namespace vmlab::modes {

class HvmMode final : public CpuMode {
 public:
  std::string_view name() const override { return "hvm"; }
  Status prepare(ModeContext& context, const LoadedImage& image) override;
  Result<Injection> deliver_interrupts(ModeContext& context) override;
};

}  // namespace vmlab::modes
