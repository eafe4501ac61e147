#include "vmlab/monitor/monitor_region.hpp"

#include <array>
#include <span>

#include "vmlab/little_endian.hpp"

namespace vmlab::monitor {

namespace {

// Segment descriptors (Intel SDM vol. 3A, 3.4.5, 5.2.1): flat, 64-bit code
// has L=1 and D=0.
constexpr std::uint64_t kCode64Dpl0 = 0x00af9a000000ffffULL;
constexpr std::uint64_t kDataDpl0 = 0x00cf92000000ffffULL;
constexpr std::uint64_t kDataDpl3 = 0x00cff2000000ffffULL;
constexpr std::uint64_t kCode64Dpl3 = 0x00affa000000ffffULL;
constexpr std::uint64_t kDescriptorPresent = 1ULL << 47;

constexpr std::uint64_t kUserDataIndex = 3;
constexpr std::uint64_t kUserCodeIndex = 4;

// A stub: `out %al, $kMonitorPort` (E6 ib), then `jmp .` (EB FE) in case the
// VMM ever resumed it, padded with int3. The CPU has already pushed SS, RSP,
// RFLAGS, CS, RIP (and an error code) on the monitor stack; the VMM reads
// them there, so the stub needs to save nothing.
constexpr std::array<std::uint8_t, kStubSize> kStub = {
    0xe6, static_cast<std::uint8_t>(kMonitorPort), 0xeb, 0xfe, 0xcc, 0xcc, 0xcc, 0xcc};
constexpr std::uint64_t kOutLength = 2;

// A 64-bit interrupt gate (SDM 6.14.1): DPL0, so software `int n` from CPL3
// raises #GP instead of entering the monitor; IST 1 for #DF, NMI and #MC.
std::array<std::uint64_t, 2> interrupt_gate(std::uint64_t handler, std::uint8_t ist) {
  const std::uint64_t low = (handler & 0xffff) | (std::uint64_t{kMonitorCodeSelector} << 16) |
                            (std::uint64_t{ist} << 32) | (0x8eULL << 40) |
                            ((handler >> 16 & 0xffff) << 48);
  return {low, handler >> 32};
}

}  // namespace

Status build_monitor_region(GuestMemoryAccess& memory) {
  // TSS descriptor (SDM 7.2.3): 16 bytes, type 9 (available 64-bit TSS).
  const std::uint64_t tss = monitor_virtual(kTssOffset).value();
  const std::uint64_t tss_limit = 0x67;
  const std::uint64_t tss_low =
      tss_limit | ((tss & 0xffffff) << 16) | (0x89ULL << 40) | ((tss >> 24 & 0xff) << 56);
  const std::array<std::uint64_t, 9> gdt = {0,         kCode64Dpl0, kDataDpl0,
                                            kDataDpl3, kCode64Dpl3, kCode64Dpl3,
                                            kDataDpl3, tss_low,     tss >> 32};
  if (auto status = memory.write_object(monitor_physical(kGdtOffset), gdt); !status) return status;

  std::array<std::uint64_t, 512> idt{};
  for (unsigned vector = 0; vector < 256; ++vector) {
    const std::uint8_t ist = (vector == 2 || vector == 8 || vector == 18) ? 1 : 0;
    const auto gate =
        interrupt_gate(monitor_virtual(kStubsOffset + vector * kStubSize).value(), ist);
    idt[std::size_t{vector} * 2] = gate[0];
    idt[std::size_t{vector} * 2 + 1] = gate[1];
  }
  if (auto status = memory.write_object(monitor_physical(kIdtOffset), idt); !status) return status;

  // 64-bit TSS (SDM 7.7): RSP0 at +4, IST1 at +0x24, I/O map base at +0x66
  // pointing past the limit, so there is no I/O permission bitmap and port
  // access at CPL3 always faults.
  std::array<std::uint8_t, 0x68> tss_bytes{};
  auto put64 = [&](std::size_t offset, std::uint64_t value) {
    store_little_endian(std::span(tss_bytes).subspan(offset, 8), value);
  };
  put64(4, monitor_virtual(kStackTopOffset).value());
  put64(0x24, monitor_virtual(kFaultStackTopOffset).value());
  tss_bytes[0x66] = 0x68;
  if (auto status = memory.write_object(monitor_physical(kTssOffset), tss_bytes); !status) {
    return status;
  }

  for (unsigned vector = 0; vector <= 256; ++vector) {  // 256 = the SYSCALL stub
    const std::uint64_t offset =
        vector == 256 ? kSyscallStubOffset : kStubsOffset + vector * kStubSize;
    if (auto status = memory.write_object(monitor_physical(offset), kStub); !status) return status;
  }
  return set_user_segments_present(memory, true);
}

Status set_user_segments_present(GuestMemoryAccess& memory, bool present) {
  for (auto index : {kUserDataIndex, kUserCodeIndex}) {
    const GuestPhysAddr where = monitor_physical(kGdtOffset + index * 8);
    auto descriptor = memory.read_object<std::uint64_t>(where);
    if (!descriptor) return descriptor.error();
    const std::uint64_t updated =
        present ? (*descriptor | kDescriptorPresent) : (*descriptor & ~kDescriptorPresent);
    if (auto status = memory.write_object(where, updated); !status) return status;
  }
  return {};
}

std::optional<StubHit> stub_at(GuestVirtAddr rip_after_out) {
  const GuestVirtAddr stubs = monitor_virtual(kStubsOffset);
  if (rip_after_out == monitor_virtual(kSyscallStubOffset) + kOutLength) return StubHit{true, 0};
  if (rip_after_out < stubs + kOutLength) return std::nullopt;
  const std::uint64_t offset = (rip_after_out - stubs) - kOutLength;
  if (offset % kStubSize != 0 || offset / kStubSize >= 256) return std::nullopt;
  return StubHit{false, static_cast<std::uint8_t>(offset / kStubSize)};
}

}  // namespace vmlab::monitor
