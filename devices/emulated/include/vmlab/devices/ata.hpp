// An ATA disk driven by programmed I/O, as a guest's native IDE driver finds it
// on a PC's primary channel: the command set of ATA8-ACS (T13/1699-D) over
// the register interface and PIO protocols of the parallel transport, ATA8-APT.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <vmlab/devices/block_backend.hpp>
#include <vmlab/devices/register_view.hpp>
#include <vmlab/io_device.hpp>

namespace vmlab::devices {

// What the counters break commands down by.
enum class AtaCommandKind : std::uint8_t {
  IdentifyDevice,
  ReadSectors,
  ReadSectorsExt,
  WriteSectors,
  WriteSectorsExt,
  FlushCache,
  FlushCacheExt,
  SetFeatures,
  Unsupported,  // every other opcode, answered with ABRT
};
inline constexpr std::size_t kAtaCommandKindCount = 9;
std::string_view ata_command_kind_name(AtaCommandKind kind);

// Device 0 (master) on a channel with no device 1. The board registers
// command_block() on the 8 ports 0x1F0-0x1F7 and control_block() on the one
// port 0x3F6 (0x3F7 belongs to the floppy controller), and wires the IRQ line
// to IRQ 14. `backend` must outlive the disk.
//
// Modelled: the whole task file with the two-deep registers of the 48-bit
// Address feature set (HOB), Device Control (nIEN, SRST with the reset
// signature), INTRQ with its pending state cleared by a Status read or a
// command, and the commands IDENTIFY DEVICE, READ/WRITE SECTORS (EXT), FLUSH
// CACHE (EXT) and SET FEATURES (accepted, nothing changes). One 512-byte
// sector per DRQ block, with an interrupt per block. Not modelled: DMA, READ/
// WRITE MULTIPLE (IDENTIFY says so), CHS addressing (obsolete in ATA8-ACS; a
// command with Device bit 6 clear is aborted), power management, timing:
// every command completes within the register write that issues it, so BSY
// is seen only while the host holds SRST.
//
// Registers (offsets into the command block): 0 Data, 1 Error/Features,
// 2 Sector Count, 3 LBA Low, 4 LBA Mid, 5 LBA High, 6 Device, 7 Status/
// Command. Data is 16 bits wide: a 2-, 4- or 8-byte access moves 1, 2 or 4
// words, low word first, so `rep insd` works as on a controller that splits
// 32-bit host cycles. A 1-byte Data access (and the odd byte of a 3-byte one)
// moves nothing and reads 0xFF, as QEMU's IDE does. Other registers are
// bytes; a wider access reaches consecutive registers, as on the ISA bus.
//
// What a hostile or buggy guest gets: Data read with no data-in transfer
// under way (DRQ clear, or device 1 selected) returns all ones, 0xFFFF per
// word, never a stale buffer; Data written with no data-out transfer is
// dropped. A command written during a transfer abandons it (a partly written
// sector is not stored) and runs. Writes to the command block while the host
// holds SRST are ignored. No register sequence reaches the backend outside
// the disk: a range past the end is refused before any data moves.
//
// Errors, in the Error register with ERR in Status and a completion
// interrupt: IDNF for an LBA range past the end (no data moves), ABRT for an
// unknown command, CHS addressing or a write to a read-only backend, UNC for
// a backend read that fails, ABRT with DF (device fault) in Status for a
// backend write or flush that fails, as a drive reports a write fault. After
// UNC and write faults the LBA registers hold the failing sector.
//
// Calls are serialized by the board's device lock; nothing here locks.
class AtaDisk {
 public:
  static constexpr std::uint64_t kCommandBlockPortCount = 8;
  static constexpr std::uint64_t kControlBlockPortCount = 1;

  AtaDisk(BlockBackend& backend, IrqLine irq);
  AtaDisk(const AtaDisk&) = delete;
  AtaDisk& operator=(const AtaDisk&) = delete;
  AtaDisk(AtaDisk&&) = delete;  // the register views point back at the disk
  AtaDisk& operator=(AtaDisk&&) = delete;

  IoDevice& command_block() { return m_command_block; }
  IoDevice& control_block() { return m_control_block; }

  // The level driven on the IRQ line: an interrupt pending, nIEN clear and
  // device 0 selected (a deselected device releases INTRQ, ATA8-APT).
  bool irq_level() const { return m_irq_level; }

