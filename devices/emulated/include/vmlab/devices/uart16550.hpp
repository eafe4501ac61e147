// A 16550A UART at the register level (National Semiconductor / TI PC16550D
// datasheet), as the guest's native 8250-family driver programs it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include <vmlab/io_device.hpp>

namespace vmlab::devices {

// Registered on an 8-port range (COM1 is 0x3F8-0x3FF, IRQ 4 on a PC).
//
// What is modelled: the whole register set, DLAB, 16-byte FIFOs enabled and
// cleared through FCR, the IIR priority encoding, the THRE interrupt rules,
// LSR (DR, OE, THRE, TEMT), modem status with loopback, and OUT2 gating the
// interrupt output as on a PC. What is not: bit timing. Transmission is
// instantaneous (every byte reaches `transmit` at once and THR is empty again
// straight away), no parity, framing or break errors ever occur, and the
// receiver's character timeout is reported as soon as the FIFO holds fewer
// bytes than the trigger level, because no time passes between characters.
class Uart16550 final : public IoDevice {
 public:
  static constexpr std::uint64_t kRegisterCount = 8;
  static constexpr std::size_t kFifoCapacity = 16;

  Uart16550(IrqLine irq, std::function<void(std::uint8_t)> transmit);

  std::string_view name() const override { return "uart16550"; }
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // Host input arriving on the serial line. A byte that finds the receiver
  // full is lost and sets LSR.OE, as on the wire; the board can hold input
  // back while can_receive() is false instead. In loopback the serial input
  // is disconnected (PC16550D, MCR bit 4) and the byte is dropped.
  void receive(std::uint8_t byte);
  bool can_receive() const;

  // The level the UART drives on its IRQ line (after OUT2 gating).
  bool irq_level() const { return m_irq_level; }
  std::uint64_t bytes_transmitted() const { return m_bytes_transmitted; }
  std::uint64_t bytes_received() const { return m_bytes_received; }
  std::uint64_t overruns() const { return m_overruns; }

 private:
  // Interrupt identification, IIR bits 3-0 (PC16550D Table IV), highest
  // priority first.
  enum class InterruptSource : std::uint8_t {
    LineStatus,
    ReceivedData,
    CharacterTimeout,
    TransmitterEmpty,
    ModemStatus,
    None,
  };

  std::uint8_t read_register(unsigned offset);
  void write_register(unsigned offset, std::uint8_t value);

  std::uint8_t read_receiver_buffer();
  std::uint8_t read_interrupt_identification();
  std::uint8_t read_line_status();
  std::uint8_t read_modem_status();
  void write_transmitter_holding(std::uint8_t byte);
  void write_interrupt_enable(std::uint8_t value);
  void write_fifo_control(std::uint8_t value);
  void write_modem_control(std::uint8_t value);

  void push_received(std::uint8_t byte);
  void clear_receiver();
  void set_modem_inputs(std::uint8_t lines);
  std::size_t receiver_limit() const;
  InterruptSource pending_source() const;
  void update_irq();

  bool divisor_latch_access() const;
  bool loopback() const;

  IrqLine m_irq;
  std::function<void(std::uint8_t)> m_transmit;

  // Receiver: a ring used as the 16-byte FIFO, or as the single RBR when the
  // FIFOs are disabled (receiver_limit() is then 1).
  std::array<std::uint8_t, kFifoCapacity> m_receiver{};
  std::size_t m_receiver_head = 0;
  std::size_t m_receiver_count = 0;
  std::uint8_t m_last_received = 0;  // RBR keeps its last byte when read empty

  std::uint8_t m_interrupt_enable = 0;  // IER bits 3-0
  std::uint8_t m_line_control = 0;
  std::uint8_t m_modem_control = 0;  // MCR bits 4-0
  std::uint8_t m_modem_status = 0;   // MSR: delta bits 3-0, input lines 7-4
  std::uint8_t m_scratch = 0;
  std::uint16_t m_divisor = 0;  // the datasheet leaves it undefined after reset
  bool m_fifo_enabled = false;
  std::size_t m_receiver_trigger = 1;
  bool m_overrun = false;
  // THRE interrupt pending: set whenever THR becomes empty, reset by reading
  // IIR when it is the source or by writing THR (PC16550D Table IV).
  bool m_transmitter_empty_pending = false;
  bool m_irq_level = false;

  std::uint64_t m_bytes_transmitted = 0;
  std::uint64_t m_bytes_received = 0;
  std::uint64_t m_overruns = 0;
};

}  // namespace vmlab::devices
