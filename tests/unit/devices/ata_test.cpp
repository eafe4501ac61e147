// The ATA disk driven as a guest's IDE driver drives it: port reads and writes
// through the command and control block views, nothing else.
#include <vmlab/devices/ata.hpp>
#include <vmlab/devices/memory_block_backend.hpp>
#include <vmlab/little_endian.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vmlab::devices {
namespace {

// Command block offsets (0x1F0 + n) and the control block's one port (0x3F6).
constexpr std::uint64_t kDataPort = 0;
constexpr std::uint64_t kErrorFeaturesPort = 1;
constexpr std::uint64_t kSectorCountPort = 2;
constexpr std::uint64_t kLbaLowPort = 3;
constexpr std::uint64_t kLbaMidPort = 4;
constexpr std::uint64_t kLbaHighPort = 5;
constexpr std::uint64_t kDevicePort = 6;
constexpr std::uint64_t kStatusCommandPort = 7;

constexpr std::uint8_t kStatusBusy = 0x80;
constexpr std::uint8_t kStatusReady = 0x40;
constexpr std::uint8_t kStatusFault = 0x20;
constexpr std::uint8_t kStatusDataRequest = 0x08;
constexpr std::uint8_t kStatusError = 0x01;

constexpr std::uint8_t kErrorAborted = 0x04;
constexpr std::uint8_t kErrorIdNotFound = 0x10;
constexpr std::uint8_t kErrorUncorrectable = 0x40;

constexpr std::uint8_t kControlNoInterrupt = 0x02;
constexpr std::uint8_t kControlReset = 0x04;
constexpr std::uint8_t kControlHighOrder = 0x80;

constexpr std::uint8_t kDeviceLbaMaster = 0xe0;  // obsolete bits 7 and 5 set, as drivers do
constexpr std::uint8_t kDeviceLbaSlave = 0xf0;

constexpr std::uint8_t kReadSectors = 0x20;
constexpr std::uint8_t kReadSectorsExt = 0x24;
constexpr std::uint8_t kWriteSectors = 0x30;
constexpr std::uint8_t kWriteSectorsExt = 0x34;
constexpr std::uint8_t kFlushCache = 0xe7;
constexpr std::uint8_t kFlushCacheExt = 0xea;
constexpr std::uint8_t kIdentifyDevice = 0xec;
constexpr std::uint8_t kSetFeatures = 0xef;

constexpr std::size_t kWordsPerSector = kSectorSize / 2;

// A disk far larger than memory: only written sectors are stored, the rest
// read as a pattern derived from the sector number.
class SparseBackend final : public BlockBackend {
 public:
  explicit SparseBackend(std::uint64_t sectors) : m_sectors(sectors) {}
  std::uint64_t size_bytes() const override { return m_sectors * kSectorSize; }
  bool read_only() const override { return false; }
  std::string serial() const override { return "sparse"; }
  Status read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    if (offset % kSectorSize != 0 || out.size() != kSectorSize || offset >= size_bytes()) {
      return Error{DiskError::kOutOfRange, "bad sparse read"};
    }
    const std::uint64_t sector = offset / kSectorSize;
    auto found = m_written.find(sector);
    for (std::size_t index = 0; index < kSectorSize; ++index) {
      out[index] = found != m_written.end() ? found->second[index]
                                            : static_cast<std::uint8_t>(sector + index);
    }
    return {};
  }
  Status write(std::uint64_t offset, std::span<const std::uint8_t> in) override {
    if (offset % kSectorSize != 0 || in.size() != kSectorSize || offset >= size_bytes()) {
      return Error{DiskError::kOutOfRange, "bad sparse write"};
    }
    auto& sector = m_written[offset / kSectorSize];
    std::copy(in.begin(), in.end(), sector.begin());
    return {};
  }
  Status flush() override { return {}; }
  const std::map<std::uint64_t, std::array<std::uint8_t, kSectorSize>>& written() const {
    return m_written;
  }

 private:
  std::uint64_t m_sectors;
  std::map<std::uint64_t, std::array<std::uint8_t, kSectorSize>> m_written;
};

// What a guest driver does with the ports, one helper per instruction.
class Guest {
 public:
  explicit Guest(BlockBackend& backend) : m_disk(backend, irq_line()) {}
  // With a disk of its own: `sectors` sectors in memory, backend().
  explicit Guest(std::uint64_t sectors)
      : m_own_backend(std::make_unique<MemoryBlockBackend>(sectors)),
        m_disk(*m_own_backend, irq_line()) {}

  MemoryBlockBackend& backend() { return *m_own_backend; }

