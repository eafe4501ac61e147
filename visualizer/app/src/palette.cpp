#include "vmlab/viz/app/palette.hpp"

namespace vmlab::viz::palette {

namespace {

constexpr QRgb rgb(unsigned value) {
  return 0xff000000u | value;
}

}  // namespace

QColor lane_band(TimelineLane lane) {
  switch (lane) {
    case TimelineLane::Vmm:
      return QColor(rgb(0xfbe3de));
    case TimelineLane::Monitor:
      return QColor(rgb(0xfcefd2));
    case TimelineLane::GuestKernel:
      return QColor(rgb(0xdfeaf7));
    case TimelineLane::GuestUser:
      return QColor(rgb(0xe1f1dc));
    case TimelineLane::GuestUnknown:
      return QColor(rgb(0xe9e9e9));
    case TimelineLane::Halted:
      return QColor(rgb(0xe6e4f0));
    case TimelineLane::Count:
      break;
  }
  return QColor(rgb(0xffffff));
}

QColor span(TimelineLane lane, SpanLabel label) {
  if (!label.is_guest_running()) return reason(label.kind(), label.reason());
  switch (lane) {
    case TimelineLane::GuestKernel:
      return QColor(rgb(0x3f7fc8));
    case TimelineLane::GuestUser:
      return QColor(rgb(0x4a9e48));
    case TimelineLane::Vmm:
    case TimelineLane::Monitor:
    case TimelineLane::GuestUnknown:
    case TimelineLane::Halted:
    case TimelineLane::Count:
      break;
  }
  return QColor(rgb(0x8c8c8c));
}

QColor reason(EventKind kind, EventReason reason) {
  // The vCPU asleep in hlt, whatever the recorder called the reason.
  if (kind == EventKind::GuestHalt) return QColor(rgb(0x6b7a8f));
  switch (reason) {
    case EventReason::IoIn:
      return QColor(rgb(0xf0a020));
    case EventReason::IoOut:
      return QColor(rgb(0xd9432f));
    case EventReason::MmioRead:
      return QColor(rgb(0xa35fc4));
    case EventReason::MmioWrite:
      return QColor(rgb(0x7b3fa0));
    case EventReason::Halt:
      return QColor(rgb(0x7c8a8c));
    case EventReason::Interrupted:
      return QColor(rgb(0x17a589));
    case EventReason::InterruptWindowOpen:
      return QColor(rgb(0x138d75));
    case EventReason::ExternalInterrupt:
      return QColor(rgb(0xe67e22));
    case EventReason::Shutdown:
    case EventReason::FailEntry:
    case EventReason::InternalError:
    case EventReason::SystemEvent:
      return QColor(rgb(0x2c3e50));
    case EventReason::Debug:
    case EventReason::Unknown:
      return QColor(rgb(0x95a5a6));
    case EventReason::PrivilegedInstruction:
      return QColor(rgb(0xe0701a));
    case EventReason::ShadowFill:
      return QColor(rgb(0xa0522d));
    case EventReason::GuestPageFault:
      return QColor(rgb(0x7a4419));
    case EventReason::PageTableWrite:
      return QColor(rgb(0xb8860b));
    case EventReason::SystemCall:
      return QColor(rgb(0x7d3c98));
    case EventReason::ReflectedException:
      return QColor(rgb(0xc2185b));
    case EventReason::CallOut:
      return QColor(rgb(0x00838f));
    case EventReason::TranslatedCodeWrite:
      return QColor(rgb(0xad1457));
    case EventReason::BlockTranslated:
      return QColor(rgb(0x827717));
    case EventReason::BranchChained:
      return QColor(rgb(0xafb42b));
    case EventReason::IndirectMiss:
      return QColor(rgb(0xf57f17));
    case EventReason::CodeInvalidated:
      return QColor(rgb(0xbf360c));
    case EventReason::HypercallMmuUpdate:
      return QColor(rgb(0xc2187a));
    case EventReason::HypercallUpdateVaMapping:
      return QColor(rgb(0xe04e9c));
    case EventReason::HypercallNewBaseptr:
      return QColor(rgb(0x9c1f6e));
    case EventReason::HypercallIret:
      return QColor(rgb(0xd81b60));
    case EventReason::HypercallConsoleIo:
      return QColor(rgb(0xf06292));
    case EventReason::HypercallMulticall:
      return QColor(rgb(0x880e4f));
    case EventReason::HypercallPortIo:
      return QColor(rgb(0xec407a));
    case EventReason::HypercallFlushTlb:
      return QColor(rgb(0xba68c8));
    case EventReason::HypercallSchedOp:
      return QColor(rgb(0x8e24aa));
    case EventReason::HypercallStackSwitch:
      return QColor(rgb(0xab47bc));
    case EventReason::HypercallSetTrapTable:
    case EventReason::HypercallSetGdt:
    case EventReason::HypercallRegisterSharedInfo:
    case EventReason::HypercallSetCallbacks:
    case EventReason::HypercallUnknown:
      return QColor(rgb(0x6a1b9a));
    case EventReason::IommuNotMapped:
    case EventReason::IommuReadOnly:
    case EventReason::IommuWriteOnly:
      return QColor(rgb(0xb71c1c));
    case EventReason::Count:
      break;
  }
  return QColor(rgb(0x95a5a6));
}

QColor background() {
  return QColor(rgb(0xffffff));
}

QColor ruler_text() {
  return QColor(rgb(0x1f1f1f));
}

QColor grid() {
  return QColor(rgb(0xc8c8c8));
}

QColor connector() {
  return QColor(rgb(0x202020));
}

QColor highlight() {
  return QColor(rgb(0xff1493));
}

QColor selection() {
  return QColor(40, 110, 220, 60);
}

QColor count_bars() {
  return QColor(rgb(0x3f7fc8));
}

QColor time_bars() {
  return QColor(rgb(0xd9822b));
}

std::string_view technique_family(std::string_view cpu) {
  // A simulation's rows (vmlab simulate): the measured run, then platforms.
  constexpr std::string_view kMeasured = "measured ";
  if (cpu.starts_with(kMeasured)) return cpu.substr(kMeasured.size());
  if (cpu.starts_with("vtx-") || cpu.starts_with("amdv-")) return "hvm";
  if (cpu.starts_with("vmware-bt")) return "bt";
  return cpu;
}

QColor technique(std::string_view cpu, int variant) {
  cpu = technique_family(cpu);
  QColor base = cpu == "hvm"    ? QColor(rgb(0x56667a))
                : cpu == "full" ? QColor(rgb(0xe08a1e))
                : cpu == "bt"   ? QColor(rgb(0x1f9a8a))
                : cpu == "para" ? QColor(rgb(0xb0428a))
                                : QColor(rgb(0x8c8c8c));
  // Shades alternate darker and lighter, so neighbours in a group differ.
  if (variant <= 0) return base;
  const int step = (variant + 1) / 2;
  return variant % 2 == 1 ? base.darker(100 + 40 * step) : base.lighter(100 + 30 * step);
}

QColor level(TimelineLane lane) {
  switch (lane) {
    case TimelineLane::Vmm:
      return QColor(rgb(0xd0493a));
    case TimelineLane::Monitor:
      return QColor(rgb(0xe8a33a));
    case TimelineLane::GuestKernel:
    case TimelineLane::GuestUser:
      return span(lane, SpanLabel::guest_running());
    case TimelineLane::GuestUnknown:
      return QColor(rgb(0x9a9a9a));
    case TimelineLane::Halted:
      return QColor(rgb(0x6b7a8f));
    case TimelineLane::Count:
      break;
  }
  return QColor(rgb(0x8c8c8c));
}

QColor failed_slot() {
  return QColor(rgb(0xf6d5d2));
}

QColor failed_text() {
  return QColor(rgb(0xa3231a));
}

QColor missing_slot() {
  return QColor(rgb(0xe6e6e6));
}

QColor text_on(const QColor& fill) {
  // Relative luminance, roughly (ITU-R BT.601 weights).
  const double luminance = 0.299 * fill.redF() + 0.587 * fill.greenF() + 0.114 * fill.blueF();
  return luminance > 0.55 ? QColor(rgb(0x111111)) : QColor(rgb(0xffffff));
}

}  // namespace vmlab::viz::palette
