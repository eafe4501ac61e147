#include <vmlab/devices/uart16550.hpp>

#include <utility>

#include "byte_access.hpp"

namespace vmlab::devices {
namespace {

// Register offsets (PC16550D Table II). Offsets 0 and 1 are the divisor latch
// while LCR.DLAB is set.
constexpr unsigned kReceiverBuffer = 0;           // RBR on read, THR on write, DLL with DLAB
constexpr unsigned kInterruptEnable = 1;          // IER, DLM with DLAB
constexpr unsigned kInterruptIdentification = 2;  // IIR on read, FCR on write
constexpr unsigned kLineControl = 3;
constexpr unsigned kModemControl = 4;
constexpr unsigned kLineStatus = 5;
constexpr unsigned kModemStatus = 6;
constexpr unsigned kScratch = 7;

constexpr std::uint8_t kIerReceivedData = 0x01;      // ERBFI
constexpr std::uint8_t kIerTransmitterEmpty = 0x02;  // ETBEI
constexpr std::uint8_t kIerLineStatus = 0x04;        // ELSI
constexpr std::uint8_t kIerModemStatus = 0x08;       // EDSSI
constexpr std::uint8_t kIerWritable = 0x0f;          // bits 7-4 are always 0

constexpr std::uint8_t kIirNoInterrupt = 0x01;
constexpr std::uint8_t kIirFifosEnabled = 0xc0;  // bits 7-6 = 11 on a 16550A

constexpr std::uint8_t kFcrEnable = 0x01;
constexpr std::uint8_t kFcrClearReceiver = 0x02;

constexpr std::uint8_t kLcrDivisorLatchAccess = 0x80;

constexpr std::uint8_t kMcrDtr = 0x01;
constexpr std::uint8_t kMcrRts = 0x02;
constexpr std::uint8_t kMcrOut1 = 0x04;
constexpr std::uint8_t kMcrOut2 = 0x08;
constexpr std::uint8_t kMcrLoopback = 0x10;
constexpr std::uint8_t kMcrWritable = 0x1f;  // bits 7-5 are always 0

constexpr std::uint8_t kLsrDataReady = 0x01;
constexpr std::uint8_t kLsrOverrun = 0x02;
constexpr std::uint8_t kLsrTransmitterHoldingEmpty = 0x20;
constexpr std::uint8_t kLsrTransmitterEmpty = 0x40;

constexpr std::uint8_t kMsrDeltaCts = 0x01;
constexpr std::uint8_t kMsrDeltaDsr = 0x02;
constexpr std::uint8_t kMsrTrailingEdgeRi = 0x04;
constexpr std::uint8_t kMsrDeltaDcd = 0x08;
constexpr std::uint8_t kMsrDeltas = 0x0f;
constexpr std::uint8_t kMsrCts = 0x10;
constexpr std::uint8_t kMsrDsr = 0x20;
constexpr std::uint8_t kMsrRi = 0x40;
constexpr std::uint8_t kMsrDcd = 0x80;
constexpr std::uint8_t kMsrLines = 0xf0;

// Nothing is attached to the modem inputs, so they read as a modem that is
// present and ready (CTS, DSR and DCD asserted, no ring), which is also what
// QEMU's serial device reports, so flow-controlling drivers transmit.
constexpr std::uint8_t kModemInputsWhenConnected = kMsrCts | kMsrDsr | kMsrDcd;

// RX FIFO trigger levels selected by FCR bits 7-6 (PC16550D, FCR description).
constexpr std::array<std::size_t, 4> kReceiverTriggerLevels{1, 4, 8, 14};

}  // namespace

Uart16550::Uart16550(IrqLine irq, std::function<void(std::uint8_t)> transmit)
    : m_irq(std::move(irq)), m_transmit(std::move(transmit)) {
  // Reset state, PC16550D Table III: IER, FCR, LCR, MCR = 0, LSR = 0x60, IIR =
  // 0x01; the MSR line bits follow the inputs, its delta bits are 0.
  m_modem_status = kModemInputsWhenConnected;
}

void Uart16550::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  detail::read_registers(offset, data, kRegisterCount,
                         [this](unsigned index) { return read_register(index); });
}