  std::uint8_t in(std::uint64_t port) {
    std::uint8_t value = 0;
    m_disk.command_block().read(port, std::span(&value, 1));
    return value;
  }
  void out(std::uint64_t port, std::uint8_t value) {
    m_disk.command_block().write(port, std::span(&value, 1));
  }
  // Data port accesses of 2 and 4 bytes, little endian as x86 port I/O is.
  std::uint16_t inw() { return static_cast<std::uint16_t>(read_data<2>()); }
  std::uint32_t inl() { return static_cast<std::uint32_t>(read_data<4>()); }
  void outw(std::uint16_t word) { write_data<2>(word); }
  void outl(std::uint32_t value) { write_data<4>(value); }
  template <std::size_t Width>
  std::uint64_t read_data() {
    std::array<std::uint8_t, Width> bytes{};
    m_disk.command_block().read(kDataPort, bytes);
    return load_little_endian(bytes);
  }
  template <std::size_t Width>
  void write_data(std::uint64_t value) {
    std::array<std::uint8_t, Width> bytes{};
    store_little_endian(bytes, value);
    m_disk.command_block().write(kDataPort, bytes);
  }
  std::uint8_t status() { return in(kStatusCommandPort); }
  // The command ended with ERR in Status and `error` in the Error register.
  ::testing::AssertionResult failed_with(std::uint8_t error) {
    const std::uint8_t status_now = status();
    const std::uint8_t error_now = in(kErrorFeaturesPort);
    if (status_now == (kStatusReady | kStatusError) && error_now == error) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "status " << int{status_now} << ", error "
                                         << int{error_now} << ", not error " << int{error};
  }
  std::uint8_t alternate_status() {
    std::uint8_t value = 0;
    m_disk.control_block().read(0, std::span(&value, 1));
    return value;
  }
  void device_control(std::uint8_t value) { m_disk.control_block().write(0, std::span(&value, 1)); }
  void command(std::uint8_t opcode) { out(kStatusCommandPort, opcode); }

  void select_lba28(std::uint32_t lba, std::uint8_t count) {
    out(kSectorCountPort, count);
    out(kLbaLowPort, static_cast<std::uint8_t>(lba));
    out(kLbaMidPort, static_cast<std::uint8_t>(lba >> 8));
    out(kLbaHighPort, static_cast<std::uint8_t>(lba >> 16));
    out(kDevicePort, static_cast<std::uint8_t>(kDeviceLbaMaster | ((lba >> 24) & 0x0f)));
  }
  // High-order bytes first, as the 48-bit Address feature set requires.
  void select_lba48(std::uint64_t lba, std::uint16_t count) {
    out(kSectorCountPort, static_cast<std::uint8_t>(count >> 8));
    out(kLbaLowPort, static_cast<std::uint8_t>(lba >> 24));
    out(kLbaMidPort, static_cast<std::uint8_t>(lba >> 32));
    out(kLbaHighPort, static_cast<std::uint8_t>(lba >> 40));
    out(kSectorCountPort, static_cast<std::uint8_t>(count));
    out(kLbaLowPort, static_cast<std::uint8_t>(lba));
    out(kLbaMidPort, static_cast<std::uint8_t>(lba >> 8));
    out(kLbaHighPort, static_cast<std::uint8_t>(lba >> 16));
    out(kDevicePort, 0x40);
  }
  // A command on `count` sectors from `lba`, with 28-bit or 48-bit addressing.
  void issue_lba28(std::uint8_t opcode, std::uint32_t lba, std::uint8_t count) {
    select_lba28(lba, count);
    command(opcode);
  }
  void issue_lba48(std::uint8_t opcode, std::uint64_t lba, std::uint16_t count) {
    select_lba48(lba, count);
    command(opcode);
  }
  std::uint64_t lba48_registers() {
    std::uint64_t lba = in(kLbaLowPort) | std::uint64_t{in(kLbaMidPort)} << 8 |
                        std::uint64_t{in(kLbaHighPort)} << 16;
    device_control(kControlHighOrder);
    lba |= std::uint64_t{in(kLbaLowPort)} << 24 | std::uint64_t{in(kLbaMidPort)} << 32 |
           std::uint64_t{in(kLbaHighPort)} << 40;
    device_control(0);
    return lba;
  }

  std::vector<std::uint16_t> read_block() {
    std::vector<std::uint16_t> words(kWordsPerSector);
    for (auto& word : words)
      word = inw();
    return words;
  }
  std::vector<std::uint8_t> read_sector() {
    std::vector<std::uint8_t> bytes;
    for (const std::uint16_t word : read_block()) {
      bytes.push_back(static_cast<std::uint8_t>(word));
      bytes.push_back(static_cast<std::uint8_t>(word >> 8));
    }
    return bytes;
  }
  // Reads DRQ blocks for as long as the device offers one: how many it did.
  int read_all_blocks() {
    int blocks = 0;
    while ((status() & kStatusDataRequest) != 0) {
      read_block();
      ++blocks;
    }
    return blocks;
  }
  void write_sector(std::span<const std::uint8_t> bytes) {
    for (std::size_t index = 0; index < kSectorSize; index += 2) {
      outw(static_cast<std::uint16_t>(bytes[index] | bytes[index + 1] << 8));
    }
  }

  IrqLine irq_line() {
    return [this](bool level) {
      if (level && !m_irq) ++m_rising_edges;
      m_irq = level;
    };
  }

  std::unique_ptr<MemoryBlockBackend> m_own_backend;  // declared before the disk it backs
  AtaDisk m_disk;
  bool m_irq = false;
  int m_rising_edges = 0;
};

