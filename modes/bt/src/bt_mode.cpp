#include "vmlab/bt/bt_mode.hpp"

#include <algorithm>
#include <span>
#include <utility>
#include <variant>

#include "vmlab/format.hpp"
#include "vmlab/full/shadow_pager.hpp"
#include "vmlab/memory_slots.hpp"
#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/vcpu_state.hpp"

namespace vmlab::bt {

using monitor::AccessKind;
using monitor::AccessPrivilege;
using monitor::Event;
using monitor::EventSource;
using monitor::GuestRegisters;

namespace {

full::FullModeOptions monitor_options(const BtModeOptions& options) {
  full::FullModeOptions monitor;
  monitor.umip = options.umip;
  monitor.syscall_arrives_as_page_fault = options.syscall_arrives_as_page_fault;
  monitor.census = options.census;
  return monitor;
}

// int3 at CPL3 through the monitor's DPL0 gate raises #GP with the IDT bit
// and the vector in the error code (Intel SDM vol. 3A, 6.13), RIP at the int3.
constexpr std::uint32_t kBreakpointGateErrorCode = (kVectorBreakpoint << 3) | 2;

}  // namespace

// Guest-kernel code as the virtual CPU would fetch it at CPL0: through the
// guest's own tables. Remembers the frames it read from (to write-protect
// them) and, where it had to stop, the exception the fetch raises.
class BtMode::Reader final : public CodeReader {
 public:
  explicit Reader(monitor::PageWalker& walker, const monitor::VirtualCpu& cpu)
      : m_walker(walker), m_cpu(cpu) {}

  Result<CodeBytes> read(GuestVirtAddr address, std::size_t length) override {
    CodeBytes code;
    GuestVirtAddr at = address;
    while (code.bytes.size() < length) {
      if (!monitor::is_canonical(at, m_cpu)) {
        m_stop = Event{kVectorGeneralProtection, 0u};
        break;
      }
      const monitor::PageWalk walk = m_walker.walk(at);
      if (auto fault = m_walker.check(walk, AccessKind::Fetch, AccessPrivilege::Supervisor)) {
        m_stop = Event{kVectorPageFault, fault->error_code, EventSource::Exception, fault->address};
        break;
      }
      if (!m_walker.is_guest_ram(walk.frame())) {
        return Error{TranslationError::kCodeNotMapped,
                     "the guest kernel executes from device memory at " + hex(at.value()) +
                         ", which bt does not translate"};
      }
      const std::uint64_t in_page = kPageSize - (at.value() & (kPageSize - 1));
      const std::size_t count = std::min<std::uint64_t>(in_page, length - code.bytes.size());
      const std::size_t offset = code.bytes.size();
      code.bytes.resize(offset + count);
      if (auto fault = m_walker.fetch(at, std::span(code.bytes).subspan(offset, count),
                                      AccessPrivilege::Supervisor)) {
        code.bytes.resize(offset);
        m_stop = Event{kVectorPageFault, fault->error_code, EventSource::Exception, fault->address};
        break;
      }
      const GuestVirtAddr page(at.value() & ~(kPageSize - 1));
      code.pages.push_back({page, walk.frame()});
      m_frames.push_back(walk.frame());
      at = page + kPageSize;
    }
    return code;
  }

  // The exception the guest takes where reading stopped short.
  std::optional<Event> take_stop() { return std::exchange(m_stop, std::nullopt); }
  std::vector<GuestPhysAddr> take_frames() { return std::exchange(m_frames, {}); }

