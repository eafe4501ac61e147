#include <vmlab/devices/uart16550.hpp>

#include <utility>

#include "byte_access.hpp"

namespace vmlab::devices {
namespace {

// Register offsets (PC16550D Table II). Offsets 0 and 1 are the divisor latch
// while LCR.DLAB is set.
constexpr unsigned receiver_buffer = 0;           // RBR on read, THR on write, DLL with DLAB
constexpr unsigned interrupt_enable = 1;          // IER, DLM with DLAB
constexpr unsigned interrupt_identification = 2;  // IIR on read, FCR on write
constexpr unsigned line_control = 3;
constexpr unsigned modem_control = 4;
constexpr unsigned line_status = 5;
constexpr unsigned modem_status = 6;
constexpr unsigned scratch = 7;

constexpr std::uint8_t ier_received_data = 0x01;      // ERBFI
constexpr std::uint8_t ier_transmitter_empty = 0x02;  // ETBEI
constexpr std::uint8_t ier_line_status = 0x04;        // ELSI
constexpr std::uint8_t ier_modem_status = 0x08;       // EDSSI
constexpr std::uint8_t ier_writable = 0x0f;           // bits 7-4 are always 0

constexpr std::uint8_t iir_no_interrupt = 0x01;
constexpr std::uint8_t iir_fifos_enabled = 0xc0;  // bits 7-6 = 11 on a 16550A

constexpr std::uint8_t fcr_enable = 0x01;
constexpr std::uint8_t fcr_clear_receiver = 0x02;

constexpr std::uint8_t lcr_divisor_latch_access = 0x80;

constexpr std::uint8_t mcr_dtr = 0x01;
constexpr std::uint8_t mcr_rts = 0x02;
constexpr std::uint8_t mcr_out1 = 0x04;
constexpr std::uint8_t mcr_out2 = 0x08;
constexpr std::uint8_t mcr_loopback = 0x10;
constexpr std::uint8_t mcr_writable = 0x1f;  // bits 7-5 are always 0

constexpr std::uint8_t lsr_data_ready = 0x01;
constexpr std::uint8_t lsr_overrun = 0x02;
constexpr std::uint8_t lsr_transmitter_holding_empty = 0x20;
constexpr std::uint8_t lsr_transmitter_empty = 0x40;

constexpr std::uint8_t msr_delta_cts = 0x01;
constexpr std::uint8_t msr_delta_dsr = 0x02;
constexpr std::uint8_t msr_trailing_edge_ri = 0x04;
constexpr std::uint8_t msr_delta_dcd = 0x08;
constexpr std::uint8_t msr_deltas = 0x0f;
constexpr std::uint8_t msr_cts = 0x10;
constexpr std::uint8_t msr_dsr = 0x20;
constexpr std::uint8_t msr_ri = 0x40;
constexpr std::uint8_t msr_dcd = 0x80;
constexpr std::uint8_t msr_lines = 0xf0;

// Nothing is attached to the modem inputs, so they read as a modem that is
// present and ready (CTS, DSR and DCD asserted, no ring), which is also what
// QEMU's serial device reports, so flow-controlling drivers transmit.
constexpr std::uint8_t modem_inputs_when_connected = msr_cts | msr_dsr | msr_dcd;

// RX FIFO trigger levels selected by FCR bits 7-6 (PC16550D, FCR description).
constexpr std::array<std::size_t, 4> receiver_trigger_levels{1, 4, 8, 14};

}  // namespace

Uart16550::Uart16550(IrqLine irq, std::function<void(std::uint8_t)> transmit)
    : m_irq(std::move(irq)), m_transmit(std::move(transmit)) {
  // Reset state, PC16550D Table III: IER, FCR, LCR, MCR = 0, LSR = 0x60, IIR =
  // 0x01; the MSR line bits follow the inputs, its delta bits are 0.
  m_modem_status = modem_inputs_when_connected;
}

void Uart16550::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  detail::read_registers(offset, data, register_count,
                         [this](unsigned index) { return read_register(index); });
}

void Uart16550::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  detail::write_registers(offset, data, register_count, [this](unsigned index, std::uint8_t value) {
    write_register(index, value);
  });
}

std::uint8_t Uart16550::read_register(unsigned offset) {
  switch (offset) {
    case receiver_buffer:
      if (divisor_latch_access()) return static_cast<std::uint8_t>(m_divisor & 0xff);
      return read_receiver_buffer();
    case interrupt_enable:
      if (divisor_latch_access()) return static_cast<std::uint8_t>(m_divisor >> 8);
      return m_interrupt_enable;
    case interrupt_identification:
      return read_interrupt_identification();
    case line_control:
      return m_line_control;
    case modem_control:
      return m_modem_control;
    case line_status:
      return read_line_status();
    case modem_status:
      return read_modem_status();
    case scratch:
      return m_scratch;
    default:
      return 0;
  }
}