std::vector<std::uint8_t> sector_pattern(std::uint8_t seed) {
  std::vector<std::uint8_t> bytes(kSectorSize);
  for (std::size_t index = 0; index < kSectorSize; ++index) {
    bytes[index] = static_cast<std::uint8_t>(seed * 31 + index);
  }
  return bytes;
}

std::vector<std::uint8_t> as_vector(std::span<const std::uint8_t> bytes) {
  return {bytes.begin(), bytes.end()};
}

std::string ata_string(const std::vector<std::uint16_t>& words, std::size_t first,
                       std::size_t count) {
  std::string text;
  for (std::size_t index = first; index < first + count; ++index) {
    text += static_cast<char>(words[index] >> 8);
    text += static_cast<char>(words[index] & 0xff);
  }
  return text;
}

std::vector<std::uint16_t> identify(Guest& guest) {
  guest.command(kIdentifyDevice);
  EXPECT_EQ(guest.status(), kStatusReady | kStatusDataRequest);
  return guest.read_block();
}

TEST(AtaTest, PowerOnLeavesTheResetSignature) {
  Guest guest(64);
  EXPECT_EQ(guest.in(kSectorCountPort), 0x01);
  EXPECT_EQ(guest.in(kLbaLowPort), 0x01);
  EXPECT_EQ(guest.in(kLbaMidPort), 0x00);
  EXPECT_EQ(guest.in(kLbaHighPort), 0x00);
  EXPECT_EQ(guest.in(kDevicePort), 0x00);
  EXPECT_EQ(guest.in(kErrorFeaturesPort), 0x01);  // diagnostic code: passed
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_FALSE(guest.m_irq);
  EXPECT_FALSE(guest.m_disk.irq_level());
}

TEST(AtaTest, IdentifyDeviceDescribesTheDisk) {
  MemoryBlockBackend backend(1000, DiskAccess::ReadWrite, "SERIAL-0123");
  Guest guest(backend);
  guest.command(kIdentifyDevice);
  EXPECT_TRUE(guest.m_irq);  // PIO data-in: the block is announced by INTRQ
  EXPECT_EQ(guest.status(), kStatusReady | kStatusDataRequest);
  EXPECT_FALSE(guest.m_irq);
  const std::vector<std::uint16_t> words = guest.read_block();
  EXPECT_EQ(guest.status(), kStatusReady);  // DRQ drops after the one block
  EXPECT_EQ(guest.m_rising_edges, 1);       // and no interrupt follows it

  EXPECT_EQ(words[0] & 0x8000, 0);   // an ATA device
  EXPECT_EQ(words[47] & 0x00ff, 0);  // no READ/WRITE MULTIPLE
  EXPECT_NE(words[49] & 0x0200, 0);  // LBA supported
  EXPECT_EQ(words[49] & 0x0100, 0);  // no DMA
  EXPECT_EQ(words[50] & 0xc000, 0x4000);
  EXPECT_EQ(words[59] & 0x0100, 0);  // no multiple sector setting
  EXPECT_EQ(words[60] | words[61] << 16, 1000);
  EXPECT_NE(words[80], 0x0000);
  EXPECT_NE(words[80], 0xffff);
  EXPECT_NE(words[80] & 0x0100, 0);       // ATA8-ACS
  EXPECT_EQ(words[83] & 0xc000, 0x4000);  // word valid
  EXPECT_NE(words[83] & 0x0400, 0);       // 48-bit Address supported
  EXPECT_NE(words[83] & 0x1000, 0);       // FLUSH CACHE
  EXPECT_NE(words[83] & 0x2000, 0);       // FLUSH CACHE EXT
  EXPECT_NE(words[86] & 0x0400, 0);       // 48-bit Address enabled
  EXPECT_EQ(words[87] & 0xc000, 0x4000);
  EXPECT_EQ(words[88], 0);  // no Ultra DMA
  EXPECT_EQ(words[100] | words[101] << 16, 1000);
  EXPECT_EQ(words[102], 0);
  EXPECT_EQ(words[103], 0);

  // ATA strings: first character in bits 15:8, space padded.
  EXPECT_EQ(words[10], ('S' << 8) | 'E');
  EXPECT_EQ(ata_string(words, 10, 10), "SERIAL-0123         ");
  EXPECT_EQ(ata_string(words, 27, 20).substr(0, 14), "vmlab ATA disk");
  EXPECT_EQ(ata_string(words, 27, 20).size(), 40u);
  EXPECT_EQ(ata_string(words, 23, 4), "0.1.0   ");

  // Integrity word: A5h signature, and all 512 bytes sum to 0 modulo 256.
  EXPECT_EQ(words[255] & 0xff, 0xa5);
  unsigned sum = 0;
  for (const std::uint16_t word : words)
    sum += (word & 0xffu) + (word >> 8);
  EXPECT_EQ(sum % 256, 0u);

  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::IdentifyDevice), 1u);
  EXPECT_EQ(guest.m_disk.sectors_read(), 0u);  // IDENTIFY data is not a sector
}