 private:
  monitor::PageWalker& m_walker;
  const monitor::VirtualCpu& m_cpu;
  std::optional<Event> m_stop;
  std::vector<GuestPhysAddr> m_frames;
};

BtMode::BtMode(BtModeOptions options) : FullMode(monitor_options(options)), m_options(options) {}
BtMode::~BtMode() = default;

std::optional<InstructionCensus> BtMode::census() const {
  auto counts = FullMode::census();
  if (counts) counts->translated_steps = std::exchange(counts->kernel_steps, 0);
  return counts;
}

const Statistics* BtMode::statistics() const {
  return m_cache ? &m_cache->statistics() : nullptr;
}

std::string BtMode::listing() const {
  return m_cache ? m_cache->listing() : std::string();
}

Status BtMode::configure_shadow(ModeContext& context, full::ShadowPagerConfig& config) {
  const CacheLayout& layout = m_options.layout;
  auto region = GuestMemory::create(layout.size);
  if (!region) return region.error();
  m_region.emplace(std::move(*region));
  if (auto status = context.vm.set_user_memory_region(slot_number(MemorySlot::TranslationCache),
                                                      kTranslationCachePhysicalBase, layout.size,
                                                      m_region->host_base());
      !status) {
    return status;
  }
  auto cache = TranslationCache::create(layout, std::span(m_region->host_base(), layout.size));
  if (!cache) return cache.error();
  m_cache.emplace(std::move(*cache));
  config.translation_cache = full::ShadowPagerConfig::TranslationCache{
      layout.base,
      {GuestPhysAddr(kTranslationCachePhysicalBase), layout.size},
      layout.scratch_offset() + kPageSize,  // the interrupt-flag and scratch pages
      layout.code_offset()};
  return {};
}

Status BtMode::start_technique(ModeContext& context) {
  m_context = &context;
  m_reader = std::make_unique<Reader>(shadow().walker(), cpu());
  shadow().set_code_write_observer([this](GuestPhysAddr frame) { code_frame_written(frame); });
  m_cache->set_virtual_interrupt_flag(cpu().interrupt_flag);
  return {};
}

void BtMode::synchronize_virtual_cpu() {
  if (!m_cache) return;
  if (cpu().cpl != 0) {
    m_alignment_check_in_registers = true;  // user code runs with its own real flags
    return;
  }
  // cli, sti and popf in the TC store to the virtual IF without a trap; it
  // is the guest's at every TC instruction (a popf's store is its commit).
  cpu().interrupt_flag = m_cache->virtual_interrupt_flag();
  // IOPL and AC, which popf stores on the scratch page, are read back once
  // the guest's RIP is known (absorb_virtual_flags): inside a popf they may
  // be ahead of the guest. The real AC in the registers is not the guest's.
  m_virtual_flags_pending = true;
  m_alignment_check_in_registers = false;
}

void BtMode::absorb_virtual_flags() {
  if (!m_cache || !std::exchange(m_virtual_flags_pending, false)) return;
  const GuestVirtAddr rip(registers().rip);
  const auto state = m_cache->contains(rip) ? m_cache->guest_state_at(rip) : std::nullopt;
  if (!state || !state->virtual_flags_ahead) {
    // The page is the guest's to write: only its own IOPL (2 bits) and AC
    // are taken from it.
    const std::uint64_t stored = m_cache->scratch().virtual_rflags;
    cpu().iopl = static_cast<std::uint8_t>((stored & kRflagsIoplMask) >> kRflagsIoplShift);
    m_virtual_alignment_check = (stored & kRflagsAlignmentCheck) != 0;
  }
  apply_virtual_alignment_check(registers());
}

void BtMode::apply_virtual_alignment_check(GuestRegisters& r) {
  r.rflags =
      (r.rflags & ~kRflagsAlignmentCheck) | (m_virtual_alignment_check ? kRflagsAlignmentCheck : 0);
  if (&r == &registers()) m_alignment_check_in_registers = true;
}

void BtMode::publish_virtual_cpu(GuestVirtAddr tc_address) {
  ScratchPage page = m_cache->scratch();
  const ScratchPage before = page;
  // Resuming inside a popf that has stored its IOPL and AC: they are the
  // guest's once it commits, and must stay.
  const auto state = m_cache->guest_state_at(tc_address);
  if (!state || !state->virtual_flags_ahead) {
    page.virtual_rflags = (std::uint64_t{cpu().iopl} << kRflagsIoplShift & kRflagsIoplMask) |
                          (m_virtual_alignment_check ? kRflagsAlignmentCheck : 0);
  }
  page.cs = cpu().cs;
  page.ss = cpu().ss;
  page.ds = cpu().ds.selector;
  page.es = cpu().es.selector;
  page.fs = cpu().fs.selector;
  page.gs = cpu().gs.selector;
  page.gdtr_base = cpu().gdtr.base;
  page.gdtr_limit = cpu().gdtr.limit;
  page.idtr_base = cpu().idtr.base;
  page.idtr_limit = cpu().idtr.limit;
  page.ldtr = cpu().ldtr;
  page.tr = cpu().tr;
  page.cr0 = cpu().cr0;
  if (!(page == before)) m_cache->write_scratch(page);
}

ExitDisposition BtMode::handle_exit(ModeContext& context, const VcpuExit& exit) {
  m_context = &context;
  return FullMode::handle_exit(context, exit);
}

Result<Injection> BtMode::deliver_interrupts(ModeContext& context) {
  m_context = &context;
  auto injected = FullMode::deliver_interrupts(context);
  if (!injected) return injected;
  // While an interrupt waits for the guest kernel's sti, the interrupt-flag
  // page is read-only: that sti's store faults into the monitor, which
  // delivers. Otherwise cli and sti cost nothing.
  bool pending = false;
  if (InterruptController* controller = context.board.interrupt_controller()) {
    std::lock_guard lock(context.board.device_lock());
    pending = controller->interrupt_pending();
  }
  const bool hold = pending && cpu().cpl == 0 && !cpu().interrupt_flag;
  if (hold == m_flag_page_writable) {
    m_flag_page_writable = !hold;
    if (auto status = shadow().set_translation_cache_page_writable(
            m_options.layout.interrupt_flag_offset(), m_flag_page_writable);
        !status) {
      return status.error();
    }
    if (auto status = flush_if_requested(context.vm); !status) return status.error();
  }
  return injected;
}

Result<GuestVirtAddr> BtMode::translate(GuestVirtAddr guest_rip) {
  const Statistics before = m_cache->statistics();
  auto address = m_cache->lookup_or_translate(guest_rip, *m_reader);
  if (m_cache->statistics().flushes != before.flushes) {
    // The code area filled up and everything went: so did the protections.
    for (std::uint64_t frame : m_code_frames)
      shadow().unprotect_code_frame(GuestPhysAddr(frame));
    m_code_frames.clear();
    m_resume.reset();
  }
  protect_code_read();
  // A fetch that stopped short while translating ahead is no fault of the
  // guest's: only a stop of the block asked for is (place_guest takes it).
  if (address) (void)m_reader->take_stop();
  if (address && m_cache->statistics().blocks_translated != before.blocks_translated) {
    record_translation(
        EventReason::BlockTranslated, guest_rip.value(), address->value(),
        static_cast<std::uint32_t>(m_cache->statistics().guest_instructions_translated -
                                   before.guest_instructions_translated));
  }
  return address;
}

void BtMode::protect_code_read() {
  for (GuestPhysAddr frame : m_reader->take_frames()) {
    if (m_code_frames.insert(frame.value()).second) shadow().protect_code_frame(frame);
  }
}

void BtMode::code_frame_written(GuestPhysAddr frame) {
  const std::size_t blocks = m_cache->invalidate_page(frame);
  m_code_frames.erase(frame.value());
  shadow().unprotect_code_frame(frame);
  m_resume.reset();  // the block a call-out would go back to may be gone
  record_translation(EventReason::CodeInvalidated, frame.value(), 0,
                     static_cast<std::uint32_t>(blocks));
}

void BtMode::address_space_changed() {
  // Blocks are keyed by guest-virtual address: another address space may map
  // other code there.
  ++m_cr3_flushes;
  m_cache->flush();
  for (std::uint64_t frame : m_code_frames)
    shadow().unprotect_code_frame(GuestPhysAddr(frame));
  m_code_frames.clear();
  m_resume.reset();
}

Status BtMode::place_guest(ModeContext&) {
  absorb_virtual_flags();
  if (cpu().cpl != 0) {
    m_resume.reset();
    return {};
  }
  // In virtual kernel mode the guest's AC lives on the scratch page and the
  // real one is clear: at CPL3 with the real CR0.AM set, a real AC would
  // raise #AC on misaligned accesses, which a CPL0 kernel never takes (Intel
  // SDM vol. 3A, 6.15, #AC: CPL 3 only).
  if (m_alignment_check_in_registers) {
    m_virtual_alignment_check = (registers().rflags & kRflagsAlignmentCheck) != 0;
  }
  registers().rflags &= ~kRflagsAlignmentCheck;
  m_alignment_check_in_registers = false;
  m_cache->set_virtual_interrupt_flag(cpu().interrupt_flag);
  auto placed = place_in_cache();
  if (placed && cpu().cpl == 0) publish_virtual_cpu(GuestVirtAddr(registers().rip));
  return placed;
}

Status BtMode::place_in_cache() {
  GuestRegisters& r = registers();
  if (m_cache->contains(GuestVirtAddr(r.rip))) return {};  // going on inside the TC
  if (auto point = std::exchange(m_resume, std::nullopt); point && point->guest_rip == r.rip) {
    r.rip = point->tc_address.value();
    return {};
  }
  // A guest RIP: its block. If the guest cannot fetch there, it takes the
  // fault the fetch raises, and its handler is placed the same way; a
  // handler that cannot be fetched either ends in a double fault, then a
  // triple fault (deliver_event's rules), which stops the guest.
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto address = translate(GuestVirtAddr(r.rip));
    if (address) {
      r.rip = address->value();
      return {};
    }
    if (address.error().kind != make_error_code(TranslationError::kCodeNotMapped)) {
      return address.error();
    }
    auto stop = m_reader->take_stop();
    if (!stop) return address.error();  // device memory: said in the message
    std::string failure;
    if (!reflect_exception(*stop, failure)) return Error{ModeError::kGuestTripleFault, failure};
    if (cpu().cpl != 0) return {};
  }
  return Error{ModeError::kGuestTripleFault,
               "the guest kernel's exception handlers cannot be fetched at " + hex(r.rip)};
}