void Uart16550::write_register(unsigned offset, std::uint8_t value) {
  switch (offset) {
    case receiver_buffer:
      if (divisor_latch_access()) {
        m_divisor = static_cast<std::uint16_t>((m_divisor & 0xff00) | value);
      } else {
        write_transmitter_holding(value);
      }
      return;
    case interrupt_enable:
      if (divisor_latch_access()) {
        m_divisor = static_cast<std::uint16_t>((m_divisor & 0x00ff) | (value << 8));
      } else {
        write_interrupt_enable(value);
      }
      return;
    case interrupt_identification:
      write_fifo_control(value);
      return;
    case line_control:
      m_line_control = value;
      return;
    case modem_control:
      write_modem_control(value);
      return;
    case line_status:
    case modem_status:
      // Read-only status registers; the datasheet reserves writes to LSR for
      // factory test, so they are ignored.
      return;
    case scratch:
      m_scratch = value;
      return;
    default:
      return;
  }
}

std::uint8_t Uart16550::read_receiver_buffer() {
  if (m_receiver_count == 0) return m_last_received;
  m_last_received = m_receiver[m_receiver_head];
  m_receiver_head = (m_receiver_head + 1) % fifo_capacity;
  --m_receiver_count;
  update_irq();
  return m_last_received;
}

std::uint8_t Uart16550::read_interrupt_identification() {
  const InterruptSource source = pending_source();
  std::uint8_t identification = iir_no_interrupt;
  switch (source) {
    case InterruptSource::LineStatus:
      identification = 0x06;
      break;
    case InterruptSource::ReceivedData:
      identification = 0x04;
      break;
    case InterruptSource::CharacterTimeout:
      identification = 0x0c;
      break;
    case InterruptSource::TransmitterEmpty:
      identification = 0x02;
      // Reading IIR when THRE is the source resets that interrupt (Table IV).
      m_transmitter_empty_pending = false;
      break;
    case InterruptSource::ModemStatus:
      identification = 0x00;
      break;
    case InterruptSource::None:
      break;
  }
  if (m_fifo_enabled) identification |= iir_fifos_enabled;
  update_irq();
  return identification;
}

std::uint8_t Uart16550::read_line_status() {
  // Transmission is instantaneous, so THR and the transmitter shift register
  // are always empty by the time the guest looks.
  std::uint8_t status = lsr_transmitter_holding_empty | lsr_transmitter_empty;
  if (m_receiver_count > 0) status |= lsr_data_ready;
  if (m_overrun) status |= lsr_overrun;
  // Reading LSR clears OE and with it the line status interrupt (Table IV).
  m_overrun = false;
  update_irq();
  return status;
}

std::uint8_t Uart16550::read_modem_status() {
  const std::uint8_t status = m_modem_status;
  // Reading MSR clears the delta bits and the modem status interrupt.
  m_modem_status &= msr_lines;
  update_irq();
  return status;
}

void Uart16550::write_transmitter_holding(std::uint8_t byte) {
  // Writing THR resets a pending THRE interrupt (Table IV). The line drops
  // here and rises again below once the byte has gone, so an edge-triggered
  // PIC sees a new edge for every byte, as it would on real hardware after
  // each character time.
  m_transmitter_empty_pending = false;
  update_irq();

  if (loopback()) {
    // MCR bit 4: the transmitter output is looped back into the receiver and
    // nothing leaves on the serial output.
    push_received(byte);
  } else {
    ++m_bytes_transmitted;
    if (m_transmit) m_transmit(byte);
  }

  m_transmitter_empty_pending = true;
  update_irq();
}

void Uart16550::write_interrupt_enable(std::uint8_t value) {
  const std::uint8_t previous = m_interrupt_enable;
  m_interrupt_enable = value & ier_writable;
  // Setting ETBEI while THR is empty raises a THRE interrupt at once; drivers
  // rely on this to start interrupt-driven transmission (Linux's 8250 driver
  // also probes for it at startup).
  if ((m_interrupt_enable & ier_transmitter_empty) != 0 &&
      (previous & ier_transmitter_empty) == 0) {
    m_transmitter_empty_pending = true;
  }
  update_irq();
}

void Uart16550::write_fifo_control(std::uint8_t value) {
  const bool enable = (value & fcr_enable) != 0;
  // Changing FCR bit 0 clears both FIFOs (PC16550D, FCR bit 0).
  if (enable != m_fifo_enabled) clear_receiver();
  m_fifo_enabled = enable;
  // The other FCR bits are programmed only while bit 0 is written as 1. The
  // transmitter FIFO reset (bit 2) has nothing to do: it is always empty.
  if (enable) {
    if ((value & fcr_clear_receiver) != 0) clear_receiver();
    m_receiver_trigger = receiver_trigger_levels[(value >> 6) & 0x03];
  }
  update_irq();
}