TEST(AtaTest, IdentifyCapsTheLba28CapacityOnALargeDisk) {
  const std::uint64_t sectors = (std::uint64_t{1} << 33) + 5;  // 4 TiB and a bit
  SparseBackend backend(sectors);
  Guest guest(backend);
  const auto words = identify(guest);
  EXPECT_EQ(words[60] | words[61] << 16, 0x0fffffff);
  std::uint64_t lba48_capacity = 0;
  for (int index = 3; index >= 0; --index) {
    lba48_capacity = lba48_capacity << 16 | words[100 + static_cast<std::size_t>(index)];
  }
  EXPECT_EQ(lba48_capacity, sectors);
  EXPECT_EQ(ata_string(words, 10, 10), "sparse              ");
}

TEST(AtaTest, Lba28ReadDeliversOneInterruptAndDrqBlockPerSector) {
  MemoryBlockBackend backend(64);
  for (std::uint8_t sector = 5; sector < 8; ++sector) {
    const auto bytes = sector_pattern(sector);
    std::copy(bytes.begin(), bytes.end(), backend.sector(sector).begin());
  }
  Guest guest(backend);
  guest.issue_lba28(kReadSectors, 5, 3);
  for (std::uint8_t sector = 5; sector < 8; ++sector) {
    ASSERT_TRUE(guest.m_irq) << "sector " << int{sector};
    // Alternate Status shows the same bits without acknowledging.
    EXPECT_EQ(guest.alternate_status(), kStatusReady | kStatusDataRequest);
    EXPECT_TRUE(guest.m_irq);
    EXPECT_EQ(guest.status(), kStatusReady | kStatusDataRequest);
    EXPECT_FALSE(guest.m_irq);
    EXPECT_EQ(guest.read_sector(), sector_pattern(sector));
  }
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_FALSE(guest.m_irq);
  EXPECT_EQ(guest.m_rising_edges, 3);
  EXPECT_EQ(guest.m_disk.interrupts_raised(), 3u);
  EXPECT_EQ(guest.m_disk.sectors_read(), 3u);
  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::ReadSectors), 1u);
  EXPECT_EQ(guest.inw(), 0xffff);  // the transfer is over
}

TEST(AtaTest, Lba28WriteStoresEachSectorAsItsBlockCompletes) {
  Guest guest(64);
  guest.issue_lba28(kWriteSectors, 10, 2);
  // PIO data-out: DRQ for the first block without an interrupt.
  EXPECT_FALSE(guest.m_irq);
  EXPECT_EQ(guest.alternate_status(), kStatusReady | kStatusDataRequest);

  guest.write_sector(sector_pattern(1));
  EXPECT_EQ(as_vector(guest.backend().sector(10)), sector_pattern(1));
  EXPECT_TRUE(guest.m_irq);  // the next block is wanted
  EXPECT_EQ(guest.status(), kStatusReady | kStatusDataRequest);
  EXPECT_FALSE(guest.m_irq);

  // Half of the second block does not reach the backend yet.
  const auto second = sector_pattern(2);
  for (std::size_t index = 0; index < kSectorSize / 2; index += 2) {
    guest.outw(static_cast<std::uint16_t>(second[index] | second[index + 1] << 8));
  }
  EXPECT_EQ(guest.backend().writes(), 1u);
  for (std::size_t index = kSectorSize / 2; index < kSectorSize; index += 2) {
    guest.outw(static_cast<std::uint16_t>(second[index] | second[index + 1] << 8));
  }
  EXPECT_EQ(as_vector(guest.backend().sector(11)), second);
  EXPECT_TRUE(guest.m_irq);  // command completion
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_EQ(guest.m_rising_edges, 2);
  EXPECT_EQ(guest.m_disk.sectors_written(), 2u);

  // And back through the disk.
  guest.issue_lba28(kReadSectors, 10, 2);
  EXPECT_EQ(guest.read_sector(), sector_pattern(1));
  EXPECT_EQ(guest.read_sector(), second);
}

TEST(AtaTest, Lba28UsesTheDeviceRegisterForBits27To24) {
  SparseBackend backend(std::uint64_t{1} << 28);
  Guest guest(backend);
  const std::uint32_t lba = 0x0abc'def1;
  guest.issue_lba28(kWriteSectors, lba, 1);
  guest.write_sector(sector_pattern(9));
  EXPECT_EQ(guest.status(), kStatusReady);
  ASSERT_EQ(backend.written().size(), 1u);
  EXPECT_EQ(backend.written().begin()->first, lba);
}

TEST(AtaTest, Lba48RoundTripsAboveTheLba28Limit) {
  SparseBackend backend(std::uint64_t{1} << 40);
  Guest guest(backend);
  const std::uint64_t lba = 0x12'3456'789a;
  guest.issue_lba48(kWriteSectorsExt, lba, 2);
  guest.write_sector(sector_pattern(3));
  guest.write_sector(sector_pattern(4));
  EXPECT_EQ(guest.status(), kStatusReady);
  ASSERT_EQ(backend.written().size(), 2u);
  EXPECT_EQ(backend.written().begin()->first, lba);
  EXPECT_EQ(backend.written().rbegin()->first, lba + 1);

  guest.issue_lba48(kReadSectorsExt, lba, 2);
  EXPECT_EQ(guest.read_sector(), sector_pattern(3));
  EXPECT_EQ(guest.read_sector(), sector_pattern(4));
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::WriteSectorsExt), 1u);
  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::ReadSectorsExt), 1u);
}