Status BtMode::make_state_precise() {
  absorb_virtual_flags();
  GuestRegisters& r = registers();
  if (!m_cache || cpu().cpl != 0 || !m_cache->contains(GuestVirtAddr(r.rip))) return {};
  auto guest = m_cache->recover_guest_registers(GuestVirtAddr(r.rip), r, shadow().walker());
  if (!guest) return guest.error();
  r = *guest;
  apply_virtual_alignment_check(r);
  r.rflags = monitor::guest_visible_rflags(r, cpu());
  m_resume.reset();
  return {};
}

std::optional<ExitDisposition> BtMode::intercept_trap(ModeContext& context, std::uint8_t vector,
                                                      std::optional<std::uint32_t> error_code) {
  if (cpu().cpl != 0) return std::nullopt;
  absorb_virtual_flags();
  const GuestVirtAddr rip(registers().rip);
  if (vector == kVectorGeneralProtection && error_code == kBreakpointGateErrorCode &&
      m_cache->contains(rip)) {
    return take_exit(context, rip);
  }
  const GuestVirtAddr after_int3(rip.value() - 1);
  if (vector == kVectorBreakpoint && m_cache->contains(after_int3)) {
    return take_exit(context, after_int3);
  }
  if (vector == kVectorPageFault) {
    const GuestVirtAddr address(context.vcpu.run_state().s.regs.sregs.cr2);
    const GuestVirtAddr flag_page = m_options.layout.interrupt_flag_address();
    if (address >= flag_page && address < flag_page + kPageSize) {
      return interrupt_flag_write(context);
    }
  }
  return std::nullopt;
}