void Uart16550::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  detail::write_registers(offset, data, kRegisterCount, [this](unsigned index, std::uint8_t value) {
    write_register(index, value);
  });
}

std::uint8_t Uart16550::read_register(unsigned offset) {
  switch (offset) {
    case kReceiverBuffer:
      if (divisor_latch_access()) return static_cast<std::uint8_t>(m_divisor & 0xff);
      return read_receiver_buffer();
    case kInterruptEnable:
      if (divisor_latch_access()) return static_cast<std::uint8_t>(m_divisor >> 8);
      return m_interrupt_enable;
    case kInterruptIdentification:
      return read_interrupt_identification();
    case kLineControl:
      return m_line_control;
    case kModemControl:
      return m_modem_control;
    case kLineStatus:
      return read_line_status();
    case kModemStatus:
      return read_modem_status();
    case kScratch:
      return m_scratch;
    default:
      return 0;
  }
}

void Uart16550::write_register(unsigned offset, std::uint8_t value) {
  switch (offset) {
    case kReceiverBuffer:
      if (divisor_latch_access()) {
        m_divisor = static_cast<std::uint16_t>((m_divisor & 0xff00) | value);
      } else {
        write_transmitter_holding(value);
      }
      return;
    case kInterruptEnable:
      if (divisor_latch_access()) {
        m_divisor = static_cast<std::uint16_t>((m_divisor & 0x00ff) | (value << 8));
      } else {
        write_interrupt_enable(value);
      }
      return;
    case kInterruptIdentification:
      write_fifo_control(value);
      return;
    case kLineControl:
      m_line_control = value;
      return;
    case kModemControl:
      write_modem_control(value);
      return;
    case kLineStatus:
    case kModemStatus:
      // Read-only status registers; the datasheet reserves writes to LSR for
      // factory test, so they are ignored.
      return;
    case kScratch:
      m_scratch = value;
      return;
    default:
      return;
  }
}

std::uint8_t Uart16550::read_receiver_buffer() {
  if (m_receiver_count == 0) return m_last_received;
  m_last_received = m_receiver[m_receiver_head];
  m_receiver_head = (m_receiver_head + 1) % kFifoCapacity;
  --m_receiver_count;
  update_irq();
  return m_last_received;
}

std::uint8_t Uart16550::read_interrupt_identification() {
  const InterruptSource source = pending_source();
  std::uint8_t identification = kIirNoInterrupt;
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
  if (m_fifo_enabled) identification |= kIirFifosEnabled;
  update_irq();
  return identification;
}

std::uint8_t Uart16550::read_line_status() {
  // Transmission is instantaneous, so THR and the transmitter shift register
  // are always empty by the time the guest looks.
  std::uint8_t status = kLsrTransmitterHoldingEmpty | kLsrTransmitterEmpty;
  if (m_receiver_count > 0) status |= kLsrDataReady;
  if (m_overrun) status |= kLsrOverrun;
  // Reading LSR clears OE and with it the line status interrupt (Table IV).
  m_overrun = false;
  update_irq();
  return status;
}

std::uint8_t Uart16550::read_modem_status() {
  const std::uint8_t status = m_modem_status;
  // Reading MSR clears the delta bits and the modem status interrupt.
  m_modem_status &= kMsrLines;
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
  m_interrupt_enable = value & kIerWritable;
  // Setting ETBEI while THR is empty raises a THRE interrupt at once; drivers
  // rely on this to start interrupt-driven transmission (Linux's 8250 driver
  // also probes for it at startup).
  if ((m_interrupt_enable & kIerTransmitterEmpty) != 0 && (previous & kIerTransmitterEmpty) == 0) {
    m_transmitter_empty_pending = true;
  }
  update_irq();
}

void Uart16550::write_fifo_control(std::uint8_t value) {
  const bool enable = (value & kFcrEnable) != 0;
  // Changing FCR bit 0 clears both FIFOs (PC16550D, FCR bit 0).
  if (enable != m_fifo_enabled) clear_receiver();
  m_fifo_enabled = enable;
  // The other FCR bits are programmed only while bit 0 is written as 1. The
  // transmitter FIFO reset (bit 2) has nothing to do: it is always empty.
  if (enable) {
    if ((value & kFcrClearReceiver) != 0) clear_receiver();
    m_receiver_trigger = kReceiverTriggerLevels[(value >> 6) & 0x03];
  }
  update_irq();
}