TEST(AtaTest, Lba48SectorCountUsesBothBytes) {
  Guest guest(600);
  // 0x0102 = 258 sectors: one more than an 8-bit count could say.
  guest.issue_lba48(kReadSectorsExt, 0, 0x0102);
  EXPECT_EQ(guest.read_all_blocks(), 258);
  EXPECT_EQ(guest.m_rising_edges, 258);
}

TEST(AtaTest, SectorCountZeroMeans256ForLba28) {
  Guest guest(300);
  guest.issue_lba28(kReadSectors, 0, 0);
  EXPECT_EQ(guest.read_all_blocks(), 256);
  EXPECT_EQ(guest.m_disk.sectors_read(), 256u);
}

TEST(AtaTest, SectorCountZeroMeans65536ForLba48) {
  // Checked by the range it asks for: 65536 sectors fit from 0 but not from 1.
  Guest guest(65536);
  guest.issue_lba48(kReadSectorsExt, 1, 0);
  EXPECT_TRUE(guest.failed_with(kErrorIdNotFound));

  guest.issue_lba48(kReadSectorsExt, 0, 0);
  EXPECT_EQ(guest.status(), kStatusReady | kStatusDataRequest);
}

TEST(AtaTest, HobSelectsThePreviousRegisterContents) {
  Guest guest(8);
  guest.select_lba48(0x0605'0403'0201, 0x0807);
  EXPECT_EQ(guest.in(kSectorCountPort), 0x07);
  EXPECT_EQ(guest.in(kLbaLowPort), 0x01);
  EXPECT_EQ(guest.in(kLbaHighPort), 0x03);
  guest.device_control(kControlHighOrder);
  EXPECT_EQ(guest.in(kSectorCountPort), 0x08);
  EXPECT_EQ(guest.in(kLbaLowPort), 0x04);
  EXPECT_EQ(guest.in(kLbaMidPort), 0x05);
  EXPECT_EQ(guest.in(kLbaHighPort), 0x06);
  // Any command block write clears HOB.
  guest.out(kErrorFeaturesPort, 0);
  EXPECT_EQ(guest.in(kLbaLowPort), 0x01);
}

TEST(AtaTest, StatusReadAcknowledgesTheInterruptAndAlternateStatusDoesNot) {
  Guest guest(8);
  guest.command(kFlushCache);
  EXPECT_TRUE(guest.m_irq);
  for (int repeat = 0; repeat < 3; ++repeat)
    EXPECT_EQ(guest.alternate_status(), kStatusReady);
  EXPECT_TRUE(guest.m_irq);
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_FALSE(guest.m_irq);
  EXPECT_EQ(guest.m_rising_edges, 1);
}

TEST(AtaTest, ACommandWithAnInterruptPendingStillMakesANewEdge) {
  Guest guest(8);
  guest.command(kFlushCache);
  guest.command(kFlushCache);  // the driver never read Status in between
  EXPECT_TRUE(guest.m_irq);
  EXPECT_EQ(guest.m_rising_edges, 2);
}

TEST(AtaTest, NienKeepsTheLineLowButNotThePendingInterrupt) {
  Guest guest(8);
  guest.device_control(kControlNoInterrupt);
  guest.issue_lba28(kReadSectors, 0, 2);
  EXPECT_FALSE(guest.m_irq);
  EXPECT_EQ(guest.alternate_status(), kStatusReady | kStatusDataRequest);  // polled
  guest.read_block();
  guest.read_block();
  EXPECT_EQ(guest.alternate_status(), kStatusReady);
  EXPECT_EQ(guest.m_rising_edges, 0);
  EXPECT_EQ(guest.m_disk.interrupts_raised(), 0u);

  // An interrupt raised under nIEN stays pending and shows when it clears.
  guest.command(kFlushCache);
  EXPECT_FALSE(guest.m_irq);
  guest.device_control(0);
  EXPECT_TRUE(guest.m_irq);
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_FALSE(guest.m_irq);
}

TEST(AtaTest, FlushCacheReachesTheBackend) {
  Guest guest(8);
  guest.command(kFlushCache);
  EXPECT_EQ(guest.backend().flushes(), 1u);
  EXPECT_EQ(guest.status(), kStatusReady);
  guest.out(kDevicePort, 0x40);
  guest.command(kFlushCacheExt);
  EXPECT_EQ(guest.backend().flushes(), 2u);
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_EQ(guest.m_rising_edges, 2);
  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::FlushCache), 1u);
  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::FlushCacheExt), 1u);
}