ExitDisposition BtMode::resume(ModeContext& context) {
  if (auto status = resume_guest(context); !status) {
    return ExitDisposition::stop(status.error().message);
  }
  return ExitDisposition::handled();
}

ExitDisposition BtMode::take_exit(ModeContext& context, GuestVirtAddr exit_address) {
  auto site = m_cache->take_exit(exit_address);
  if (!site) {
    return ExitDisposition::stop("the translation cache stopped at " + hex(exit_address.value()) +
                                 ", which is no exit of a live block");
  }
  GuestRegisters& r = registers();
  if (const auto* branch = std::get_if<BranchExit>(&*site)) {
    auto target = m_cache->chain(*branch, *m_reader);
    protect_code_read();
    if (target) {
      (void)m_reader->take_stop();  // of a block translated ahead
      record_translation(EventReason::BranchChained, branch->guest_target.value(), target->value(),
                         1);
      r.rip = target->value();
    } else if (target.error().kind == make_error_code(TranslationError::kCodeNotMapped)) {
      r.rip = branch->guest_target.value();  // place_guest reflects the fetch's fault
      (void)m_reader->take_stop();
    } else {
      return ExitDisposition::stop(target.error().message);
    }
    return resume(context);
  }
  if (std::holds_alternative<LookupMiss>(*site)) {
    auto guest = m_cache->recover_guest_registers(exit_address, r, shadow().walker());
    if (!guest) return ExitDisposition::stop(guest.error().message);
    r = *guest;
    apply_virtual_alignment_check(r);
    r.rflags = monitor::guest_visible_rflags(r, cpu());
    record_translation(EventReason::IndirectMiss, r.rip, 0, 1);
    return resume(context);  // place_guest finds or translates the target
  }
  const auto& site_call = std::get<CallOut>(*site);
  r.rip = site_call.guest_rip.value();
  return call_out(context, site_call);
}

