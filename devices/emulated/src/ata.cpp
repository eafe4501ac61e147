#include <vmlab/devices/ata.hpp>

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>

#include <vmlab/little_endian.hpp>

#include "byte_access.hpp"

namespace vmlab::devices {
namespace {

// Command block register offsets (ATA8-APT, "I/O register descriptions").
constexpr unsigned kDataRegister = 0;
constexpr unsigned kErrorFeaturesRegister = 1;
constexpr unsigned kSectorCountRegister = 2;
constexpr unsigned kLbaLowRegister = 3;
constexpr unsigned kLbaMidRegister = 4;
constexpr unsigned kLbaHighRegister = 5;
constexpr unsigned kDeviceRegister = 6;
constexpr unsigned kStatusCommandRegister = 7;

// Status register bits. Bits 4, 2 and 1 are obsolete or command specific in
// ATA8-ACS and read as 0 here.
constexpr std::uint8_t kStatusError = 0x01;        // ERR
constexpr std::uint8_t kStatusDataRequest = 0x08;  // DRQ
constexpr std::uint8_t kStatusDeviceFault = 0x20;  // DF
constexpr std::uint8_t kStatusDeviceReady = 0x40;  // DRDY
constexpr std::uint8_t kStatusBusy = 0x80;         // BSY

// Error register bits.
constexpr std::uint8_t kErrorAborted = 0x04;        // ABRT
constexpr std::uint8_t kErrorIdNotFound = 0x10;     // IDNF
constexpr std::uint8_t kErrorUncorrectable = 0x40;  // UNC
// After a reset the Error register holds a diagnostic code, not error bits:
// 01h is "device 0 passed, device 1 passed or not present" (ATA8-ACS,
// EXECUTE DEVICE DIAGNOSTIC, diagnostic codes).
constexpr std::uint8_t kDiagnosticPassed = 0x01;

constexpr std::uint8_t kDeviceLba = 0x40;                // LBA addressing, not CHS
constexpr std::uint8_t kDeviceSelect = 0x10;             // DEV: device 1
constexpr std::uint8_t kDeviceLba28High = 0x0f;          // LBA bits 27:24 for 28-bit commands
constexpr std::uint8_t kControlInterruptDisable = 0x02;  // nIEN
constexpr std::uint8_t kControlSoftwareReset = 0x04;     // SRST
constexpr std::uint8_t kControlHighOrderByte = 0x80;     // HOB

constexpr std::uint8_t kCommandReadSectors = 0x20;
constexpr std::uint8_t kCommandReadSectorsExt = 0x24;
constexpr std::uint8_t kCommandWriteSectors = 0x30;
constexpr std::uint8_t kCommandWriteSectorsExt = 0x34;
constexpr std::uint8_t kCommandFlushCache = 0xe7;
constexpr std::uint8_t kCommandFlushCacheExt = 0xea;
constexpr std::uint8_t kCommandIdentifyDevice = 0xec;
constexpr std::uint8_t kCommandSetFeatures = 0xef;

// The largest sector count a 28-bit command can address, and what IDENTIFY
// words 60-61 report for a bigger disk (ATA8-ACS, IDENTIFY DEVICE data).
constexpr std::uint64_t kLba28SectorLimit = 0x0fff'ffff;

constexpr std::uint16_t kAllOnesWord = 0xffff;
constexpr std::uint8_t kAllOnesByte = 0xff;

static_assert(static_cast<std::size_t>(AtaCommandKind::Unsupported) + 1 == kAtaCommandKindCount);

// Each AtaCommandKind's opcode, in the enum's order; Unsupported has none.
constexpr std::uint8_t kOpcodes[] = {
    kCommandIdentifyDevice,  kCommandReadSectors, kCommandReadSectorsExt, kCommandWriteSectors,
    kCommandWriteSectorsExt, kCommandFlushCache,  kCommandFlushCacheExt,  kCommandSetFeatures};
static_assert(std::size(kOpcodes) == static_cast<std::size_t>(AtaCommandKind::Unsupported));

AtaCommandKind command_kind(std::uint8_t opcode) {
  // An opcode not in the table is found at its end: Unsupported.
  const auto found = std::find(std::begin(kOpcodes), std::end(kOpcodes), opcode);
  return static_cast<AtaCommandKind>(found - std::begin(kOpcodes));
}

using IdentifyWords = std::array<std::uint16_t, kSectorSize / 2>;

// ATA strings put the first character of each pair in bits 15:8 of its word
// and are padded with spaces (ATA8-ACS, "ATA string convention").
void put_ata_string(IdentifyWords& words, std::size_t first_word, std::size_t word_count,
                    std::string_view text) {
  auto character = [&text](std::size_t index) -> std::uint16_t {
    if (index >= text.size()) return ' ';
    const char value = text[index];
    return (value >= ' ' && value <= '~') ? static_cast<std::uint16_t>(value) : ' ';
  };
  for (std::size_t word = 0; word < word_count; ++word) {
    words[first_word + word] =
        static_cast<std::uint16_t>((character(2 * word) << 8) | character(2 * word + 1));
  }
}

// IDENTIFY DEVICE data, word by word (ATA8-ACS, table "IDENTIFY DEVICE
// data"); words not set are reserved, obsolete or describe features this disk
// lacks, and are 0.
IdentifyWords identify_device_words(const BlockBackend& backend) {
  IdentifyWords words{};
  const std::uint64_t sectors = backend.sector_count();
  const std::uint64_t lba28_sectors = std::min(sectors, kLba28SectorLimit);

  words[0] = 0x0040;  // bit 15 clear: an ATA device; bit 6 "fixed", as drives still report
  put_ata_string(words, 10, 10, backend.serial());
  put_ata_string(words, 23, 4, "0.1.0");
  put_ata_string(words, 27, 20, "vmlab ATA disk");
  words[47] = 0x8000;  // bits 7:0 = 0: READ/WRITE MULTIPLE not supported
  words[49] = 0x0a00;  // bit 11 IORDY supported, bit 9 LBA supported (no DMA, bit 8)
  words[50] = 0x4000;  // bit 14 shall be one
  words[53] = 0x0006;  // words 64-70 and word 88 are valid
  words[60] = static_cast<std::uint16_t>(lba28_sectors);
  words[61] = static_cast<std::uint16_t>(lba28_sectors >> 16);
  words[64] = 0x0003;  // PIO modes 3 and 4
  words[67] = 120;     // minimum PIO cycle time, ns, without IORDY
  words[68] = 120;     // and with it (PIO mode 4)
  words[80] = 0x01f0;  // major versions: ATA/ATAPI-4 to ATA8-ACS
  words[82] = 0x0020;  // volatile write cache supported, so guests send FLUSH CACHE
  words[83] = 0x7400;  // bit 14 one; FLUSH CACHE EXT, FLUSH CACHE, 48-bit Address
  words[84] = 0x4000;  // bit 14 one
  words[85] = 0x0020;  // volatile write cache enabled
  words[86] = 0x3400;  // FLUSH CACHE EXT, FLUSH CACHE, 48-bit Address enabled
  words[87] = 0x4000;  // bit 14 one
  for (std::size_t index = 0; index < 4; ++index) {
    words[100 + index] = static_cast<std::uint16_t>(sectors >> (16 * index));
  }
  words[106] = 0x4000;  // valid; one 512-byte logical sector per physical sector
  words[217] = 0x0001;  // nominal media rotation rate: non-rotating medium

  // Integrity word: signature A5h in bits 7:0 and, in bits 15:8, the value
  // that makes the sum of all 512 bytes zero modulo 256.
  unsigned sum = 0xa5;
  for (std::size_t index = 0; index < 255; ++index) {
    sum += (words[index] & 0xffu) + (words[index] >> 8);
  }
  const auto checksum = static_cast<std::uint8_t>(0x100 - (sum & 0xff));
  words[255] = static_cast<std::uint16_t>((checksum << 8) | 0xa5);
  return words;
}

}  // namespace

std::string_view ata_command_kind_name(AtaCommandKind kind) {
  static constexpr std::string_view kNames[] = {
      "IDENTIFY DEVICE", "READ SECTORS",      "READ SECTORS EXT",
      "WRITE SECTORS",   "WRITE SECTORS EXT", "FLUSH CACHE",
      "FLUSH CACHE EXT", "SET FEATURES",      "unsupported"};
  static_assert(std::size(kNames) == kAtaCommandKindCount, "one name per AtaCommandKind");
  const auto index = static_cast<std::size_t>(kind);
  return index < std::size(kNames) ? kNames[index] : "unsupported";
}

std::string_view AtaDisk::view_name(Block block) const {
  return block == Block::Command ? "ata-command-block" : "ata-control-block";
}

void AtaDisk::read_view(Block block, std::uint64_t offset, std::span<std::uint8_t> data) {
  ++m_register_accesses;
  if (block == Block::Control) {
    detail::read_registers(offset, data, kControlBlockPortCount,
                           [this](unsigned) { return read_alternate_status(); });
    return;
  }
  if (offset == kDataRegister) {
    read_data(data);
    return;
  }
  detail::read_registers(offset, data, kCommandBlockPortCount,
                         [this](unsigned index) { return read_command_block(index); });
}

void AtaDisk::write_view(Block block, std::uint64_t offset, std::span<const std::uint8_t> data) {
  ++m_register_accesses;
  if (block == Block::Control) {
    detail::write_registers(offset, data, kControlBlockPortCount,
                            [this](unsigned, std::uint8_t value) { write_device_control(value); });
    return;
  }
  if (offset == kDataRegister) {
    write_data(data);
    return;
  }
  detail::write_registers(
      offset, data, kCommandBlockPortCount,
      [this](unsigned index, std::uint8_t value) { write_command_block(index, value); });
}

AtaDisk::AtaDisk(BlockBackend& backend, IrqLine irq) : m_backend(backend), m_irq(std::move(irq)) {
  // Power-on leaves the task file as a reset does, with the signature of an
  // ATA (not packet) device in it.
  finish_reset();
}

// --- Data port -------------------------------------------------------------

bool AtaDisk::data_in_ready() const {
  return (m_status & kStatusDataRequest) != 0 && !device_one_selected() &&
         (m_transfer == Transfer::Identify || m_transfer == Transfer::ReadSectors);
}

bool AtaDisk::data_out_ready() const {
  return (m_status & kStatusDataRequest) != 0 && !device_one_selected() &&
         m_transfer == Transfer::WriteSectors;
}

void AtaDisk::read_data(std::span<std::uint8_t> data) {
  const std::size_t words = data.size() / 2;
  if (words == 0 || !data_in_ready()) ++m_stray_data_accesses;
  for (std::size_t index = 0; index < words; ++index) {
    // A block can end inside a 32-bit access; the words after it are stray.
    store_little_endian(data.subspan(2 * index, 2),
                        data_in_ready() ? next_data_word() : kAllOnesWord);
  }
  if (data.size() % 2 != 0) data.back() = kAllOnesByte;
}

void AtaDisk::write_data(std::span<const std::uint8_t> data) {
  const std::size_t words = data.size() / 2;
  if (words == 0 || !data_out_ready()) ++m_stray_data_accesses;
  for (std::size_t index = 0; index < words && data_out_ready(); ++index) {
    store_data_word(static_cast<std::uint16_t>(load_little_endian(data.subspan(2 * index, 2))));
  }
}

std::uint16_t AtaDisk::next_data_word() {
  const auto word = static_cast<std::uint16_t>(load_little_endian(buffer_word()));
  m_buffer_position += 2;
  if (m_buffer_position == m_buffer.size()) finish_data_in_block();
  return word;
}

void AtaDisk::store_data_word(std::uint16_t word) {
  store_little_endian(buffer_word(), word);
  m_buffer_position += 2;
  if (m_buffer_position == m_buffer.size()) finish_data_out_block();
}

// --- Task file -------------------------------------------------------------

AtaDisk::TwoDeepRegister* AtaDisk::two_deep_register(unsigned offset) {
  // Indexed by command block offset: Features (written at offset 1, where
  // Error is read), Sector Count and the three LBA registers.
  static constexpr TwoDeepRegister AtaDisk::*kRegisters[] = {nullptr,
                                                             &AtaDisk::m_features,
                                                             &AtaDisk::m_sector_count,
                                                             &AtaDisk::m_lba_low,
                                                             &AtaDisk::m_lba_mid,
                                                             &AtaDisk::m_lba_high};
  static_assert(kErrorFeaturesRegister == 1 && kSectorCountRegister == 2 && kLbaLowRegister == 3 &&
                kLbaMidRegister == 4 && kLbaHighRegister == 5 &&
                std::size(kRegisters) == kLbaHighRegister + 1);
  return offset < std::size(kRegisters) && kRegisters[offset] != nullptr
             ? &(this->*kRegisters[offset])
             : nullptr;
}

std::uint8_t AtaDisk::read_command_block(unsigned offset) {
  if (offset == kErrorFeaturesRegister) return m_error;  // Features cannot be read
  if (const TwoDeepRegister* task_file = two_deep_register(offset)) {
    return task_file->read((m_device_control & kControlHighOrderByte) != 0);
  }
  switch (offset) {
    case kDeviceRegister:
      return m_device;
    case kStatusCommandRegister:
      // Device 0 answers for an absent device 1 except in Status, which
      // reads 00h, so the host sees no device there (ATA8-APT).
      if (device_one_selected()) return 0;
      // Reading Status is the host's acknowledgement: it clears the
      // pending interrupt. Alternate Status does not (ATA8-APT, INTRQ).
      m_interrupt_pending = false;
      update_irq();
      return m_status;
    default:
      return 0;
  }
}

void AtaDisk::write_command_block(unsigned offset, std::uint8_t value) {
  // While BSY is set the registers belong to the device; the host must not
  // write them, and the only way BSY is seen here is SRST held.
  if (resetting()) return;
  // A write to any command block register clears HOB (ATA8-ACS, 48-bit
  // Address feature set).
  m_device_control = static_cast<std::uint8_t>(m_device_control & ~kControlHighOrderByte);
  if (TwoDeepRegister* task_file = two_deep_register(offset)) {
    task_file->write(value);
    return;
  }
  switch (offset) {
    case kDeviceRegister:
      m_device = value;
      update_irq();  // only the selected device drives INTRQ
      return;
    case kStatusCommandRegister:
      execute(value);
      return;
    default:
      return;
  }
}

std::uint8_t AtaDisk::read_alternate_status() const {
  if (device_one_selected()) return 0;
  return m_status;
}

void AtaDisk::write_device_control(std::uint8_t value) {
  const bool was_resetting = resetting();
  m_device_control = value;
  // The software reset protocol (ATA8-APT): the device resets when the host
  // sets SRST and finishes, with the signature in the task file and no
  // interrupt, when the host clears it again.
  if (!was_resetting && resetting()) begin_reset();
  if (was_resetting && !resetting()) finish_reset();
  update_irq();
}

void AtaDisk::begin_reset() {
  m_transfer = Transfer::None;
  m_buffer_position = 0;
  m_interrupt_pending = false;
  m_status = kStatusBusy;
}

void AtaDisk::finish_reset() {
  // The signature of a device that does not implement the PACKET feature
  // set (ATA8-ACS, "Signature and persistence"): Sector Count 01h, LBA Low
  // 01h, LBA Mid 00h, LBA High 00h, Device 00h.
  m_sector_count.set(0x01);
  m_lba_low.set(0x01);
  m_lba_mid.set(0x00);
  m_lba_high.set(0x00);
  m_device = 0x00;
  m_error = kDiagnosticPassed;
  m_status = kStatusDeviceReady;
  m_transfer = Transfer::None;
  m_buffer_position = 0;
  m_interrupt_pending = false;
}

// --- Commands --------------------------------------------------------------

void AtaDisk::execute(std::uint8_t command) {
  // Device 0 does not execute commands addressed to device 1 (ATA8-APT).
  if (device_one_selected()) return;
  // Writing Command clears a pending interrupt; the line drops now so that
  // this command's interrupt is a new edge.
  m_interrupt_pending = false;
  update_irq();
  // A command written during a transfer ends it: the rest of the data, and
  // a partly written sector, are dropped.
  m_transfer = Transfer::None;
  m_buffer_position = 0;
  m_error = 0;
  m_status = kStatusDeviceReady;

  const AtaCommandKind kind = command_kind(command);
  ++m_commands[static_cast<std::size_t>(kind)];
  switch (kind) {
    case AtaCommandKind::IdentifyDevice:
      identify_device();
      return;
    case AtaCommandKind::ReadSectors:
    case AtaCommandKind::ReadSectorsExt:
    case AtaCommandKind::WriteSectors:
    case AtaCommandKind::WriteSectorsExt:
      start_transfer(kind);
      return;
    case AtaCommandKind::FlushCache:
    case AtaCommandKind::FlushCacheExt:
      flush_cache();
      return;
    case AtaCommandKind::SetFeatures:
      // Transfer modes and the write cache setting change nothing here: PIO
      // has no timing, and every write already reaches the backend.
      complete();
      return;
    case AtaCommandKind::Unsupported:
      fail(kErrorAborted);
      return;
  }
}

void AtaDisk::identify_device() {
  const IdentifyWords words = identify_device_words(m_backend);
  for (std::size_t index = 0; index < words.size(); ++index) {
    store_little_endian(std::span(m_buffer).subspan(2 * index, 2), words[index]);
  }
  // PIO data-in with one DRQ block (ATA8-APT, PIO data-in protocol).
  m_transfer = Transfer::Identify;
  m_sectors_remaining = 1;
  m_buffer_position = 0;
  m_status = kStatusDeviceReady | kStatusDataRequest;
  raise_interrupt();
}

AtaDisk::Request AtaDisk::decode_request(bool extended) const {
  Request request;
  if (extended) {
    // 48-bit: LBA 47:24 and count 15:8 were written first, so they are the
    // previous contents of the two-deep registers.
    request.lba =
        std::uint64_t{m_lba_low.current} | std::uint64_t{m_lba_mid.current} << 8 |
        std::uint64_t{m_lba_high.current} << 16 | std::uint64_t{m_lba_low.previous} << 24 |
        std::uint64_t{m_lba_mid.previous} << 32 | std::uint64_t{m_lba_high.previous} << 40;
    request.count =
        static_cast<std::uint32_t>(m_sector_count.previous << 8 | m_sector_count.current);
    if (request.count == 0) request.count = 65536;
  } else {
    request.lba = std::uint64_t{m_lba_low.current} | std::uint64_t{m_lba_mid.current} << 8 |
                  std::uint64_t{m_lba_high.current} << 16 |
                  std::uint64_t{static_cast<std::uint8_t>(m_device & kDeviceLba28High)} << 24;
    request.count = m_sector_count.current;
    if (request.count == 0) request.count = 256;
  }
  return request;
}

bool AtaDisk::check_request(const Request& request, bool extended) {
  if ((m_device & kDeviceLba) == 0) {
    fail(kErrorAborted);  // CHS addressing is obsolete (ATA8-ACS): refused with ABRT
    return false;
  }
  // A 28-bit command reaches only the sectors IDENTIFY words 60-61 report.
  const std::uint64_t limit =
      extended ? m_backend.sector_count() : std::min(m_backend.sector_count(), kLba28SectorLimit);
  if (request.lba >= limit || request.count > limit - request.lba) {
    set_lba_registers(std::max(request.lba, limit));
    fail(kErrorIdNotFound);
    return false;
  }
  return true;
}

void AtaDisk::start_transfer(AtaCommandKind kind) {
  m_extended = kind == AtaCommandKind::ReadSectorsExt || kind == AtaCommandKind::WriteSectorsExt;
  const bool write =
      kind == AtaCommandKind::WriteSectors || kind == AtaCommandKind::WriteSectorsExt;
  const Request request = decode_request(m_extended);
  if (!check_request(request, m_extended)) return;
  if (write && m_backend.read_only()) {
    fail(kErrorAborted);
    return;
  }
  m_transfer = write ? Transfer::WriteSectors : Transfer::ReadSectors;
  m_next_lba = request.lba;
  m_sectors_remaining = request.count;
  if (write) {
    m_buffer_position = 0;
    // PIO data-out: the first DRQ block comes without an interrupt; the
    // host polls for DRQ (ATA8-APT, PIO data-out protocol).
    m_status = kStatusDeviceReady | kStatusDataRequest;
    return;
  }
  if (!load_sector()) return;
  // PIO data-in: DRQ and an interrupt for each block (ATA8-APT).
  m_status = kStatusDeviceReady | kStatusDataRequest;
  raise_interrupt();
}

void AtaDisk::flush_cache() {
  if (auto flushed = m_backend.flush(); !flushed) {
    fail(kErrorAborted, kStatusDeviceFault);
    return;
  }
  complete();
}

bool AtaDisk::load_sector() {
  if (auto read = m_backend.read(m_next_lba * kSectorSize, m_buffer); !read) {
    set_lba_registers(m_next_lba);
    fail(kErrorUncorrectable);
    return false;
  }
  m_buffer_position = 0;
  return true;
}

void AtaDisk::finish_data_in_block() {
  if (m_transfer == Transfer::ReadSectors) {
    ++m_sectors_read;
    ++m_next_lba;
  }
  --m_sectors_remaining;
  if (m_sectors_remaining == 0) {
    // The last block of a PIO data-in command ends it with no interrupt.
    m_transfer = Transfer::None;
    m_status = kStatusDeviceReady;
    return;
  }
  if (!load_sector()) return;
  m_status = kStatusDeviceReady | kStatusDataRequest;
  raise_interrupt();
}

void AtaDisk::finish_data_out_block() {
  if (auto written = m_backend.write(m_next_lba * kSectorSize, m_buffer); !written) {
    set_lba_registers(m_next_lba);
    fail(kErrorAborted, kStatusDeviceFault);
    return;
  }
  ++m_sectors_written;
  ++m_next_lba;
  --m_sectors_remaining;
  m_buffer_position = 0;
  if (m_sectors_remaining == 0) {
    complete();
    return;
  }
  // The next DRQ block, announced by an interrupt (ATA8-APT, PIO data-out).
  m_status = kStatusDeviceReady | kStatusDataRequest;
  raise_interrupt();
}

void AtaDisk::complete() {
  m_transfer = Transfer::None;
  m_status = kStatusDeviceReady;
  raise_interrupt();
}

void AtaDisk::fail(std::uint8_t error, std::uint8_t extra_status) {
  ++m_commands_failed;
  m_transfer = Transfer::None;
  m_error = error;
  m_status = static_cast<std::uint8_t>(kStatusDeviceReady | kStatusError | extra_status);
  raise_interrupt();
}

void AtaDisk::set_lba_registers(std::uint64_t lba) {
  auto byte = [lba](unsigned shift) { return static_cast<std::uint8_t>(lba >> shift); };
  m_lba_low.current = byte(0);
  m_lba_mid.current = byte(8);
  m_lba_high.current = byte(16);
  if (m_extended) {
    m_lba_low.previous = byte(24);
    m_lba_mid.previous = byte(32);
    m_lba_high.previous = byte(40);
  } else {
    m_device =
        static_cast<std::uint8_t>((m_device & ~kDeviceLba28High) | (byte(24) & kDeviceLba28High));
  }
}

// --- Interrupt ---------------------------------------------------------------

bool AtaDisk::device_one_selected() const {
  return (m_device & kDeviceSelect) != 0;
}

bool AtaDisk::resetting() const {
  return (m_device_control & kControlSoftwareReset) != 0;
}

void AtaDisk::raise_interrupt() {
  m_interrupt_pending = true;
  update_irq();
}

void AtaDisk::update_irq() {
  const bool level = m_interrupt_pending && (m_device_control & kControlInterruptDisable) == 0 &&
                     !device_one_selected();
  if (level == m_irq_level) return;
  m_irq_level = level;
  if (level) ++m_interrupts_raised;
  if (m_irq) m_irq(level);
}

}  // namespace vmlab::devices