TEST(AtaTest, FailedFlushIsAWriteFault) {
  MemoryBlockBackend backend(8);
  backend.fail_flushes(true);
  Guest guest(backend);
  guest.command(kFlushCache);
  EXPECT_TRUE(guest.m_irq);
  EXPECT_EQ(guest.status(), kStatusReady | kStatusFault | kStatusError);
  EXPECT_EQ(guest.in(kErrorFeaturesPort), kErrorAborted);
  EXPECT_EQ(guest.m_disk.commands_failed(), 1u);
}

TEST(AtaTest, SetFeaturesIsAcceptedAndChangesNothing) {
  Guest guest(8);
  guest.out(kErrorFeaturesPort, 0x03);  // set transfer mode
  guest.out(kSectorCountPort, 0x0c);    // PIO mode 4
  guest.command(kSetFeatures);
  EXPECT_TRUE(guest.m_irq);
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::SetFeatures), 1u);
}

TEST(AtaTest, SoftwareResetAbandonsTheCommandAndRestoresTheSignature) {
  Guest guest(8);
  guest.issue_lba28(kReadSectors, 1, 2);
  ASSERT_TRUE(guest.m_irq);
  guest.inw();

  guest.device_control(kControlReset);
  EXPECT_FALSE(guest.m_irq);  // reset clears the pending interrupt
  EXPECT_EQ(guest.alternate_status(), kStatusBusy);
  EXPECT_EQ(guest.status(), kStatusBusy);
  guest.out(kLbaLowPort, 0x55);  // ignored while BSY
  guest.command(kIdentifyDevice);
  EXPECT_EQ(guest.inw(), 0xffff);

  guest.device_control(0);
  EXPECT_FALSE(guest.m_irq);  // the software reset protocol raises no interrupt
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_EQ(guest.in(kErrorFeaturesPort), 0x01);
  EXPECT_EQ(guest.in(kSectorCountPort), 0x01);
  EXPECT_EQ(guest.in(kLbaLowPort), 0x01);
  EXPECT_EQ(guest.in(kLbaMidPort), 0x00);
  EXPECT_EQ(guest.in(kLbaHighPort), 0x00);
  EXPECT_EQ(guest.in(kDevicePort), 0x00);
  EXPECT_EQ(guest.inw(), 0xffff);  // nothing left of the read
  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::IdentifyDevice), 0u);

  // And the disk works again.
  const auto words = identify(guest);
  EXPECT_EQ(words[255] & 0xff, 0xa5);
}

TEST(AtaTest, DeviceOneIsAbsent) {
  Guest guest(8);
  guest.out(kDevicePort, kDeviceLbaSlave);
  EXPECT_EQ(guest.status(), 0x00);
  EXPECT_EQ(guest.alternate_status(), 0x00);
  // Device 0 answers for it in the other registers.
  guest.out(kSectorCountPort, 0x55);
  EXPECT_EQ(guest.in(kSectorCountPort), 0x55);
  EXPECT_EQ(guest.in(kDevicePort), kDeviceLbaSlave);

  guest.command(kIdentifyDevice);
  guest.command(kWriteSectors);
  EXPECT_FALSE(guest.m_irq);
  EXPECT_EQ(guest.inw(), 0xffff);
  guest.outw(0x1234);
  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::IdentifyDevice), 0u);
  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::WriteSectors), 0u);

  guest.out(kDevicePort, kDeviceLbaMaster);
  EXPECT_EQ(guest.status(), kStatusReady);  // no DRQ: nothing was started
  EXPECT_EQ(guest.backend().writes(), 0u);
}

TEST(AtaTest, DeselectingDeviceZeroReleasesInterruptLine) {
  Guest guest(8);
  guest.command(kFlushCache);
  EXPECT_TRUE(guest.m_irq);
  guest.out(kDevicePort, kDeviceLbaSlave);
  EXPECT_FALSE(guest.m_irq);
  guest.out(kDevicePort, kDeviceLbaMaster);
  EXPECT_TRUE(guest.m_irq);  // still pending: Status of device 1 acknowledged nothing
}