void Uart16550::write_modem_control(std::uint8_t value) {
  m_modem_control = value & kMcrWritable;
  if (loopback()) {
    // In loopback the modem outputs drive the modem inputs: RTS -> CTS,
    // DTR -> DSR, OUT1 -> RI, OUT2 -> DCD (PC16550D, MCR bit 4).
    std::uint8_t lines = 0;
    if ((m_modem_control & kMcrRts) != 0) lines |= kMsrCts;
    if ((m_modem_control & kMcrDtr) != 0) lines |= kMsrDsr;
    if ((m_modem_control & kMcrOut1) != 0) lines |= kMsrRi;
    if ((m_modem_control & kMcrOut2) != 0) lines |= kMsrDcd;
    set_modem_inputs(lines);
  } else {
    set_modem_inputs(kModemInputsWhenConnected);
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
  m_receiver[(m_receiver_head + m_receiver_count) % kFifoCapacity] = byte;
  ++m_receiver_count;
  ++m_bytes_received;
}

void Uart16550::clear_receiver() {
  m_receiver_head = 0;
  m_receiver_count = 0;
}

void Uart16550::set_modem_inputs(std::uint8_t lines) {
  const std::uint8_t previous = m_modem_status & kMsrLines;
  const std::uint8_t changed = previous ^ lines;
  std::uint8_t deltas = m_modem_status & kMsrDeltas;
  if ((changed & kMsrCts) != 0) deltas |= kMsrDeltaCts;
  if ((changed & kMsrDsr) != 0) deltas |= kMsrDeltaDsr;
  if ((changed & kMsrDcd) != 0) deltas |= kMsrDeltaDcd;
  // TERI reports only the trailing edge of RI, high to low.
  if ((previous & kMsrRi) != 0 && (lines & kMsrRi) == 0) deltas |= kMsrTrailingEdgeRi;
  m_modem_status = static_cast<std::uint8_t>(lines | deltas);
}

std::size_t Uart16550::receiver_limit() const {
  return m_fifo_enabled ? kFifoCapacity : 1;
}

Uart16550::InterruptSource Uart16550::pending_source() const {
  // Priority order of PC16550D Table IV.
  if ((m_interrupt_enable & kIerLineStatus) != 0 && m_overrun) {
    return InterruptSource::LineStatus;
  }
  if ((m_interrupt_enable & kIerReceivedData) != 0 && m_receiver_count > 0) {
    if (!m_fifo_enabled || m_receiver_count >= m_receiver_trigger) {
      return InterruptSource::ReceivedData;
    }
    return InterruptSource::CharacterTimeout;
  }
  if ((m_interrupt_enable & kIerTransmitterEmpty) != 0 && m_transmitter_empty_pending) {
    return InterruptSource::TransmitterEmpty;
  }
  if ((m_interrupt_enable & kIerModemStatus) != 0 && (m_modem_status & kMsrDeltas) != 0) {
    return InterruptSource::ModemStatus;
  }
  return InterruptSource::None;
}

void Uart16550::update_irq() {
  // On a PC the INTRPT pin reaches the PIC through a buffer enabled by the
  // OUT2 output. In loopback the OUT2 pin is forced inactive (PC16550D, MCR
  // bit 4), so a loopback self-test raises no IRQ on a PC either.
  const bool output_enabled = (m_modem_control & kMcrOut2) != 0 && !loopback();
  const bool level = output_enabled && pending_source() != InterruptSource::None;
  if (level == m_irq_level) return;
  m_irq_level = level;
  if (m_irq) m_irq(level);
}

bool Uart16550::divisor_latch_access() const {
  return (m_line_control & kLcrDivisorLatchAccess) != 0;
}

bool Uart16550::loopback() const {
  return (m_modem_control & kMcrLoopback) != 0;
}

}  // namespace vmlab::devices