ExitDisposition BtMode::call_out(ModeContext& context, const CallOut& site) {
  GuestRegisters& r = registers();
  // Where the block goes on after the instruction, if it does (a call-out
  // that transfers control ends its block).
  const GuestVirtAddr after = TranslationCache::resume_after(site);
  const auto next = m_cache->guest_state_at(after);
  if (site.length != 0 && next && next->rip_location == RipLocation::kAddress &&
      next->rip == site.guest_rip + site.length) {
    m_resume = ResumePoint{site.guest_rip.value() + site.length, after};
  }
  if (site.reason == CallOutReason::kCpuid) {
    const std::uint64_t start = context.elapsed_ns();
    answer_cpuid(context);
    r.rip += site.length;
    auto disposition = resume(context);
    record_trap(context, EventReason::CallOut, kVectorGeneralProtection, site.guest_rip.value(), 0,
                start, "cpuid");
    return disposition;
  }
  if (site.reason == CallOutReason::kSystemCall && site.mnemonic == "syscall") {
    r.rip += site.length;
    return handle_system_call(context);
  }
  if (site.reason == CallOutReason::kSoftwareInterrupt) return software_interrupt(context, site);
  if (site.reason == CallOutReason::kInvalidInstruction) {
    m_resume.reset();
    return handle_trap(context, kVectorInvalidOpcode, std::nullopt, EventReason::CallOut);
  }
  // Everything else is what `full` emulates after a #GP: in, out, mov to
  // and from control registers, hlt, iretq, pushf, popf, sgdt, ...
  return handle_trap(context, kVectorGeneralProtection, 0u, EventReason::CallOut);
}

