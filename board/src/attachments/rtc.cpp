// The MC146818 real-time clock at 0x70-0x71, set from the host's wall clock
// (UTC) when the board is built and running on the board's monotonic clock.
#include <chrono>

#include "../attachment.hpp"
#include "vmlab/devices/rtc_mc146818.hpp"

namespace vmlab::board {
namespace {

// No IRQ in its device-table entry: the model raises none (pc::kRtcIrq stays
// reserved for it).
class RtcAttachment final : public PortRangeAttachment<devices::Mc146818Rtc> {
 public:
  using PortRangeAttachment::PortRangeAttachment;

  void add_statistics(Statistics& statistics) const override {
    statistics.group("rtc").add("register_accesses", model().register_accesses());
  }

 private:
  std::unique_ptr<devices::Mc146818Rtc> build(const AttachmentContext& context) override {
    const auto wall_clock = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    return std::make_unique<devices::Mc146818Rtc>(context.clock, wall_clock.count());
  }
};

}  // namespace

std::unique_ptr<DeviceAttachment> make_rtc_attachment() {
  return std::make_unique<RtcAttachment>(VMLAB_DEVICE_RTC_MC146818, VMLAB_NO_IRQ, pc::kRtcPorts);
}

}  // namespace vmlab::board
