// Binary translation (`--cpu bt`, DESIGN.md 1): trap-and-emulate's monitor
// (modes/full/) with the guest kernel never executing its own code. In the
// kernel's shadow view every guest page is no-execute; the kernel runs at
// CPL3 from the translation cache (TC, translation_cache.hpp), which the
// VMM fills block by block and maps into that view only. The sensitive
// instructions that fail silently at CPL3 (the x86 holes) are never
// executed: cli/sti are stores to the virtual IF, pushf/popf, mov from a
// segment register, push fs/gs and sgdt/sidt/sldt/str/smsw inline sequences
// on virtual values the mode keeps on the TC's scratch page, the rest (lar,
// lsl, verr, verw among them) call out to the monitor, which emulates them
// with `full`'s emulator. Guest user code runs directly, as under `full`.
//
// What the mode adds to `full` (FullMode's hooks):
//   - configure_shadow: the TC's memory (a KVM slot of its own) and its
//     mapping in the kernel view;
//   - place_guest: every resume in virtual kernel mode at a guest RIP goes to
//     that RIP's block (translated now if needed); a guest RIP the guest
//     cannot fetch from gets the #PF (or #GP) the fetch would raise;
//   - intercept_trap: the TC's int3 exits (chaining, lookup misses,
//     call-outs) and the write-protected interrupt-flag page;
//   - make_state_precise: a fault or interrupt inside the TC is delivered at
//     the guest instruction it belongs to, with the guest's registers;
//   - the scratch page: before the kernel runs from the TC, its virtual
//     selectors, GDTR/IDTR, LDTR/TR, CR0, IOPL and AC; after an exit, the
//     IOPL and AC popf stored there. The guest's AC is never in the real
//     RFLAGS in virtual kernel mode: at CPL3 with the real CR0.AM set it
//     would raise #AC on misaligned accesses, which a CPL0 kernel never
//     takes (and AC does nothing else at CPL0 but relax SMAP, which the
//     monitor does not enforce on the deprivileged kernel);
//   - coherence: frames holding translated code are write-protected; a
//     write to one drops its blocks; a CR3 write flushes the TC (blocks are
//     keyed by guest-virtual address).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include "vmlab/bt/translation_cache.hpp"
#include "vmlab/full/full_mode.hpp"
#include "vmlab/guest_memory.hpp"

namespace vmlab::bt {

// Where the TC's memory sits in guest-physical space: just above the monitor
// region, outside guest RAM (board/include/vmlab/board_layout.hpp lists it).
constexpr std::uint64_t kTranslationCachePhysicalBase = 0xd0800000;

struct BtModeOptions {
  // As FullModeOptions: CR4.UMIP for the guest. The kernel's sgdt and the
  // rest are translated whatever it is; UMIP changes what guest user code sees.
  bool umip = false;
  // As FullModeOptions: kvm_pvm runs a user SYSCALL at CPL3.
  bool syscall_arrives_as_page_fault = false;
  // 16 blocks ahead: on kvm_pvm a branch exit costs ~90 us, translating a
  // block a few; see CacheLayout::translate_ahead.
  CacheLayout layout{.translate_ahead = 16};
  bool census = false;  // as FullModeOptions
};

class BtMode final : public full::FullMode {
 public:
  explicit BtMode(BtModeOptions options = {});
  ~BtMode() override;

  std::string_view name() const override { return "bt"; }
  Result<Injection> deliver_interrupts(ModeContext& context) override;
  ExitDisposition handle_exit(ModeContext& context, const VcpuExit& exit) override;

  // For reports and `--translations`: nullptr / empty before prepare().
  const Statistics* statistics() const;
  std::string listing() const;
  std::uint64_t cache_flushes_on_cr3_write() const { return m_cr3_flushes; }
  // full's census, its kernel steps as translated_steps: in virtual kernel
  // mode every guest page is no-execute, and only the TC runs.
  std::optional<InstructionCensus> census() const override;

 protected:
  Status configure_shadow(ModeContext& context, full::ShadowPagerConfig& config) override;
  Status start_technique(ModeContext& context) override;
  void synchronize_virtual_cpu() override;
  Status place_guest(ModeContext& context) override;
  std::optional<ExitDisposition> intercept_trap(ModeContext& context, std::uint8_t vector,
                                                std::optional<std::uint32_t> error_code) override;
  Status make_state_precise() override;
  void address_space_changed() override;

 private:
  class Reader;
  // Where a call-out's guest instruction ends, and where its block goes on.
  struct ResumePoint {
    std::uint64_t guest_rip = 0;
    GuestVirtAddr tc_address;
  };

  Status place_in_cache();
  // The TC keeps some of the virtual CPU on its two pages (the flag byte,
  // ScratchPage): publish_virtual_cpu writes what the guest may read there
  // before it runs from tc_address; absorb_virtual_flags brings back, once
  // per exit from virtual kernel mode, what popf may have changed (IOPL, AC).
  void publish_virtual_cpu(GuestVirtAddr tc_address);
  void absorb_virtual_flags();
  void apply_virtual_alignment_check(full::GuestRegisters& r);
  Result<GuestVirtAddr> translate(GuestVirtAddr guest_rip);
  void protect_code_read();
  void code_frame_written(GuestPhysAddr frame);
  ExitDisposition take_exit(ModeContext& context, GuestVirtAddr exit_address);
  ExitDisposition call_out(ModeContext& context, const CallOut& site);
  ExitDisposition software_interrupt(ModeContext& context, const CallOut& site);
  ExitDisposition interrupt_flag_write(ModeContext& context);
  void answer_cpuid(ModeContext& context);
  ExitDisposition resume(ModeContext& context);
  void record_translation(EventReason reason, std::uint64_t guest_rip, std::uint64_t tc_address,
                          std::uint32_t count);

  BtModeOptions m_options;
  std::optional<GuestMemory> m_region;  // the TC's memory
  std::optional<TranslationCache> m_cache;
  std::unique_ptr<Reader> m_reader;
  std::unordered_set<std::uint64_t> m_code_frames;  // frames the shadow write-protects for us
  std::optional<ResumePoint> m_resume;
  ModeContext* m_context = nullptr;  // of the call in progress, for events
  bool m_flag_page_writable = true;
  // The guest's RFLAGS.AC in virtual kernel mode (ScratchPage::virtual_rflags
  // for the TC; the real AC is clear there, place_guest).
  bool m_virtual_alignment_check = false;
  // Whether registers().rflags.AC is the guest's: not right after an exit
  // from virtual kernel mode (the real one) until absorb_virtual_flags, nor
  // after place_guest took it out.
  bool m_alignment_check_in_registers = true;
  bool m_virtual_flags_pending = false;  // an exit from virtual kernel mode not absorbed yet
  std::uint64_t m_cr3_flushes = 0;
};

}  // namespace vmlab::bt