void Uart16550::write_modem_control(std::uint8_t value) {
  m_modem_control = value & mcr_writable;
  if (loopback()) {
    // In loopback the modem outputs drive the modem inputs: RTS -> CTS,
    // DTR -> DSR, OUT1 -> RI, OUT2 -> DCD (PC16550D, MCR bit 4).
    std::uint8_t lines = 0;
    if ((m_modem_control & mcr_rts) != 0) lines |= msr_cts;
    if ((m_modem_control & mcr_dtr) != 0) lines |= msr_dsr;
    if ((m_modem_control & mcr_out1) != 0) lines |= msr_ri;
    if ((m_modem_control & mcr_out2) != 0) lines |= msr_dcd;
    set_modem_inputs(lines);
  } else {
    set_modem_inputs(modem_inputs_when_connected);
  }
  update_irq();
}

void Uart16550::receive(std::uint8_t byte) {
  if (loopback()) return;
  push_received(byte);
  update_irq();
}

bool Uart16550::can_receive() const {
  return !loopback() && m_receiver_count < receiver_limit();
}

void Uart16550::push_received(std::uint8_t byte) {
  if (m_receiver_count >= receiver_limit()) {
    ++m_overruns;
    m_overrun = true;
    if (!m_fifo_enabled) {
      // Without FIFOs the new character overwrites the unread one in RBR.
      m_receiver[m_receiver_head] = byte;
    }
    // With FIFOs the character in the shift register is overwritten and
    // never reaches the full FIFO (PC16550D, LSR bit 1).
    return;
  }
  m_receiver[(m_receiver_head + m_receiver_count) % fifo_capacity] = byte;
  ++m_receiver_count;
  ++m_bytes_received;
}

void Uart16550::clear_receiver() {
  m_receiver_head = 0;
  m_receiver_count = 0;
}

void Uart16550::set_modem_inputs(std::uint8_t lines) {
  const std::uint8_t previous = m_modem_status & msr_lines;
  const std::uint8_t changed = previous ^ lines;
  std::uint8_t deltas = m_modem_status & msr_deltas;
  if ((changed & msr_cts) != 0) deltas |= msr_delta_cts;
  if ((changed & msr_dsr) != 0) deltas |= msr_delta_dsr;
  if ((changed & msr_dcd) != 0) deltas |= msr_delta_dcd;
  // TERI reports only the trailing edge of RI, high to low.
  if ((previous & msr_ri) != 0 && (lines & msr_ri) == 0) deltas |= msr_trailing_edge_ri;
  m_modem_status = static_cast<std::uint8_t>(lines | deltas);
}

std::size_t Uart16550::receiver_limit() const {
  return m_fifo_enabled ? fifo_capacity : 1;
}

Uart16550::InterruptSource Uart16550::pending_source() const {
  // Priority order of PC16550D Table IV.
  if ((m_interrupt_enable & ier_line_status) != 0 && m_overrun) {
    return InterruptSource::LineStatus;
  }
  if ((m_interrupt_enable & ier_received_data) != 0 && m_receiver_count > 0) {
    if (!m_fifo_enabled || m_receiver_count >= m_receiver_trigger) {
      return InterruptSource::ReceivedData;
    }
    return InterruptSource::CharacterTimeout;
  }
  if ((m_interrupt_enable & ier_transmitter_empty) != 0 && m_transmitter_empty_pending) {
    return InterruptSource::TransmitterEmpty;
  }
  if ((m_interrupt_enable & ier_modem_status) != 0 && (m_modem_status & msr_deltas) != 0) {
    return InterruptSource::ModemStatus;
  }
  return InterruptSource::None;
}

void Uart16550::update_irq() {
  // On a PC the INTRPT pin reaches the PIC through a buffer enabled by the
  // OUT2 output. In loopback the OUT2 pin is forced inactive (PC16550D, MCR
  // bit 4), so a loopback self-test raises no IRQ on a PC either.
  const bool output_enabled = (m_modem_control & mcr_out2) != 0 && !loopback();
  const bool level = output_enabled && pending_source() != InterruptSource::None;
  if (level == m_irq_level) return;
  m_irq_level = level;
  if (m_irq) m_irq(level);
}

bool Uart16550::divisor_latch_access() const {
  return (m_line_control & lcr_divisor_latch_access) != 0;
}

bool Uart16550::loopback() const {
  return (m_modem_control & mcr_loopback) != 0;
}

}  // namespace vmlab::devices
