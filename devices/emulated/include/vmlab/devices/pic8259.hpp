// Two cascaded 8259A programmable interrupt controllers, wired as on a PC/AT
// (Intel 8259A datasheet, order no. 231468).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include <vmlab/devices/register_view.hpp>
#include <vmlab/io_device.hpp>

namespace vmlab::devices {

// The master answers on ports 0x20-0x21 and the slave on 0xA0-0xA1; the
// slave's INT output drives the master's IR2. Each facet is registered on a
// 2-port range: offset 0 is the command port (A0 = 0), offset 1 the data port.
//
// Modelled: ICW1-ICW4 (edge or level triggered, single or cascade, ICW4
// optional, auto-EOI, special fully nested mode), OCW1 masking, every OCW2
// command including the rotations, OCW3 (IRR/ISR read select, poll, special
// mask mode), fully nested priority with rotation, spurious IRQ7/IRQ15, and
// edge detection. Not modelled: the 8080/8085 call sequence (ICW4 bit 0 = 0 is
// treated as 8086 mode, the only one an x86 uses), buffered mode, and the
// slave's ICW3 identity (the slave answers whenever the master cascades IR2).
//
// Power-on state: the 8259A has no reset pin and the datasheet defines no
// state before ICW1. Both chips start as ICW1 leaves them (IRR, ISR and IMR
// clear, IR7 lowest priority, IRR selected for reading, edge triggered),
// cascaded on IR2, with vector base 0. That matches KVM's in-kernel PIC (and
// QEMU's) at reset; there is no BIOS here to move the bases to 0x08/0x70, so
// a guest must initialize both chips before it enables interrupts, or timer
// ticks arrive as vector 0. initialized() tells the board whether it has.
//
// Using it from the board: feed device lines with set_irq(); whenever
// interrupt_pending() is true and the vCPU can take an interrupt, call
// acknowledge() exactly once, at the moment of injection, and inject the
// vector it returns (it may be a spurious vector if the request went away).
// The optional `interrupt_output` callback reports every change of the
// master's INT pin, so the board can kick a halted or running vCPU.
class Pic8259Pair {
 public:
  enum class Chip { Master, Slave };

  explicit Pic8259Pair(IrqLine interrupt_output = {});
  Pic8259Pair(const Pic8259Pair&) = delete;
  Pic8259Pair& operator=(const Pic8259Pair&) = delete;
  Pic8259Pair(Pic8259Pair&&) = delete;  // the facets point back at the pair
  Pic8259Pair& operator=(Pic8259Pair&&) = delete;

  IoDevice& master_ports() { return m_master_ports; }
  IoDevice& slave_ports() { return m_slave_ports; }

  // Input lines 0-15 (8-15 on the slave). Line 2 is the master's cascade
  // input, driven by the slave only, so set_irq(2, ...) is ignored: the AT
  // routes the ISA bus's IRQ2 pin to IRQ9. Lines above 15 are ignored.
  void set_irq(unsigned line, bool level);

  // The master's INT output: an unmasked request of higher priority than any
  // in service.
  bool interrupt_pending() const;

  // The INTA cycle (8259A datasheet, "Interrupt Sequence"): returns ICW2's
  // base plus the line and moves the request from IRR to ISR (or not, in
  // auto-EOI mode). With nothing to deliver it returns the spurious vector,
  // base + 7 of the chip that had nothing, and sets no ISR bit.
  std::uint8_t acknowledge();

  // Register inspection for tests, the monitor and the visualizer.
  std::uint8_t request_register(Chip chip) const { return controller(chip).request; }
  std::uint8_t in_service_register(Chip chip) const { return controller(chip).in_service; }
  std::uint8_t mask_register(Chip chip) const { return controller(chip).mask; }
  std::uint8_t vector_base(Chip chip) const { return controller(chip).vector_base; }
  bool initialized(Chip chip) const { return controller(chip).initialized; }

 private:
  enum class InitStep { Ready, ExpectIcw2, ExpectIcw3, ExpectIcw4 };

  struct Controller {
    std::uint8_t request = 0;      // IRR
    std::uint8_t in_service = 0;   // ISR
    std::uint8_t mask = 0;         // IMR
    std::uint8_t line_levels = 0;  // input levels, for edge detection
    std::uint8_t vector_base = 0;  // ICW2 bits 7-3
    std::uint8_t cascade = 0;      // ICW3: master's slave lines / slave's ID
    std::uint8_t lowest_priority = 7;
    InitStep init_step = InitStep::Ready;
    bool single = false;                // ICW1 SNGL
    bool icw4_needed = false;           // ICW1 IC4
    bool level_triggered = false;       // ICW1 LTIM
    bool auto_eoi = false;              // ICW4 AEOI
    bool special_fully_nested = false;  // ICW4 SFNM
    bool rotate_on_auto_eoi = false;    // OCW2 R=1, SL=0, EOI=0
    bool special_mask = false;          // OCW3 SMM
    bool read_in_service = false;       // OCW3 RIS
    bool poll = false;                  // OCW3 P, for the next read only
    bool initialized = false;
  };

  // The two chips' port views call these.
  friend class RegisterView<Pic8259Pair, Chip>;
  std::string_view view_name(Chip chip) const;
  void read_view(Chip chip, std::uint64_t offset, std::span<std::uint8_t> data);
  void write_view(Chip chip, std::uint64_t offset, std::span<const std::uint8_t> data);

  Controller& controller(Chip chip) { return chip == Chip::Master ? m_master : m_slave; }
  const Controller& controller(Chip chip) const {
    return chip == Chip::Master ? m_master : m_slave;
  }

  std::uint8_t read_port(Chip chip, unsigned port);
  void write_port(Chip chip, unsigned port, std::uint8_t value);
  void write_command(Controller& chip, std::uint8_t value);
  void write_data(Controller& chip, std::uint8_t value);
  // After ICW2 or ICW3: ICW4 comes next if ICW1 asked for one.
  static void expect_icw4_or_finish(Controller& chip);
  static void finish_initialization(Controller& chip);
  void operation_command_2(Controller& chip, std::uint8_t value);
  std::uint8_t poll(Controller& chip);

  static void set_line(Controller& chip, unsigned line, bool level);
  static int deliverable_line(const Controller& chip, bool is_master);
  static void start_service(Controller& chip, int line);
  bool cascades_through_slave(int master_line) const;
  void update();

  Controller m_master;
  Controller m_slave;
  RegisterView<Pic8259Pair, Chip> m_master_ports{*this, Chip::Master};
  RegisterView<Pic8259Pair, Chip> m_slave_ports{*this, Chip::Slave};
  IrqLine m_interrupt_output;
  bool m_output_level = false;
};

}  // namespace vmlab::devices
