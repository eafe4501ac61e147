// The MC146818 real-time clock at 0x70-0x71, set from the host's wall clock
// (UTC) when the board is built and running on the board's monotonic clock.
#include <chrono>

#include "../attachment.hpp"
#include "vmlab/devices/rtc_mc146818.hpp"

namespace vmlab::board {
namespace {

class RtcAttachment final : public DeviceAttachment {
 public:
  Status attach(const AttachmentContext& context) override {
    const auto wall_clock = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    m_rtc = std::make_unique<devices::Mc146818Rtc>(context.clock, wall_clock.count());
    return add_ports(context, pc::kRtcPorts, *m_rtc);
  }

  // No IRQ: the model raises none (pc::kRtcIrq stays reserved for it).
  void describe(std::vector<vmlab_device>& table) const override {
    table.push_back(port_entry(VMLAB_DEVICE_RTC_MC146818, VMLAB_NO_IRQ, pc::kRtcPorts));
  }

  void add_statistics(Statistics& statistics) const override {
    statistics.group("rtc").add("register_accesses", m_rtc->register_accesses());
  }

 private:
  std::unique_ptr<devices::Mc146818Rtc> m_rtc;
};

}  // namespace

std::unique_ptr<DeviceAttachment> make_rtc_attachment() {
  return std::make_unique<RtcAttachment>();
}

}  // namespace vmlab::board