TEST(AtaTest, ReadPastTheEndIsIdNotFoundAndTransfersNothing) {
  Guest guest(100);
  for (const auto& [lba, count] :
       {std::pair<std::uint32_t, std::uint8_t>{99, 2}, {100, 1}, {0x0fff'ffff, 1}, {0, 0}}) {
    guest.issue_lba28(kReadSectors, lba, count);
    EXPECT_TRUE(guest.m_irq);
    EXPECT_TRUE(guest.failed_with(kErrorIdNotFound)) << lba;
    EXPECT_EQ(guest.inw(), 0xffff);
  }
  // The LBA registers name the first sector that is not there.
  guest.issue_lba28(kReadSectors, 99, 2);
  EXPECT_EQ(guest.in(kLbaLowPort), 100);
  EXPECT_EQ(guest.backend().reads(), 0u);
  EXPECT_EQ(guest.m_disk.sectors_read(), 0u);
  EXPECT_EQ(guest.m_disk.commands_failed(), 5u);
}

TEST(AtaTest, WritePastTheEndLeavesTheBackendUnchanged) {
  Guest guest(100);
  guest.issue_lba28(kWriteSectors, 98, 3);
  EXPECT_TRUE(guest.failed_with(kErrorIdNotFound));
  guest.write_sector(sector_pattern(1));  // a driver that ignores the error
  guest.write_sector(sector_pattern(2));

  guest.issue_lba48(kWriteSectorsExt, 100, 1);
  EXPECT_TRUE(guest.failed_with(kErrorIdNotFound));
  EXPECT_EQ(guest.lba48_registers(), 100u);
  guest.write_sector(sector_pattern(3));

  guest.issue_lba48(kWriteSectorsExt, std::uint64_t{1} << 47, 1);
  EXPECT_EQ(guest.in(kErrorFeaturesPort), kErrorIdNotFound);
  EXPECT_EQ(guest.lba48_registers(), std::uint64_t{1} << 47);

  EXPECT_EQ(guest.backend().writes(), 0u);
  for (const std::uint8_t byte : guest.backend().contents())
    ASSERT_EQ(byte, 0);
  EXPECT_GT(guest.m_disk.stray_data_accesses(), 0u);
}

TEST(AtaTest, WriteToAReadOnlyDiskIsAbortedAndChangesNothing) {
  MemoryBlockBackend backend(16, DiskAccess::ReadOnly);
  backend.sector(2)[0] = 0x77;
  Guest guest(backend);
  guest.issue_lba28(kWriteSectors, 2, 1);
  EXPECT_TRUE(guest.m_irq);
  EXPECT_TRUE(guest.failed_with(kErrorAborted));
  guest.write_sector(sector_pattern(5));
  EXPECT_EQ(backend.sector(2)[0], 0x77);
  EXPECT_EQ(backend.writes(), 0u);

  // Reading still works.
  guest.issue_lba28(kReadSectors, 2, 1);
  EXPECT_EQ(guest.status(), kStatusReady | kStatusDataRequest);
  EXPECT_EQ(guest.inw() & 0xff, 0x77);
}

TEST(AtaTest, BackendReadFailureIsUncorrectableAtTheFailingSector) {
  MemoryBlockBackend backend(16);
  backend.fail_sector(6);
  Guest guest(backend);
  guest.issue_lba28(kReadSectors, 5, 3);
  EXPECT_EQ(guest.status(), kStatusReady | kStatusDataRequest);
  guest.read_block();  // sector 5 is fine; loading 6 fails
  EXPECT_TRUE(guest.m_irq);
  EXPECT_TRUE(guest.failed_with(kErrorUncorrectable));
  EXPECT_EQ(guest.in(kLbaLowPort), 6);
  EXPECT_EQ(guest.inw(), 0xffff);
  EXPECT_EQ(guest.m_disk.sectors_read(), 1u);

  // Failing on the first sector reports it before any DRQ.
  guest.issue_lba28(kReadSectors, 6, 1);
  EXPECT_TRUE(guest.failed_with(kErrorUncorrectable));
}

TEST(AtaTest, BackendWriteFailureIsAWriteFault) {
  MemoryBlockBackend backend(16);
  backend.fail_writes(true);
  Guest guest(backend);
  guest.issue_lba48(kWriteSectorsExt, 3, 2);
  guest.write_sector(sector_pattern(1));
  EXPECT_TRUE(guest.m_irq);
  EXPECT_EQ(guest.status(), kStatusReady | kStatusFault | kStatusError);
  EXPECT_EQ(guest.in(kErrorFeaturesPort), kErrorAborted);
  EXPECT_EQ(guest.lba48_registers(), 3u);
  guest.write_sector(sector_pattern(2));  // dropped: the command is over
  EXPECT_EQ(guest.m_disk.sectors_written(), 0u);
  for (const std::uint8_t byte : backend.contents())
    ASSERT_EQ(byte, 0);
}

TEST(AtaTest, UnknownCommandsAreAborted) {
  Guest guest(16);
  // NOP, READ DMA, WRITE DMA, SET MULTIPLE MODE, READ MULTIPLE, PACKET, and
  // garbage.
  const std::array<std::uint8_t, 7> opcodes{0x00, 0xc8, 0xca, 0xc6, 0xc4, 0xa0, 0xff};
  for (const std::uint8_t opcode : opcodes) {
    guest.command(opcode);
    EXPECT_TRUE(guest.m_irq) << int{opcode};
    EXPECT_TRUE(guest.failed_with(kErrorAborted)) << int{opcode};
  }
  EXPECT_EQ(guest.m_disk.commands(AtaCommandKind::Unsupported), opcodes.size());
  // The next good command clears the error.
  guest.command(kFlushCache);
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_EQ(guest.in(kErrorFeaturesPort), 0x00);
}

TEST(AtaTest, ChsAddressingIsAborted) {
  Guest guest(16);
  guest.out(kSectorCountPort, 1);
  guest.out(kLbaLowPort, 1);  // sector 1
  guest.out(kDevicePort, 0xa0);
  guest.command(kReadSectors);
  EXPECT_TRUE(guest.failed_with(kErrorAborted));
  EXPECT_EQ(guest.backend().reads(), 0u);
}

TEST(AtaTest, DataPortWithNoCommandReadsAllOnesAndDropsWrites) {
  Guest guest(16);
  EXPECT_EQ(guest.inw(), 0xffff);
  EXPECT_EQ(guest.inl(), 0xffffffffu);
  EXPECT_EQ(guest.in(kDataPort), 0xff);
  guest.outw(0x1234);
  guest.outl(0xdeadbeef);
  guest.out(kDataPort, 0x12);
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_FALSE(guest.m_irq);
  EXPECT_EQ(guest.backend().writes(), 0u);
  EXPECT_EQ(guest.m_disk.stray_data_accesses(), 6u);

  // After a completed read the buffer is not readable again.
  guest.backend().sector(0)[0] = 0x42;
  guest.issue_lba28(kReadSectors, 0, 1);
  guest.read_block();
  EXPECT_EQ(guest.inw(), 0xffff);
}

TEST(AtaTest, ByteAccessToDataMovesNothing) {
  MemoryBlockBackend backend(16);
  backend.sector(0)[0] = 0x11;
  backend.sector(0)[1] = 0x22;
  Guest guest(backend);
  guest.issue_lba28(kReadSectors, 0, 1);
  EXPECT_EQ(guest.in(kDataPort), 0xff);
  EXPECT_EQ(guest.inw(), 0x2211);  // the first word is still the next one
}

TEST(AtaTest, ThirtyTwoBitDataAccessesMoveTwoWordsLowFirst) {
  Guest guest(16);
  guest.issue_lba28(kWriteSectors, 4, 1);
  for (std::uint32_t index = 0; index < kWordsPerSector / 2; ++index) {
    guest.outl(0x0101'0101u * index + 0x0403'0201u);
  }
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_EQ(guest.backend().sector(4)[0], 0x01);
  EXPECT_EQ(guest.backend().sector(4)[3], 0x04);
  EXPECT_EQ(guest.backend().sector(4)[4], 0x02);

  guest.issue_lba28(kReadSectors, 4, 1);
  for (std::uint32_t index = 0; index < kWordsPerSector / 2; ++index) {
    ASSERT_EQ(guest.inl(), 0x0101'0101u * index + 0x0403'0201u);
  }
  EXPECT_EQ(guest.status(), kStatusReady);
}

TEST(AtaTest, ACommandDuringATransferAbandonsIt) {
  Guest guest(16);
  guest.issue_lba28(kWriteSectors, 1, 2);
  for (int index = 0; index < 100; ++index)
    guest.outw(0xabcd);
  // The driver gives up and asks for IDENTIFY instead.
  const auto words = identify(guest);
  EXPECT_EQ(words[255] & 0xff, 0xa5);
  EXPECT_EQ(guest.status(), kStatusReady);
  EXPECT_EQ(guest.backend().writes(), 0u);

  guest.backend().sector(3)[0] = 0x33;
  guest.issue_lba28(kReadSectors, 2, 2);
  guest.inw();
  guest.issue_lba28(kReadSectors, 3, 1);
  EXPECT_EQ(guest.inw() & 0xff, 0x33);  // the new command's data, from its start
}

TEST(AtaTest, CountsRegisterAccesses) {
  Guest guest(16);
  guest.select_lba28(0, 1);  // 5 writes
  guest.command(kReadSectors);
  guest.status();
  guest.read_block();  // 256 reads
  guest.alternate_status();
  EXPECT_EQ(guest.m_disk.register_accesses(), 5u + 1 + 1 + 256 + 1);
}

TEST(AtaTest, CommandKindsHaveNames) {
  EXPECT_EQ(ata_command_kind_name(AtaCommandKind::ReadSectorsExt), "READ SECTORS EXT");
  EXPECT_EQ(ata_command_kind_name(AtaCommandKind::Unsupported), "unsupported");
  for (std::size_t kind = 0; kind < kAtaCommandKindCount; ++kind) {
    EXPECT_FALSE(ata_command_kind_name(static_cast<AtaCommandKind>(kind)).empty());
  }
}

TEST(AtaTest, WideAccessesToTaskFileRegistersReachConsecutivePorts) {
  Guest guest(16);
  const std::array<std::uint8_t, 4> bytes{0x11, 0x22, 0x33, 0x44};
  guest.m_disk.command_block().write(kLbaLowPort, std::span(bytes).first(3));
  EXPECT_EQ(guest.in(kLbaLowPort), 0x11);
  EXPECT_EQ(guest.in(kLbaMidPort), 0x22);
  EXPECT_EQ(guest.in(kLbaHighPort), 0x33);
  std::array<std::uint8_t, 4> back{};
  guest.m_disk.command_block().read(kLbaLowPort, back);
  EXPECT_EQ(back, (std::array<std::uint8_t, 4>{0x11, 0x22, 0x33, 0x00}));
  // The control block is one port: the byte after it is not the disk's.
  std::array<std::uint8_t, 2> control{};
  guest.m_disk.control_block().read(0, control);
  EXPECT_EQ(control[0], kStatusReady);
  EXPECT_EQ(control[1], 0x00);
}

}  // namespace
}  // namespace vmlab::devices
