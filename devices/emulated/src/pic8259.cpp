#include <vmlab/devices/pic8259.hpp>

#include <utility>

#include "byte_access.hpp"

namespace vmlab::devices {
namespace {

constexpr std::uint64_t kPortCount = 2;
constexpr unsigned kCommandPort = 0;  // A0 = 0; offset 1 (A0 = 1) is the data port
constexpr unsigned kCascadeLine = 2;  // the slave's INT drives the master's IR2 on a PC/AT
constexpr std::uint8_t kSpuriousLine = 7;

// ICW1 is recognised by D4 = 1 on the command port, OCW3 by D4 = 0, D3 = 1,
// and OCW2 by D4 = D3 = 0 (8259A datasheet, "Programming the 8259A").
constexpr std::uint8_t kIcw1Marker = 0x10;
constexpr std::uint8_t kOcw3Marker = 0x08;
constexpr std::uint8_t kIcw1Icw4Needed = 0x01;
constexpr std::uint8_t kIcw1Single = 0x02;
constexpr std::uint8_t kIcw1LevelTriggered = 0x08;
constexpr std::uint8_t kIcw4AutoEoi = 0x02;
constexpr std::uint8_t kIcw4SpecialFullyNested = 0x10;
constexpr std::uint8_t kOcw3ReadRegister = 0x02;  // RR: RIS selects the register
constexpr std::uint8_t kOcw3ReadInService = 0x01;
constexpr std::uint8_t kOcw3Poll = 0x04;
constexpr std::uint8_t kOcw3SetSpecialMask = 0x40;  // ESMM: SMM selects the mode
constexpr std::uint8_t kOcw3SpecialMask = 0x20;
constexpr std::uint8_t kPollInterrupt = 0x80;

// OCW2 bits 7-5 (R, SL, EOI), 8259A datasheet Figure 8.
enum class Ocw2Command : std::uint8_t {
  ClearRotateInAutoEoi = 0,
  NonSpecificEoi = 1,
  NoOperation = 2,
  SpecificEoi = 3,
  SetRotateInAutoEoi = 4,
  RotateOnNonSpecificEoi = 5,
  SetPriority = 6,
  RotateOnSpecificEoi = 7,
};

std::uint8_t bit(unsigned line) {
  return static_cast<std::uint8_t>(1u << (line & 7u));
}

// Priority 0 is the highest. Rotation makes `lowest_priority` the lowest and
// the line after it the highest.
unsigned priority_of(std::uint8_t lowest_priority, unsigned line) {
  return (line - lowest_priority - 1u) & 7u;
}

// The highest-priority line set in `lines`, or -1.
int highest_priority_line(std::uint8_t lowest_priority, std::uint8_t lines) {
  for (unsigned rank = 0; rank < 8; ++rank) {
    const unsigned line = (lowest_priority + 1u + rank) & 7u;
    if ((lines & bit(line)) != 0) return static_cast<int>(line);
  }
  return -1;
}

}  // namespace

std::string_view Pic8259Pair::view_name(Chip chip) const {
  return chip == Chip::Master ? "pic8259-master" : "pic8259-slave";
}

void Pic8259Pair::read_view(Chip chip, std::uint64_t offset, std::span<std::uint8_t> data) {
  detail::read_registers(offset, data, kPortCount,
                         [this, chip](unsigned port) { return read_port(chip, port); });
}

void Pic8259Pair::write_view(Chip chip, std::uint64_t offset, std::span<const std::uint8_t> data) {
  detail::write_registers(
      offset, data, kPortCount,
      [this, chip](unsigned port, std::uint8_t value) { write_port(chip, port, value); });
}

Pic8259Pair::Pic8259Pair(IrqLine interrupt_output)
    : m_interrupt_output(std::move(interrupt_output)) {
  // Wired as a PC/AT: the slave hangs off the master's IR2 and has ID 2.
  m_master.cascade = bit(kCascadeLine);
  m_slave.cascade = kCascadeLine;
}

void Pic8259Pair::set_irq(unsigned line, bool level) {
  if (line >= 16 || line == kCascadeLine) return;
  if (line < 8) {
    set_line(m_master, line, level);
  } else {
    set_line(m_slave, line - 8, level);
  }
  update();
}

bool Pic8259Pair::interrupt_pending() const {
  return deliverable_line(m_master, true) >= 0;
}

std::uint8_t Pic8259Pair::acknowledge() {
  const int line = deliverable_line(m_master, true);
  if (line < 0) {
    // No request left by the INTA cycle: the 8259A answers with IR7's vector
    // and sets no ISR bit (datasheet, "Interrupt Sequence", step 4 note).
    return static_cast<std::uint8_t>(m_master.vector_base | kSpuriousLine);
  }
  start_service(m_master, line);

  std::uint8_t vector = static_cast<std::uint8_t>(m_master.vector_base | line);
  if (cascades_through_slave(line)) {
    // The master puts the cascade address on CAS0-2 and the slave supplies
    // the vector during the second INTA pulse.
    const int slave_line = deliverable_line(m_slave, false);
    if (slave_line < 0) {
      vector = static_cast<std::uint8_t>(m_slave.vector_base | kSpuriousLine);
    } else {
      start_service(m_slave, slave_line);
      vector = static_cast<std::uint8_t>(m_slave.vector_base | slave_line);
    }
    // The slave resolves priority afresh after the INTA sequence; if it still
    // has a request (auto-EOI, special mask mode), its INT must give the
    // edge-triggered master a new rising edge rather than stay high unseen.
    m_master.line_levels &= static_cast<std::uint8_t>(~bit(kCascadeLine));
  }
  update();
  return vector;
}

std::uint8_t Pic8259Pair::read_port(Chip chip, unsigned port) {
  Controller& state = controller(chip);
  if (state.poll) {
    // After a poll command the next read is the poll word, on either port.
    state.poll = false;
    const std::uint8_t word = poll(state);
    update();
    return word;
  }
  if (port == kCommandPort) return state.read_in_service ? state.in_service : state.request;
  return state.mask;
}

void Pic8259Pair::write_port(Chip chip, unsigned port, std::uint8_t value) {
  Controller& state = controller(chip);
  if (port == kCommandPort) {
    write_command(state, value);
  } else {
    write_data(state, value);
  }
  update();
}

void Pic8259Pair::write_command(Controller& chip, std::uint8_t value) {
  if ((value & kIcw1Marker) != 0) {
    // ICW1 starts the initialization sequence and resets the chip: edge sense
    // reset, IMR cleared, IR7 lowest priority, special mask mode off, IRR
    // selected for reading, and ICW4's functions cleared if no ICW4 follows
    // (datasheet, "Initialization Command Words"). The datasheet is silent on
    // ISR; it is cleared too, as QEMU, Bochs and KVM do, so a re-initialized
    // chip does not keep stale in-service levels.
    chip.single = (value & kIcw1Single) != 0;
    chip.icw4_needed = (value & kIcw1Icw4Needed) != 0;
    chip.level_triggered = (value & kIcw1LevelTriggered) != 0;
    // After the edge sense reset a high input must go low and high again;
    // line_levels keeps the current levels so it has to.
    chip.request = chip.level_triggered ? chip.line_levels : 0;
    chip.in_service = 0;
    chip.mask = 0;
    chip.lowest_priority = 7;
    chip.special_mask = false;
    chip.read_in_service = false;
    chip.poll = false;
    chip.rotate_on_auto_eoi = false;
    if (!chip.icw4_needed) {
      chip.auto_eoi = false;
      chip.special_fully_nested = false;
    }
    chip.init_step = InitStep::ExpectIcw2;
    return;
  }
  if ((value & kOcw3Marker) != 0) {
    if ((value & kOcw3Poll) != 0) chip.poll = true;
    if ((value & kOcw3ReadRegister) != 0) {
      chip.read_in_service = (value & kOcw3ReadInService) != 0;
    }
    if ((value & kOcw3SetSpecialMask) != 0) {
      chip.special_mask = (value & kOcw3SpecialMask) != 0;
    }
    return;
  }
  operation_command_2(chip, value);
}

void Pic8259Pair::operation_command_2(Controller& chip, std::uint8_t value) {
  const unsigned level = value & 7u;
  switch (static_cast<Ocw2Command>(value >> 5)) {
    case Ocw2Command::ClearRotateInAutoEoi:
      chip.rotate_on_auto_eoi = false;
      return;
    case Ocw2Command::SetRotateInAutoEoi:
      chip.rotate_on_auto_eoi = true;
      return;
    case Ocw2Command::NonSpecificEoi:
    case Ocw2Command::RotateOnNonSpecificEoi: {
      // A non-specific EOI resets the highest-priority ISR bit, which in
      // fully nested mode is the level being serviced.
      const int line = highest_priority_line(chip.lowest_priority, chip.in_service);
      if (line < 0) return;
      chip.in_service &= static_cast<std::uint8_t>(~bit(static_cast<unsigned>(line)));
      if (static_cast<Ocw2Command>(value >> 5) == Ocw2Command::RotateOnNonSpecificEoi) {
        chip.lowest_priority = static_cast<std::uint8_t>(line);
      }
      return;
    }
    case Ocw2Command::SpecificEoi:
      chip.in_service &= static_cast<std::uint8_t>(~bit(level));
      return;
    case Ocw2Command::RotateOnSpecificEoi:
      chip.in_service &= static_cast<std::uint8_t>(~bit(level));
      chip.lowest_priority = static_cast<std::uint8_t>(level);
      return;
    case Ocw2Command::SetPriority:
      chip.lowest_priority = static_cast<std::uint8_t>(level);
      return;
    case Ocw2Command::NoOperation:
      return;
  }
}

void Pic8259Pair::write_data(Controller& chip, std::uint8_t value) {
  switch (chip.init_step) {
    case InitStep::Ready:
      chip.mask = value;  // OCW1
      return;
    case InitStep::ExpectIcw2:
      // In 8086 mode T7-T3 are the vector base; the chip fills in bits 2-0.
      chip.vector_base = value & 0xf8;
      if (!chip.single) {
        chip.init_step = InitStep::ExpectIcw3;
      } else {
        expect_icw4_or_finish(chip);
      }
      return;
    case InitStep::ExpectIcw3:
      chip.cascade = value;
      expect_icw4_or_finish(chip);
      return;
    case InitStep::ExpectIcw4:
      chip.auto_eoi = (value & kIcw4AutoEoi) != 0;
      chip.special_fully_nested = (value & kIcw4SpecialFullyNested) != 0;
      finish_initialization(chip);
      return;
  }
}

void Pic8259Pair::expect_icw4_or_finish(Controller& chip) {
  if (chip.icw4_needed) {
    chip.init_step = InitStep::ExpectIcw4;
  } else {
    finish_initialization(chip);
  }
}

void Pic8259Pair::finish_initialization(Controller& chip) {
  chip.init_step = InitStep::Ready;
  chip.initialized = true;
}

std::uint8_t Pic8259Pair::poll(Controller& chip) {
  // Poll command (datasheet, "The Poll Command"): the read acts as an
  // interrupt acknowledge and returns I (bit 7) and the level (bits 2-0).
  // To poll through a cascade a driver polls the master, then the slave.
  const int line = deliverable_line(chip, &chip == &m_master);
  if (line < 0) return 0;
  start_service(chip, line);
  return static_cast<std::uint8_t>(kPollInterrupt | line);
}

void Pic8259Pair::set_line(Controller& chip, unsigned line, bool level) {
  const std::uint8_t line_bit = bit(line);
  const bool was_high = (chip.line_levels & line_bit) != 0;
  if (level) {
    chip.line_levels |= line_bit;
  } else {
    chip.line_levels &= static_cast<std::uint8_t>(~line_bit);
  }
  if (chip.level_triggered) {
    // Level mode: IRR follows the input; a request that goes away before
    // INTA is lost.
    if (level) {
      chip.request |= line_bit;
    } else {
      chip.request &= static_cast<std::uint8_t>(~line_bit);
    }
  } else if (level && !was_high) {
    // Edge mode: a rising edge latches the request in IRR; it stays latched
    // until acknowledged even if the line falls again (which is how a pulse
    // from the PIT, raised then lowered at once, is still delivered).
    chip.request |= line_bit;
  }
}

int Pic8259Pair::deliverable_line(const Controller& chip, bool is_master) {
  const int requested = highest_priority_line(chip.lowest_priority,
                                              static_cast<std::uint8_t>(chip.request & ~chip.mask));
  if (requested < 0) return -1;
  std::uint8_t blocking = chip.in_service;
  // Special mask mode: a masked level in service no longer blocks others.
  if (chip.special_mask) blocking &= static_cast<std::uint8_t>(~chip.mask);
  // Special fully nested mode: a slave in service does not block further
  // requests from the same slave, so they can nest (datasheet, "Special
  // Fully Nested Mode").
  if (is_master && chip.special_fully_nested && !chip.single) {
    blocking &= static_cast<std::uint8_t>(~chip.cascade);
  }
  const int in_service = highest_priority_line(chip.lowest_priority, blocking);
  if (in_service >= 0 && priority_of(chip.lowest_priority, static_cast<unsigned>(in_service)) <=
                             priority_of(chip.lowest_priority, static_cast<unsigned>(requested))) {
    return -1;
  }
  return requested;
}

void Pic8259Pair::start_service(Controller& chip, int line) {
  const std::uint8_t line_bit = bit(static_cast<unsigned>(line));
  // In level mode IRR keeps following the input; in edge mode the latched
  // request is consumed by the acknowledge.
  if (!chip.level_triggered) chip.request &= static_cast<std::uint8_t>(~line_bit);
  if (chip.auto_eoi) {
    // Auto-EOI resets the ISR bit at the end of the last INTA pulse.
    if (chip.rotate_on_auto_eoi) chip.lowest_priority = static_cast<std::uint8_t>(line);
  } else {
    chip.in_service |= line_bit;
  }
}

bool Pic8259Pair::cascades_through_slave(int master_line) const {
  return master_line == static_cast<int>(kCascadeLine) && !m_master.single &&
         (m_master.cascade & bit(kCascadeLine)) != 0;
}

void Pic8259Pair::update() {
  // The slave's INT output is the master's IR2 input.
  set_line(m_master, kCascadeLine, deliverable_line(m_slave, false) >= 0);
  const bool level = deliverable_line(m_master, true) >= 0;
  if (level == m_output_level) return;
  m_output_level = level;
  if (m_interrupt_output) m_interrupt_output(level);
}

}  // namespace vmlab::devices