// The guest's own int n, int3 or int1: what the CPU does at CPL0.
ExitDisposition BtMode::software_interrupt(ModeContext& context, const CallOut& site) {
  GuestRegisters& r = registers();
  const std::uint64_t start = context.elapsed_ns();
  std::uint8_t bytes[2] = {};
  if (shadow().walker().fetch(site.guest_rip, std::span(bytes, site.length >= 2 ? 2 : 1),
                              AccessPrivilege::Supervisor)) {
    return handle_trap(context, kVectorInvalidOpcode, std::nullopt, EventReason::CallOut);
  }
  Event event{kVectorBreakpoint, std::nullopt, EventSource::Software, {}, site.length};
  if (bytes[0] == 0xcd) event.vector = bytes[1];
  if (bytes[0] == 0xf1) {
    // int1 is a trap delivered like an exception (SDM vol. 2A INT1): the
    // frame holds the next RIP.
    event = Event{kVectorDebug, std::nullopt, EventSource::Exception, {}, 0};
    r.rip += site.length;
  }
  m_resume.reset();
  std::string failure;
  if (!reflect_exception(event, failure)) return ExitDisposition::stop(failure);
  auto disposition = resume(context);
  record_trap(context, EventReason::ReflectedException, event.vector, site.guest_rip.value(), 0,
              start, site.mnemonic);
  return disposition;
}

// cpuid at CPL0 is emulated by KVM from the leaves the VMM set (PLATFORM.md);
// the call-out gives the same answer, whatever the host would say at CPL3.
// A leaf the VMM did not set reads as zeros.
void BtMode::answer_cpuid(ModeContext& context) {
  GuestRegisters& r = registers();
  const auto function = static_cast<std::uint32_t>(r.rax);
  const auto index = static_cast<std::uint32_t>(r.rcx);
  std::uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  for (const kvm_cpuid_entry2& entry : context.vcpu.cpuid_entries()) {
    const bool indexed = (entry.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0;
    if (entry.function == function && (!indexed || entry.index == index)) {
      eax = entry.eax;
      ebx = entry.ebx;
      ecx = entry.ecx;
      edx = entry.edx;
      break;
    }
  }
  r.rax = eax;
  r.rbx = ebx;
  r.rcx = ecx;
  r.rdx = edx;
}

ExitDisposition BtMode::interrupt_flag_write(ModeContext& context) {
  const std::uint64_t start = context.elapsed_ns();
  GuestRegisters& r = registers();
  const auto store = m_cache->flag_store_at(GuestVirtAddr(r.rip));
  if (!store) {
    // A store of the guest's own to the page (it can name the address):
    // what an unmapped page in the monitor's slot gives it under `full`.
    const GuestVirtAddr address(context.vcpu.run_state().s.regs.sregs.cr2);
    if (auto status = make_state_precise(); !status) {
      return ExitDisposition::stop(status.error().message);
    }
    std::string failure;
    if (!reflect_exception(
            Event{kVectorPageFault, kPageFaultWrite, EventSource::Exception, address}, failure)) {
      return ExitDisposition::stop(failure);
    }
    return resume(context);
  }
  // cli and sti store a constant; popf the image's IF, which its sequence
  // put in al (the registers are the real ones at the store).
  const bool enabled = store->interrupts_enabled(r);
  cpu().interrupt_flag = enabled;
  m_cache->set_virtual_interrupt_flag(enabled);
  // sti's one-instruction shadow (SDM vol. 3A, 6.8.3): the monitor
  // single-steps the next TC instruction before delivering. A popf that
  // sets IF has none.
  if (enabled && store->opens_interrupt_shadow) begin_interrupt_shadow();
  r.rip = store->resume_address.value();
  // The store completed its guest instruction: a popf's IOPL and AC on the
  // scratch page are the guest's now.
  m_virtual_flags_pending = true;
  absorb_virtual_flags();
  auto disposition = resume(context);
  record_trap(context, EventReason::CallOut, kVectorPageFault, store->guest_rip.value(), 0, start,
              store->mnemonic);
  return disposition;
}

void BtMode::record_translation(EventReason reason, std::uint64_t guest_rip,
                                std::uint64_t tc_address, std::uint32_t count) {
  if (m_context == nullptr) return;
  const std::uint64_t now = m_context->elapsed_ns();
  monitor::record_monitor_event(
      *m_context,
      {EventKind::Translation, reason, guest_rip, tc_address, count, guest_rip, 0, 0, now, {}});
}

}  // namespace vmlab::bt