  std::uint64_t commands(AtaCommandKind kind) const {
    return m_commands[static_cast<std::size_t>(kind)];
  }
  std::uint64_t commands_failed() const { return m_commands_failed; }
  std::uint64_t sectors_read() const { return m_sectors_read; }
  std::uint64_t sectors_written() const { return m_sectors_written; }
  // Every read or write of a port of either block, Data included: each is
  // one VM exit or one trap, which is what PIO costs.
  std::uint64_t register_accesses() const { return m_register_accesses; }
  // Data accesses with no transfer to serve them.
  std::uint64_t stray_data_accesses() const { return m_stray_data_accesses; }
  // Rising edges on the IRQ line.
  std::uint64_t interrupts_raised() const { return m_interrupts_raised; }

 private:
  enum class Block { Command, Control };
  enum class Transfer { None, Identify, ReadSectors, WriteSectors };

  // Features, Sector Count and the LBA registers keep the value written
  // before the last one for 48-bit commands; HOB in Device Control selects it
  // for reading (ATA8-ACS, 48-bit Address feature set).
  struct TwoDeepRegister {
    std::uint8_t current = 0;
    std::uint8_t previous = 0;
    void write(std::uint8_t value) {
      previous = current;
      current = value;
    }
    void set(std::uint8_t value) { current = previous = value; }
    std::uint8_t read(bool high_order) const { return high_order ? previous : current; }
  };

  struct Request {
    std::uint64_t lba = 0;
    std::uint32_t count = 0;
  };

  // The two register blocks' views call these.
  friend class RegisterView<AtaDisk, Block>;
  std::string_view view_name(Block block) const;
  void read_view(Block block, std::uint64_t offset, std::span<std::uint8_t> data);
  void write_view(Block block, std::uint64_t offset, std::span<const std::uint8_t> data);

  void read_data(std::span<std::uint8_t> data);
  void write_data(std::span<const std::uint8_t> data);
  bool data_in_ready() const;
  bool data_out_ready() const;
  std::uint16_t next_data_word();
  void store_data_word(std::uint16_t word);
  // The two bytes of m_buffer the next Data word moves, low byte first.
  std::span<std::uint8_t, 2> buffer_word() {
    return std::span(m_buffer).subspan(m_buffer_position).first<2>();
  }

  // Features, Sector Count or an LBA register at `offset`, else nullptr.
  TwoDeepRegister* two_deep_register(unsigned offset);
  std::uint8_t read_command_block(unsigned offset);
  void write_command_block(unsigned offset, std::uint8_t value);
  std::uint8_t read_alternate_status() const;
  void write_device_control(std::uint8_t value);

  void execute(std::uint8_t command);
  void identify_device();
  // READ/WRITE SECTORS (EXT).
  void start_transfer(AtaCommandKind kind);
  void flush_cache();
  Request decode_request(bool extended) const;
  bool check_request(const Request& request, bool extended);
  bool load_sector();
  void finish_data_in_block();
  void finish_data_out_block();

  void complete();
  void fail(std::uint8_t error, std::uint8_t extra_status = 0);
  void set_lba_registers(std::uint64_t lba);
  void begin_reset();
  void finish_reset();

  bool device_one_selected() const;
  bool resetting() const;
  void raise_interrupt();
  void update_irq();

  BlockBackend& m_backend;
  IrqLine m_irq;
  RegisterView<AtaDisk, Block> m_command_block{*this, Block::Command};
  RegisterView<AtaDisk, Block> m_control_block{*this, Block::Control};

  TwoDeepRegister m_features;
  TwoDeepRegister m_sector_count;
  TwoDeepRegister m_lba_low;
  TwoDeepRegister m_lba_mid;
  TwoDeepRegister m_lba_high;
  std::uint8_t m_device = 0;
  std::uint8_t m_device_control = 0;
  std::uint8_t m_status = 0;
  std::uint8_t m_error = 0;
  bool m_interrupt_pending = false;
  bool m_irq_level = false;

  // The command in progress: the DRQ block in m_buffer, the next sector it
  // moves and how many sectors remain, this block included.
  Transfer m_transfer = Transfer::None;
  bool m_extended = false;
  std::array<std::uint8_t, kSectorSize> m_buffer{};
  std::size_t m_buffer_position = 0;
  std::uint64_t m_next_lba = 0;
  std::uint32_t m_sectors_remaining = 0;

  std::array<std::uint64_t, kAtaCommandKindCount> m_commands{};
  std::uint64_t m_commands_failed = 0;
  std::uint64_t m_sectors_read = 0;
  std::uint64_t m_sectors_written = 0;
  std::uint64_t m_register_accesses = 0;
  std::uint64_t m_stray_data_accesses = 0;
  std::uint64_t m_interrupts_raised = 0;
};

}  // namespace vmlab::devices
