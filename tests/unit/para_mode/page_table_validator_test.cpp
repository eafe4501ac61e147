#include "vmlab/para/page_table_validator.hpp"
#include "guest_layout.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "vmlab/format.hpp"

namespace vmlab::para {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)

namespace entry_bits = page_entry;

constexpr std::uint64_t kVirtioWindow = 0xfeb00000;  // 64 KiB of virtio-mmio registers
constexpr std::uint64_t kVirtioWindowSize = 0x10000;
constexpr std::uint64_t kFramebuffer = 0xc0000000;  // 4 MiB, room for 2 MiB pages
constexpr std::uint64_t kFramebufferSize = 4 * MiB;

// The guest's page-table frames come from here; the physmap maps it read-only.
constexpr std::uint64_t kPoolBase = 0x100000;
constexpr std::uint64_t kPoolSize = 0x100000;
constexpr std::uint64_t kKernelCode = 0x200000;  // identity-mapped, read-only
constexpr std::uint64_t kKernelData = 0x210000;  // identity-mapped, writable
constexpr std::uint64_t kKernelPages = 16;
constexpr std::uint64_t kDataFrame = 0x300000;  // ordinary RAM, writable in the physmap
constexpr std::uint64_t kPhysmap = 0xffff888000000000;
constexpr unsigned kMonitorSlot = 511;

// Builds 4-level tables with plain stores, as a guest does while it still
// has its boot-time writable mappings; frames come from a bump allocator.
class GuestTables {
 public:
  GuestTables(VectorGuestMemory& memory, std::uint64_t pool_base, std::uint64_t pool_size)
      : m_memory(memory), m_next(pool_base), m_pool_base(pool_base), m_pool_size(pool_size) {}

  std::uint64_t allocate() {
    EXPECT_LT(m_next, m_pool_base + m_pool_size) << "table pool exhausted";
    const std::uint64_t frame = m_next;
    m_next += kPageSize;
    for (unsigned index = 0; index < 512; ++index)
      m_memory.put(slot_address(frame, index), 0);
    m_allocated.push_back(frame);
    return frame;
  }
  bool in_pool(std::uint64_t frame) const {
    return frame >= m_pool_base && frame < m_pool_base + m_pool_size;
  }
  const std::vector<std::uint64_t>& allocated() const { return m_allocated; }

  // Where the entry for `virtual_address` at `level` lives, creating the
  // missing tables above it.
  std::uint64_t slot(std::uint64_t root, std::uint64_t virtual_address, unsigned level) {
    std::uint64_t table = root;
    for (unsigned current = 4; current > level; --current) {
      const std::uint64_t address =
          slot_address(table, monitor::table_index(GuestVirtAddr(virtual_address), current));
      std::uint64_t value = m_memory.get(address);
      if ((value & kP) == 0) {
        value = allocate() | kTableFlags;
        m_memory.put(address, value);
      }
      table = value & entry_bits::kAddressMask;
    }
    return slot_address(table, monitor::table_index(GuestVirtAddr(virtual_address), level));
  }
  // The same for tables that must exist already (the tree is pinned).
  std::uint64_t existing_slot(std::uint64_t root, std::uint64_t virtual_address,
                              unsigned level) const {
    std::uint64_t table = root;
    for (unsigned current = 4; current > level; --current) {
      const std::uint64_t value = m_memory.get(
          slot_address(table, monitor::table_index(GuestVirtAddr(virtual_address), current)));
      EXPECT_NE(value & kP, 0u) << "no level-" << current - 1 << " table for "
                                << hex(virtual_address);
      table = value & entry_bits::kAddressMask;
    }
    return slot_address(table, monitor::table_index(GuestVirtAddr(virtual_address), level));
  }
  std::uint64_t table_of(std::uint64_t root, std::uint64_t virtual_address, unsigned level) const {
    return existing_slot(root, virtual_address, level) & ~(kPageSize - 1);
  }
  void map(std::uint64_t root, std::uint64_t virtual_address, std::uint64_t value,
           unsigned level = 1) {
    m_memory.put(slot(root, virtual_address, level), value);
  }

 private:
  VectorGuestMemory& m_memory;
  std::uint64_t m_next;
  std::uint64_t m_pool_base;
  std::uint64_t m_pool_size;
  std::vector<std::uint64_t> m_allocated;
};

// With two device windows a leaf may map.
PageTableValidatorConfig make_config(std::uint64_t ram_size = kRamSize) {
  PageTableValidatorConfig config = base_config(ram_size);
  config.device_windows = {{GuestPhysAddr(kVirtioWindow), kVirtioWindowSize},
                           {GuestPhysAddr(kFramebuffer), kFramebufferSize}};
  return config;
}

// The IOMMU as the validator sees it: which frames a device may not write.
class RecordingDmaRemapping final : public DmaRemapping {
 public:
  void protect_from_device_writes(GuestPhysAddr frame, bool protect) override {
    const std::uint64_t number = frame.value() / kPageSize;
    if (protect) {
      EXPECT_TRUE(m_frames.insert(number).second) << "frame " << number << " protected twice";
    } else {
      EXPECT_EQ(m_frames.erase(number), 1u) << "frame " << number << " was not protected";
    }
  }
  const std::set<std::uint64_t>& frames() const { return m_frames; }

 private:
  std::set<std::uint64_t> m_frames;
};

// Everything the validator keeps per frame.
struct Books {
  std::vector<unsigned> levels;
  std::vector<std::uint32_t> references;
  std::vector<std::uint32_t> writable;
  std::size_t page_tables = 0;

  explicit Books(std::uint64_t ram_size)
      : levels(ram_size / kPageSize),
        references(ram_size / kPageSize),
        writable(ram_size / kPageSize) {}
};

Books books_of(const PageTableValidator& validator) {
  Books books(validator.config().guest_ram_size);
  for (std::size_t frame = 0; frame < books.levels.size(); ++frame) {
    const GuestPhysAddr address(frame * kPageSize);
    books.levels[frame] = validator.level_of(address);
    books.references[frame] = validator.reference_count(address);
    books.writable[frame] = validator.writable_mappings(address);
  }
  books.page_tables = validator.page_table_count();
  return books;
}

// "" when equal, else the first differences, readable in a failure message.
std::string differences(const Books& expected, const Books& actual) {
  std::string text;
  int reported = 0;
  if (expected.page_tables != actual.page_tables) {
    text += "page tables: expected " + std::to_string(expected.page_tables) + ", got " +
            std::to_string(actual.page_tables) + "\n";
  }
  for (std::size_t frame = 0; frame < expected.levels.size() && reported < 8; ++frame) {
    if (expected.levels[frame] != actual.levels[frame] ||
        expected.references[frame] != actual.references[frame] ||
        expected.writable[frame] != actual.writable[frame]) {
      ++reported;
      text += "frame " + hex(frame * kPageSize) + ": expected level " +
              std::to_string(expected.levels[frame]) + " references " +
              std::to_string(expected.references[frame]) + " writable " +
              std::to_string(expected.writable[frame]) + ", got level " +
              std::to_string(actual.levels[frame]) + " references " +
              std::to_string(actual.references[frame]) + " writable " +
              std::to_string(actual.writable[frame]) + "\n";
    }
  }
  return text;
}

// The validator's books recomputed from scratch from guest memory and the
// pinned roots, by a walk that shares no code with the validator, and the
// security invariants checked on the way (`violations`).
class Recomputation {
 public:
  Recomputation(const VectorGuestMemory& memory, const PageTableValidatorConfig& config)
      : m_memory(memory), m_config(config), m_books(config.guest_ram_size) {}

  Books run(const std::map<std::uint64_t, std::uint32_t>& pins) {
    for (const auto& [root, count] : pins) {
      const std::uint64_t frame = root / kPageSize;
      if (m_memory.get(slot_address(root, kMonitorSlot)) != kMonitorEntry) {
        m_violations.push_back("root " + hex(root) + " lacks the monitor entry");
      }
      m_books.references[frame] += count;
      if (m_books.levels[frame] != 0) continue;
      m_books.levels[frame] = 4;
      ++m_books.page_tables;
      walk(root, 4);
    }
    for (std::size_t frame = 0; frame < m_books.levels.size(); ++frame) {
      if (m_books.levels[frame] != 0 && m_books.writable[frame] != 0) {
        m_violations.push_back("page table " + hex(frame * kPageSize) + " is mapped writable");
      }
    }
    return m_books;
  }
  const std::vector<std::string>& violations() const { return m_violations; }

 private:
  void walk(std::uint64_t table, unsigned level) {
    for (unsigned index = 0; index < 512; ++index) {
      if (level == 4 && index == kMonitorSlot) continue;
      const std::uint64_t entry = m_memory.get(slot_address(table, index));
      if ((entry & kP) == 0) continue;
      const std::string where = "entry " + hex(entry) + " at " + hex(slot_address(table, index));
      if ((entry & 0x000fc00000000000ULL) != 0) m_violations.push_back(where + ": reserved bits");
      const bool large = (entry & kPs) != 0;
      if (level == 4 && large) m_violations.push_back(where + ": PS in a PML4E");
      if (level == 3 && large) m_violations.push_back(where + ": 1 GiB page");
      if (level == 1 || (level == 2 && large)) {
        const std::uint64_t size = level == 1 ? kPageSize : 2 * MiB;
        const std::uint64_t base = entry & entry_bits::kAddressMask & ~(size - 1);
        if (base < kMonitorBase + kMonitorSize && kMonitorBase < base + size) {
          m_violations.push_back(where + ": maps the monitor region");
        }
        if (base + size <= m_config.guest_ram_size) {
          if ((entry & kW) != 0) {
            for (std::uint64_t frame = base / kPageSize; frame < (base + size) / kPageSize;
                 ++frame) {
              ++m_books.writable[frame];
            }
          }
        } else {
          const bool in_window =
              std::any_of(m_config.device_windows.begin(), m_config.device_windows.end(),
                          [&](const PhysicalRange& window) {
                            return window.contains(GuestPhysAddr(base), size);
                          });
          if (!in_window) m_violations.push_back(where + ": maps outside RAM and the windows");
        }
        continue;
      }
      const std::uint64_t child = entry & entry_bits::kAddressMask;
      if (child + kPageSize > m_config.guest_ram_size) {
        m_violations.push_back(where + ": table outside RAM");
        continue;
      }
      const std::uint64_t frame = child / kPageSize;
      ++m_books.references[frame];
      if (m_books.levels[frame] == 0) {
        m_books.levels[frame] = level - 1;
        ++m_books.page_tables;
        walk(child, level - 1);
      } else if (m_books.levels[frame] != level - 1) {
        m_violations.push_back(where + ": frame used at levels " +
                               std::to_string(m_books.levels[frame]) + " and " +
                               std::to_string(level - 1));
      }
    }
  }

  const VectorGuestMemory& m_memory;
  const PageTableValidatorConfig& m_config;
  Books m_books;
  std::vector<std::string> m_violations;
};

class PageTableValidatorTest : public ::testing::Test {
 protected:
  PageTableValidatorTest()
      : m_memory(kRamSize),
        m_tables(m_memory, kPoolBase, kPoolSize),
        m_validator(make_validator(m_memory, make_config())) {}

  // The guest kernel's address space: the kernel image identity-mapped with
  // 4 KiB pages (code read-only, data writable) and a physmap of all RAM with
  // 4 KiB pages, writable except the page-table pool.
  std::uint64_t build_kernel_address_space() {
    const std::uint64_t root = m_tables.allocate();
    for (std::uint64_t page = 0; page < kKernelPages; ++page) {
      const std::uint64_t code = kKernelCode + page * kPageSize;
      const std::uint64_t data = kKernelData + page * kPageSize;
      m_tables.map(root, code, code | kP | kU);
      m_tables.map(root, data, data | kP | kW | kU | kXd);
    }
    for (std::uint64_t frame = 0; frame < kRamSize; frame += kPageSize) {
      const std::uint64_t rights = m_tables.in_pool(frame) ? kP | kU : kP | kW | kU;
      m_tables.map(root, kPhysmap + frame, frame | rights | kXd);
    }
    return root;
  }

  std::int64_t pin(std::uint64_t root) { return m_validator.pin_root(GuestPhysAddr(root)); }
  std::int64_t unpin(std::uint64_t root) { return m_validator.unpin_root(GuestPhysAddr(root)); }
  std::int64_t update(std::uint64_t pointer, std::uint64_t value) {
    return m_validator.update(GuestPhysAddr(pointer), value).result;
  }
  unsigned level(std::uint64_t frame) const { return m_validator.level_of(GuestPhysAddr(frame)); }
  std::uint32_t references(std::uint64_t frame) const {
    return m_validator.reference_count(GuestPhysAddr(frame));
  }
  std::uint32_t writable(std::uint64_t frame) const {
    return m_validator.writable_mappings(GuestPhysAddr(frame));
  }
  Books books() const { return books_of(m_validator); }
  static Books empty_books() { return Books(kRamSize); }
  // Checks the books against a recomputation from guest memory.
  void expect_consistent(const std::map<std::uint64_t, std::uint32_t>& pins) {
    Recomputation recomputation(m_memory, m_validator.config());
    const Books expected = recomputation.run(pins);
    EXPECT_EQ(differences(expected, books()), "");
    EXPECT_EQ(recomputation.violations(), std::vector<std::string>{});
  }

  // Pinning `root`, the first pin, fails with `code` and leaves no trace.
  void expect_pin_refused(std::uint64_t root, std::int64_t code) {
    EXPECT_EQ(pin(root), code) << hex(root);
    EXPECT_EQ(differences(empty_books(), books()), "");
  }

  // The kernel address space, pinned, and the tables on its kernel-code path.
  struct KernelSpace {
    std::uint64_t root = 0, pdpt = 0, pd = 0, pt = 0;
  };
  KernelSpace pinned_kernel_space() {
    KernelSpace space;
    space.root = build_kernel_address_space();
    EXPECT_EQ(pin(space.root), VMLAB_OK) << m_validator.last_error();
    space.pdpt = kernel_pdpt(space.root);
    space.pd = kernel_pd(space.root);
    space.pt = kernel_pt(space.root);
    return space;
  }

  // Slots and tables of the kernel address space.
  std::uint64_t kernel_pt(std::uint64_t root) const {
    return m_tables.table_of(root, kKernelCode, 1);
  }
  std::uint64_t kernel_pd(std::uint64_t root) const {
    return m_tables.table_of(root, kKernelCode, 2);
  }
  std::uint64_t kernel_pdpt(std::uint64_t root) const {
    return m_tables.table_of(root, kKernelCode, 3);
  }
  std::uint64_t physmap_slot(std::uint64_t root, std::uint64_t frame) const {
    return m_tables.existing_slot(root, kPhysmap + frame, 1);
  }

  VectorGuestMemory m_memory;
  GuestTables m_tables;
  PageTableValidator m_validator;
};

// --- configuration -----------------------------------------------------------

TEST_F(PageTableValidatorTest, CreateChecksTheLayout) {
  EXPECT_TRUE(PageTableValidator::create(m_memory, make_config()).ok());
  // The kind of the refusal, with a message for the person configuring.
  auto refusal = [&](auto change) -> std::error_code {
    PageTableValidatorConfig config = make_config();
    change(config);
    auto validator = PageTableValidator::create(m_memory, config);
    if (validator.ok()) return {};
    EXPECT_FALSE(validator.error().message.empty());
    return validator.error().kind;
  };
  using enum ParaError;
  EXPECT_EQ(refusal([](auto& config) { config.guest_ram_size = 0; }), kInvalidGuestRam);
  EXPECT_EQ(refusal([](auto& config) { config.guest_ram_size = kRamSize - 8; }), kInvalidGuestRam);
  EXPECT_EQ(refusal([](auto& config) { config.guest_ram_size = 2 * kRamSize; }),
            kInvalidGuestRam);  // > memory
  EXPECT_EQ(refusal([](auto& config) {
              config.monitor = {GuestPhysAddr(4 * MiB), kMonitorSize};
            }),
            kInvalidLayout);
  EXPECT_EQ(refusal([](auto& config) { config.monitor.size = 0; }), kInvalidLayout);
  EXPECT_EQ(refusal([](auto& config) {
              config.device_windows.push_back({GuestPhysAddr(kRamSize - kPageSize), 2 * kPageSize});
            }),
            kInvalidLayout);
  EXPECT_EQ(refusal([](auto& config) {
              config.device_windows.push_back({GuestPhysAddr(kMonitorBase + kMonitorSize - 1), 2});
            }),
            kInvalidLayout);
  EXPECT_EQ(refusal([](auto& config) { config.reserved_pml4_slot = 512; }),
            kInvalidPagingParameter);
  EXPECT_EQ(refusal([](auto& config) { config.physical_address_bits = 31; }),
            kInvalidPagingParameter);
  EXPECT_EQ(refusal([](auto& config) { config.physical_address_bits = 53; }),
            kInvalidPagingParameter);
  EXPECT_EQ(refusal([](auto& config) { config.monitor_pml4_entry = 0; }), kInvalidMonitorEntry);
  EXPECT_EQ(refusal([](auto& config) { config.monitor_pml4_entry |= kU; }), kInvalidMonitorEntry);
  // The monitor's PDPT in guest RAM would be the guest's to rewrite.
  EXPECT_EQ(refusal([](auto& config) { config.monitor_pml4_entry = kDataFrame | kP | kW; }),
            kInvalidMonitorEntry);
}

// --- pinning a tree ----------------------------------------------------------

TEST_F(PageTableValidatorTest, PinsAValidTreeAndWritesTheMonitorEntry) {
  const std::uint64_t root = build_kernel_address_space();
  m_memory.put(slot_address(root, kMonitorSlot), kDataFrame | kP | kW | kU);  // the guest's junk
  ASSERT_EQ(pin(root), VMLAB_OK) << m_validator.last_error();

  EXPECT_EQ(m_memory.get(slot_address(root, kMonitorSlot)), kMonitorEntry);
  // Root; PDPT, PD, PT for the kernel; PDPT, PD and 4 PTs for 8 MiB of physmap.
  ASSERT_EQ(m_tables.allocated().size(), 10u);
  EXPECT_EQ(m_validator.page_table_count(), 10u);
  EXPECT_EQ(level(root), 4u);
  EXPECT_EQ(level(kernel_pdpt(root)), 3u);
  EXPECT_EQ(level(kernel_pd(root)), 2u);
  EXPECT_EQ(level(kernel_pt(root)), 1u);
  for (std::uint64_t table : m_tables.allocated()) {
    EXPECT_TRUE(m_validator.is_page_table(GuestPhysAddr(table))) << hex(table);
    EXPECT_EQ(references(table), 1u) << hex(table);
    EXPECT_EQ(writable(table), 0u) << hex(table);
  }
  EXPECT_EQ(writable(kKernelCode), 1u);  // the physmap only
  EXPECT_EQ(writable(kKernelData), 2u);  // the physmap and the kernel's own mapping
  EXPECT_EQ(writable(kDataFrame), 1u);
  EXPECT_EQ(writable(kPoolBase + kPoolSize - kPageSize), 0u);  // a free pool frame: read-only
  EXPECT_EQ(references(kDataFrame), 0u);
  EXPECT_FALSE(m_validator.is_page_table(GuestPhysAddr(kDataFrame)));
  // The slot-511 entry maps the monitor region, and is not the guest's: it
  // counts for nothing.
  expect_consistent({{root, 1}});
}

TEST_F(PageTableValidatorTest, PinningTwiceAddsAReferenceAndUnpinningReleasesEverything) {
  const std::uint64_t root = build_kernel_address_space();
  ASSERT_EQ(pin(root), VMLAB_OK);
  ASSERT_EQ(pin(root), VMLAB_OK);
  EXPECT_EQ(references(root), 2u);
  EXPECT_EQ(references(kernel_pt(root)), 1u);

  ASSERT_EQ(unpin(root), VMLAB_OK);
  EXPECT_EQ(references(root), 1u);
  EXPECT_EQ(m_validator.page_table_count(), 10u);
  expect_consistent({{root, 1}});

  ASSERT_EQ(unpin(root), VMLAB_OK);
  EXPECT_EQ(differences(empty_books(), books()), "");
  EXPECT_EQ(unpin(root), VMLAB_EINVAL);  // no longer a pinned PML4
  // Untyped again: the guest may map its old tables writable.
  const std::uint64_t pt = kernel_pt(root);
  EXPECT_EQ(update(slot_address(pt, 100), pt | kP | kW), VMLAB_OK);
}

TEST_F(PageTableValidatorTest, TwoRootsShareTablesByReference) {
  const std::uint64_t first = build_kernel_address_space();
  const std::uint64_t second = m_tables.allocate();
  // The second address space shares the first's kernel PDPT and physmap PDPT.
  m_memory.put(slot_address(second, 0), m_memory.get(slot_address(first, 0)));
  m_memory.put(slot_address(second, 273), m_memory.get(slot_address(first, 273)));
  ASSERT_EQ(pin(first), VMLAB_OK);
  ASSERT_EQ(pin(second), VMLAB_OK);
  EXPECT_EQ(references(kernel_pdpt(first)), 2u);
  EXPECT_EQ(references(kernel_pd(first)), 1u);
  EXPECT_EQ(writable(kDataFrame), 1u);  // one physmap leaf, however many roots reach it
  expect_consistent({{first, 1}, {second, 1}});

  ASSERT_EQ(unpin(first), VMLAB_OK);
  EXPECT_EQ(level(first), 0u);
  EXPECT_EQ(references(kernel_pdpt(first)), 1u);
  EXPECT_EQ(level(kernel_pt(first)), 1u);
  expect_consistent({{second, 1}});
  ASSERT_EQ(unpin(second), VMLAB_OK);
  EXPECT_EQ(differences(empty_books(), books()), "");
}

TEST_F(PageTableValidatorTest, PinChecksTheRootFrame) {
  const std::uint64_t root = build_kernel_address_space();
  EXPECT_EQ(pin(root + 8), VMLAB_EINVAL);
  EXPECT_EQ(pin(kRamSize), VMLAB_EFAULT);
  EXPECT_EQ(pin(kMonitorBase), VMLAB_EPERM);
  EXPECT_EQ(pin(kVirtioWindow), VMLAB_EFAULT);
  ASSERT_EQ(pin(root), VMLAB_OK);
  EXPECT_EQ(pin(kernel_pt(root)), VMLAB_EBUSY);  // a PT cannot be a root too
  EXPECT_EQ(pin(kDataFrame), VMLAB_EPERM);       // the physmap maps it writable
  EXPECT_EQ(unpin(kernel_pt(root)), VMLAB_EINVAL);
  EXPECT_EQ(unpin(root + 8), VMLAB_EINVAL);
  EXPECT_EQ(unpin(kRamSize), VMLAB_EFAULT);
  expect_consistent({{root, 1}});
}

// --- what an entry may map -----------------------------------------------------

TEST_F(PageTableValidatorTest, LeafMappingTheMonitorRegionIsRefused) {
  const std::uint64_t root = build_kernel_address_space();
  m_tables.map(root, 0x40000000, (kMonitorBase + 0x5000) | kP | kU);  // read-only does not help
  EXPECT_EQ(pin(root), VMLAB_EPERM);
  EXPECT_NE(m_validator.last_error().find("maps the monitor region"), std::string::npos)
      << m_validator.last_error();
  EXPECT_EQ(differences(empty_books(), books()), "");

  m_tables.map(root, 0x40000000, 0);
  ASSERT_EQ(pin(root), VMLAB_OK);
  const Books before = books();
  const std::uint64_t pt = kernel_pt(root);
  const std::uint64_t pd = kernel_pd(root);
  EXPECT_EQ(update(slot_address(pt, 100), (kMonitorBase + kMonitorSize - kPageSize) | kP),
            VMLAB_EPERM);
  // 2 MiB pages inside the region.
  EXPECT_EQ(update(slot_address(pd, 200), kMonitorBase | kP | kPs), VMLAB_EPERM);
  EXPECT_EQ(update(slot_address(pd, 200), (kMonitorBase + 6 * MiB) | kP | kPs), VMLAB_EPERM);
  // Ending exactly where the region starts is outside it (and outside RAM).
  EXPECT_EQ(update(slot_address(pd, 200), (kMonitorBase - 2 * MiB) | kP | kPs), VMLAB_EFAULT);
  EXPECT_EQ(m_memory.get(slot_address(pt, 100)), 0u);
  EXPECT_EQ(m_memory.get(slot_address(pd, 200)), 0u);
  EXPECT_EQ(differences(before, books()), "");
}

TEST_F(PageTableValidatorTest, LeafOutsideRamIsRefused) {
  const std::uint64_t root = build_kernel_address_space();
  m_tables.map(root, 0x40000000, kRamSize | kP | kU);
  expect_pin_refused(root, VMLAB_EFAULT);
  m_tables.map(root, 0x40000000, (kRamSize - kPageSize) | kP | kU);  // the last frame is fine
  ASSERT_EQ(pin(root), VMLAB_OK) << m_validator.last_error();

  const std::uint64_t pt = kernel_pt(root);
  const std::uint64_t pd = kernel_pd(root);
  EXPECT_EQ(update(slot_address(pt, 100), kRamSize | kP | kW), VMLAB_EFAULT);
  EXPECT_EQ(update(slot_address(pt, 100), 0x80000000 | kP), VMLAB_EFAULT);  // a hole
  EXPECT_EQ(update(slot_address(pd, 200), (kRamSize - 2 * MiB) | kP | kPs), VMLAB_OK);
  EXPECT_EQ(update(slot_address(pd, 201), kRamSize | kP | kPs), VMLAB_EFAULT);
  expect_consistent({{root, 1}});
}

TEST_F(PageTableValidatorTest, DeviceWindowsTakeLeavesButNotTables) {
  const auto [root, pdpt, pd, pt] = pinned_kernel_space();
  const Books before = books();
  EXPECT_EQ(update(slot_address(pt, 100), (kVirtioWindow + 0xf000) | kP | kW | kU), VMLAB_OK);
  EXPECT_EQ(update(slot_address(pd, 200), kFramebuffer | kP | kW | kU | kPs), VMLAB_OK);
  EXPECT_EQ(update(slot_address(pd, 201), (kFramebuffer + 2 * MiB) | kP | kW | kPs), VMLAB_OK);
  // Device pages count nothing: there is no RAM frame behind them.
  EXPECT_EQ(differences(before, books()), "");
  // Half outside the window.
  EXPECT_EQ(update(slot_address(pt, 101), (kVirtioWindow + kVirtioWindowSize) | kP), VMLAB_EFAULT);
  EXPECT_EQ(update(slot_address(pd, 202), (kFramebuffer + 4 * MiB) | kP | kPs), VMLAB_EFAULT);
  EXPECT_EQ(update(slot_address(pd, 203), (kVirtioWindow & ~(2 * MiB - 1)) | kP | kPs),
            VMLAB_EFAULT);
  // A table in MMIO, or in the monitor region.
  EXPECT_EQ(update(slot_address(pd, 204), kVirtioWindow | kTableFlags), VMLAB_EFAULT);
  EXPECT_EQ(update(slot_address(pdpt, 5), kFramebuffer | kTableFlags), VMLAB_EFAULT);
  EXPECT_EQ(update(slot_address(pdpt, 5), kMonitorBase | kTableFlags), VMLAB_EPERM);
  EXPECT_EQ(update(slot_address(root, 5), (kMonitorBase + kPageSize) | kTableFlags), VMLAB_EPERM);
  EXPECT_EQ(update(slot_address(root, 5), kRamSize | kTableFlags), VMLAB_EFAULT);
  expect_consistent({{root, 1}});
}

TEST_F(PageTableValidatorTest, WritableLeafToAPageTableIsRefusedAtPin) {
  const std::uint64_t root = build_kernel_address_space();
  const std::uint64_t pt = m_tables.table_of(root, kKernelCode, 1);
  m_tables.map(root, 0x40000000, pt | kP | kW | kU);
  EXPECT_EQ(pin(root), VMLAB_EPERM);
  EXPECT_NE(m_validator.last_error().find("page-table frame " + hex(pt)), std::string::npos)
      << m_validator.last_error();
  EXPECT_EQ(differences(empty_books(), books()), "");

  // The root itself, while it is being validated.
  m_tables.map(root, 0x40000000, root | kP | kW | kU);
  expect_pin_refused(root, VMLAB_EPERM);

  // A writable 2 MiB page over the table pool.
  m_tables.map(root, 0x40000000, 0);
  m_tables.map(root, 0x40200000, 0 | kP | kW | kU | kPs, 2);
  expect_pin_refused(root, VMLAB_EPERM);

  // Read-only, both are fine.
  m_tables.map(root, 0x40000000, root | kP | kU);
  m_tables.map(root, 0x40200000, 0 | kP | kU | kPs, 2);
  EXPECT_EQ(pin(root), VMLAB_OK) << m_validator.last_error();
  expect_consistent({{root, 1}});
}

TEST_F(PageTableValidatorTest, WritableLeafToAPageTableIsRefusedByUpdate) {
  const auto [root, pdpt, pd, pt] = pinned_kernel_space();
  const Books before = books();
  const std::uint64_t slot = slot_address(pt, 100);
  for (std::uint64_t table : m_tables.allocated()) {
    EXPECT_EQ(update(slot, table | kP | kW | kU), VMLAB_EPERM) << hex(table);
  }
  // In the physmap, turning a table's read-only mapping writable.
  const std::uint64_t physmap_pt_slot = physmap_slot(root, pt);
  EXPECT_EQ(update(physmap_pt_slot, pt | kP | kW | kU), VMLAB_EPERM);
  EXPECT_EQ(update(slot_address(pd, 200), 0 | kP | kW | kPs), VMLAB_EPERM);  // covers the pool
  EXPECT_EQ(m_memory.get(slot), 0u);
  EXPECT_EQ(m_memory.get(physmap_pt_slot), pt | kP | kU | kXd);
  EXPECT_EQ(differences(before, books()), "");

  EXPECT_EQ(update(slot, pt | kP | kU), VMLAB_OK);
  EXPECT_EQ(update(slot_address(pd, 200), 0 | kP | kPs), VMLAB_OK);
  EXPECT_EQ(writable(pt), 0u);
  expect_consistent({{root, 1}});
}

TEST_F(PageTableValidatorTest, WritablyMappedFrameCannotBecomeATable) {
  // At pin time the kernel side (PML4 slot 0) is checked first: the frame
  // becomes a PT there, then the physmap's writable leaf to it is refused.
  const std::uint64_t root = build_kernel_address_space();
  const std::uint64_t pd = m_tables.table_of(root, kKernelCode, 2);
  m_memory.put(slot_address(pd, 2), kDataFrame | kTableFlags);
  expect_pin_refused(root, VMLAB_EPERM);

  // After the pin the writable mapping exists first.
  m_memory.put(slot_address(pd, 2), 0);
  ASSERT_EQ(pin(root), VMLAB_OK);
  const Books before = books();
  EXPECT_EQ(update(slot_address(pd, 2), kDataFrame | kTableFlags), VMLAB_EPERM);
  EXPECT_NE(m_validator.last_error().find("writable mappings"), std::string::npos)
      << m_validator.last_error();
  EXPECT_EQ(differences(before, books()), "");

  // Once the physmap maps it read-only, it may.
  EXPECT_EQ(update(physmap_slot(root, kDataFrame), kDataFrame | kP | kU), VMLAB_OK);
  EXPECT_EQ(update(slot_address(pd, 2), kDataFrame | kTableFlags), VMLAB_OK);
  EXPECT_EQ(level(kDataFrame), 1u);
  expect_consistent({{root, 1}});
}

TEST_F(PageTableValidatorTest, FrameUsedAtTwoLevelsIsBusy) {
  const std::uint64_t root = build_kernel_address_space();
  const std::uint64_t pdpt = m_tables.table_of(root, kKernelCode, 3);
  const std::uint64_t pt = m_tables.table_of(root, kKernelCode, 1);
  m_memory.put(slot_address(pdpt, 1), pt | kTableFlags);  // the PT as a PD as well
  EXPECT_EQ(pin(root), VMLAB_EBUSY);
  EXPECT_NE(m_validator.last_error().find("but it is a level-1 table"), std::string::npos)
      << m_validator.last_error();
  EXPECT_EQ(differences(empty_books(), books()), "");

  m_memory.put(slot_address(pdpt, 1), 0);
  ASSERT_EQ(pin(root), VMLAB_OK);
  const Books before = books();
  EXPECT_EQ(update(slot_address(pdpt, 1), pt | kTableFlags), VMLAB_EBUSY);
  EXPECT_EQ(update(slot_address(root, 1), kernel_pd(root) | kTableFlags), VMLAB_EBUSY);
  EXPECT_EQ(update(slot_address(kernel_pd(root), 3), pdpt | kTableFlags), VMLAB_EBUSY);
  EXPECT_EQ(differences(before, books()), "");
  // The same level is sharing, not a conflict.
  EXPECT_EQ(update(slot_address(kernel_pd(root), 3), pt | kTableFlags), VMLAB_OK);
  EXPECT_EQ(references(pt), 2u);
  expect_consistent({{root, 1}});
}

TEST_F(PageTableValidatorTest, SelfReferencingTablesAreBusy) {
  const std::uint64_t root = build_kernel_address_space();
  // The recursive "self-map" slot.
  m_memory.put(slot_address(root, 5), root | kTableFlags);
  EXPECT_EQ(pin(root), VMLAB_EBUSY);
  EXPECT_NE(m_validator.last_error().find("part of"), std::string::npos)
      << m_validator.last_error();
  EXPECT_EQ(differences(empty_books(), books()), "");
  m_memory.put(slot_address(root, 5), 0);

  // A PD pointing at itself, and a PD pointing at the PDPT above it.
  const std::uint64_t pd = m_tables.table_of(root, kKernelCode, 2);
  const std::uint64_t pdpt = m_tables.table_of(root, kKernelCode, 3);
  m_memory.put(slot_address(pd, 7), pd | kTableFlags);
  expect_pin_refused(root, VMLAB_EBUSY);
  m_memory.put(slot_address(pd, 7), pdpt | kTableFlags);
  expect_pin_refused(root, VMLAB_EBUSY);
  m_memory.put(slot_address(pd, 7), 0);

  ASSERT_EQ(pin(root), VMLAB_OK);
  const Books before = books();
  EXPECT_EQ(update(slot_address(root, 5), root | kTableFlags), VMLAB_EBUSY);
  EXPECT_EQ(update(slot_address(pd, 7), pd | kTableFlags), VMLAB_EBUSY);
  EXPECT_EQ(differences(before, books()), "");
}

TEST_F(PageTableValidatorTest, OneGibPagesAreRefused) {
  const std::uint64_t root = build_kernel_address_space();
  const std::uint64_t pdpt = m_tables.table_of(root, kKernelCode, 3);
  m_memory.put(slot_address(pdpt, 1), 0 | kP | kU | kPs);
  EXPECT_EQ(pin(root), VMLAB_EINVAL);
  EXPECT_NE(m_validator.last_error().find("1 GiB"), std::string::npos) << m_validator.last_error();
  EXPECT_EQ(differences(empty_books(), books()), "");
  m_memory.put(slot_address(pdpt, 1), 0);
  ASSERT_EQ(pin(root), VMLAB_OK);
  EXPECT_EQ(update(slot_address(pdpt, 1), 0 | kP | kU | kPs), VMLAB_EINVAL);
  EXPECT_EQ(update(slot_address(pdpt, 1), kFramebuffer | kP | kPs), VMLAB_EINVAL);
}

TEST_F(PageTableValidatorTest, ReservedBitsAreRefused) {
  const auto [root, pdpt, pd, pt] = pinned_kernel_space();
  const std::uint64_t slot = slot_address(pt, 100);
  // Bits 51:46 with MAXPHYADDR 46 (SDM vol. 3A, 4.5, table 4-19).
  EXPECT_EQ(update(slot, kDataFrame | kP | (1ULL << 46)), VMLAB_EINVAL);
  EXPECT_EQ(update(slot, kDataFrame | kP | (1ULL << 51)), VMLAB_EINVAL);
  EXPECT_EQ(update(slot_address(pd, 200), kPoolBase | kTableFlags | (1ULL << 50)), VMLAB_EINVAL);
  // PS in a PML4E; bits 20:13 of a 2 MiB page (tables 4-15 and 4-18).
  EXPECT_EQ(update(slot_address(root, 5), m_tables.allocate() | kTableFlags | kPs), VMLAB_EINVAL);
  EXPECT_EQ(update(slot_address(pd, 200), (4 * MiB) | (1ULL << 13) | kP | kPs), VMLAB_EINVAL);
  EXPECT_EQ(m_memory.get(slot), 0u);
  // Not reserved: PAT in a PTE, XD, the ignored bits, A and D; bit 45 is an
  // address bit (outside RAM here).
  EXPECT_EQ(update(slot, kDataFrame | kP | kPs), VMLAB_OK);
  EXPECT_EQ(update(slot, kDataFrame | kP | kXd | (1ULL << 52) | (1ULL << 9) | kA | kD), VMLAB_OK);
  EXPECT_EQ(update(slot, (1ULL << 45) | kP), VMLAB_EFAULT);
  // A not-present entry may hold anything.
  EXPECT_EQ(update(slot, ~kP), VMLAB_OK);
  expect_consistent({{root, 1}});
}

TEST_F(PageTableValidatorTest, ReservedBitsFollowMaxPhyAddr) {
  PageTableValidatorConfig config = make_config();
  config.physical_address_bits = 52;
  PageTableValidator validator = make_validator(m_memory, config);
  const std::uint64_t root = build_kernel_address_space();
  ASSERT_EQ(validator.pin_root(GuestPhysAddr(root)), VMLAB_OK);
  const GuestPhysAddr slot(slot_address(kernel_pt(root), 100));
  // An address bit now: outside RAM rather than malformed.
  EXPECT_EQ(validator.update(slot, kDataFrame | kP | (1ULL << 46)).result, VMLAB_EFAULT);
}

TEST_F(PageTableValidatorTest, EntryPointersAreChecked) {
  const std::uint64_t root = build_kernel_address_space();
  ASSERT_EQ(pin(root), VMLAB_OK);
  const std::uint64_t pt = kernel_pt(root);
  EXPECT_EQ(update(slot_address(pt, 100) + 4, kDataFrame | kP), VMLAB_EINVAL);
  EXPECT_EQ(update(slot_address(pt, 100) + 1, 0), VMLAB_EINVAL);
  EXPECT_EQ(update(kRamSize, 0), VMLAB_EFAULT);
  EXPECT_EQ(update(kMonitorBase, 0), VMLAB_EFAULT);
  EXPECT_EQ(update(kVirtioWindow, 0), VMLAB_EFAULT);
  EXPECT_EQ(update(~std::uint64_t{7}, 0), VMLAB_EFAULT);
  EXPECT_NE(m_validator.last_error().find("outside guest RAM"), std::string::npos);
}

TEST_F(PageTableValidatorTest, ReservedSlotBelongsToTheMonitor) {
  const std::uint64_t root = build_kernel_address_space();
  // Untyped, the frame is the guest's to fill: the slot is only skipped.
  EXPECT_EQ(update(slot_address(root, kMonitorSlot), kMonitorBase | kTableFlags), VMLAB_OK);
  ASSERT_EQ(pin(root), VMLAB_OK);
  EXPECT_EQ(m_memory.get(slot_address(root, kMonitorSlot)), kMonitorEntry);
  const UpdateResult result =
      m_validator.update(GuestPhysAddr(slot_address(root, kMonitorSlot)), 0);
  EXPECT_EQ(result.result, VMLAB_EPERM);
  EXPECT_FALSE(result.flush_needed);
  EXPECT_EQ(update(slot_address(root, kMonitorSlot), kMonitorEntry), VMLAB_EPERM);
  EXPECT_EQ(m_memory.get(slot_address(root, kMonitorSlot)), kMonitorEntry);
  // Slot 511 of a lower-level table is an ordinary entry.
  const std::uint64_t pt = kernel_pt(root);
  EXPECT_EQ(update(slot_address(pt, kMonitorSlot), kDataFrame | kP), VMLAB_OK);
}

// --- rollback and release ------------------------------------------------------

TEST_F(PageTableValidatorTest, FailedSubtreeRollsBackExactly) {
  const std::uint64_t root = build_kernel_address_space();
  ASSERT_EQ(pin(root), VMLAB_OK);
  const Books before = books();
  const std::uint64_t shared_pt = kernel_pt(root);

  // A new PD with a writable 2 MiB page, a complete PT, the kernel's PT
  // shared, and a PT whose 300th entry maps the monitor region, built through update() on
  // untyped frames (the physmap maps them read-only).
  const std::uint64_t pd = m_tables.allocate();
  const std::uint64_t complete_pt = m_tables.allocate();
  const std::uint64_t bad_pt = m_tables.allocate();
  for (unsigned index = 0; index < 512; ++index) {
    const std::uint64_t frame = 0x400000 + std::uint64_t{index} * kPageSize;
    ASSERT_EQ(update(slot_address(complete_pt, index), frame | kP | kW | kU), VMLAB_OK);
    if (index < 299) {
      ASSERT_EQ(update(slot_address(bad_pt, index), frame | kP | kW | kU), VMLAB_OK);
    }
  }
  ASSERT_EQ(update(slot_address(bad_pt, 299), kMonitorBase | kP | kU), VMLAB_OK);
  ASSERT_EQ(update(slot_address(pd, 0), (6 * MiB) | kP | kW | kPs), VMLAB_OK);
  ASSERT_EQ(update(slot_address(pd, 1), complete_pt | kTableFlags), VMLAB_OK);
  ASSERT_EQ(update(slot_address(pd, 2), shared_pt | kTableFlags), VMLAB_OK);
  ASSERT_EQ(update(slot_address(pd, 3), bad_pt | kTableFlags), VMLAB_OK);
  EXPECT_EQ(differences(before, books()), "");  // untyped frames count nothing

  const std::uint64_t pdpt_slot = slot_address(kernel_pdpt(root), 3);
  const UpdateResult refused = m_validator.update(GuestPhysAddr(pdpt_slot), pd | kTableFlags);
  EXPECT_EQ(refused.result, VMLAB_EPERM);
  EXPECT_FALSE(refused.flush_needed);
  EXPECT_NE(m_validator.last_error().find(hex(slot_address(bad_pt, 299))), std::string::npos)
      << m_validator.last_error();
  EXPECT_EQ(m_memory.get(pdpt_slot), 0u);
  EXPECT_EQ(differences(before, books()), "");
  EXPECT_EQ(level(pd), 0u);
  EXPECT_EQ(level(complete_pt), 0u);
  EXPECT_EQ(references(shared_pt), 1u);

  // Repaired, the same subtree is accepted, and removing it restores the books.
  ASSERT_EQ(update(slot_address(bad_pt, 299), (kDataFrame + 0x1000) | kP | kU), VMLAB_OK);
  const UpdateResult accepted = m_validator.update(GuestPhysAddr(pdpt_slot), pd | kTableFlags);
  ASSERT_EQ(accepted.result, VMLAB_OK) << m_validator.last_error();
  EXPECT_FALSE(accepted.flush_needed);
  EXPECT_EQ(level(pd), 2u);
  EXPECT_EQ(level(bad_pt), 1u);
  EXPECT_EQ(references(shared_pt), 2u);
  EXPECT_EQ(writable(0x400000), 3u);  // physmap, complete_pt, bad_pt
  EXPECT_EQ(writable(0x400000 + 299 * kPageSize), 2u);
  EXPECT_EQ(writable(6 * MiB + 5 * kPageSize), 2u);  // physmap, the 2 MiB page
  EXPECT_EQ(m_validator.page_table_count(), before.page_tables + 3);
  expect_consistent({{root, 1}});

  const UpdateResult removed = m_validator.update(GuestPhysAddr(pdpt_slot), 0);
  EXPECT_EQ(removed.result, VMLAB_OK);
  EXPECT_TRUE(removed.flush_needed);
  EXPECT_EQ(differences(before, books()), "");
}

TEST_F(PageTableValidatorTest, UpdateReportsWhenTheTlbMustBeFlushed) {
  const std::uint64_t root = build_kernel_address_space();
  ASSERT_EQ(pin(root), VMLAB_OK);
  const GuestPhysAddr slot(slot_address(kernel_pt(root), 100));
  const std::uint64_t mapping = kDataFrame | kP | kU;

  UpdateResult result = m_validator.update(slot, mapping);  // not present -> present
  EXPECT_EQ(result.result, VMLAB_OK);
  EXPECT_FALSE(result.flush_needed);
  result = m_validator.update(slot, mapping);  // unchanged
  EXPECT_EQ(result.result, VMLAB_OK);
  EXPECT_FALSE(result.flush_needed);
  result = m_validator.update(slot, mapping | kW);  // more rights
  EXPECT_EQ(result.result, VMLAB_OK);
  EXPECT_TRUE(result.flush_needed);
  result = m_validator.update(slot, (kDataFrame + kPageSize) | kP | kU);  // another frame
  EXPECT_EQ(result.result, VMLAB_OK);
  EXPECT_TRUE(result.flush_needed);
  result = m_validator.update(slot, kMonitorBase | kP);  // refused: nothing changed
  EXPECT_EQ(result.result, VMLAB_EPERM);
  EXPECT_FALSE(result.flush_needed);
  result = m_validator.update(slot, 0);  // present -> not present
  EXPECT_EQ(result.result, VMLAB_OK);
  EXPECT_TRUE(result.flush_needed);
  result = m_validator.update(slot, 0);
  EXPECT_EQ(result.result, VMLAB_OK);
  EXPECT_FALSE(result.flush_needed);

  // An untyped frame is no table the CPU uses.
  const std::uint64_t untyped = m_tables.allocate();
  ASSERT_EQ(update(untyped, mapping), VMLAB_OK);
  result = m_validator.update(GuestPhysAddr(untyped), 0);
  EXPECT_EQ(result.result, VMLAB_OK);
  EXPECT_FALSE(result.flush_needed);
}

TEST_F(PageTableValidatorTest, UnmappingATableReleasesIt) {
  const auto [root, pdpt, pd, pt] = pinned_kernel_space();
  const std::size_t tables = m_validator.page_table_count();
  // A second reference first: dropping one of two keeps the table.
  ASSERT_EQ(update(slot_address(pd, 3), pt | kTableFlags), VMLAB_OK);
  EXPECT_EQ(references(pt), 2u);
  EXPECT_EQ(writable(kKernelData), 2u);  // counted per table, not per path to it
  const UpdateResult first = m_validator.update(GuestPhysAddr(slot_address(pd, 3)), 0);
  EXPECT_EQ(first.result, VMLAB_OK);
  EXPECT_TRUE(first.flush_needed);
  EXPECT_EQ(references(pt), 1u);
  EXPECT_EQ(level(pt), 1u);

  const std::uint64_t kernel_slot =
      slot_address(pd, monitor::table_index(GuestVirtAddr(kKernelCode), 2));
  ASSERT_EQ(update(kernel_slot, 0), VMLAB_OK);
  EXPECT_EQ(references(pt), 0u);
  EXPECT_EQ(level(pt), 0u);
  EXPECT_EQ(m_validator.page_table_count(), tables - 1);
  EXPECT_EQ(writable(kKernelData), 1u);  // the physmap's mapping is left
  expect_consistent({{root, 1}});

  // The frame is ordinary memory again: the guest may map it writable.
  EXPECT_EQ(update(physmap_slot(root, pt), pt | kP | kW | kU), VMLAB_OK);
  EXPECT_EQ(writable(pt), 1u);
  EXPECT_EQ(update(kernel_slot, pt | kTableFlags), VMLAB_EPERM);
  expect_consistent({{root, 1}});
}

TEST_F(PageTableValidatorTest, UntypedFrameWritesNeedNoWritableMapping) {
  const std::uint64_t root = build_kernel_address_space();
  ASSERT_EQ(pin(root), VMLAB_OK);
  // The physmap maps this frame writable: the guest can store to it itself.
  EXPECT_EQ(update(kDataFrame + 16, kMonitorBase | kP), VMLAB_EPERM);
  EXPECT_EQ(m_memory.get(kDataFrame + 16), 0u);
  ASSERT_EQ(update(physmap_slot(root, kDataFrame), kDataFrame | kP | kU), VMLAB_OK);
  // Now written as it is; checked when the frame becomes a table.
  EXPECT_EQ(update(kDataFrame + 16, kMonitorBase | kP), VMLAB_OK);
  EXPECT_EQ(m_memory.get(kDataFrame + 16), kMonitorBase | kP);
  EXPECT_EQ(update(slot_address(kernel_pd(root), 2), kDataFrame | kTableFlags), VMLAB_EPERM);
  EXPECT_EQ(level(kDataFrame), 0u);
  expect_consistent({{root, 1}});
}

TEST_F(PageTableValidatorTest, DescribesResults) {
  EXPECT_EQ(describe_result(VMLAB_OK).substr(0, 2), "OK");
  EXPECT_EQ(describe_result(VMLAB_EPERM).substr(0, 5), "EPERM");
  EXPECT_EQ(describe_result(VMLAB_ENOMEM).substr(0, 6), "ENOMEM");
  EXPECT_EQ(describe_result(VMLAB_EFAULT).substr(0, 6), "EFAULT");
  EXPECT_EQ(describe_result(VMLAB_EBUSY).substr(0, 5), "EBUSY");
  EXPECT_EQ(describe_result(VMLAB_EINVAL).substr(0, 6), "EINVAL");
  EXPECT_EQ(describe_result(VMLAB_ENOSYS).substr(0, 6), "ENOSYS");
  EXPECT_EQ(describe_result(-99), "unknown result code");

  const std::uint64_t root = build_kernel_address_space();
  ASSERT_EQ(pin(root), VMLAB_OK);
  const std::uint64_t slot = slot_address(kernel_pt(root), 100);
  ASSERT_EQ(update(slot, kMonitorBase | kP), VMLAB_EPERM);
  EXPECT_EQ(m_validator.last_error(),
            "entry 0xd0000001 at " + hex(slot) + " (level 1) maps the monitor region");
}

// --- performance -----------------------------------------------------------------

// A whole 64 MiB physical map of 4 KiB pages, pinned and released several
// times: every count comes back to zero. (How fast this is belongs in a
// benchmark, not a unit test on a shared machine.)
TEST(PageTableValidatorScale, PinsAndReleasesSixtyFourMibOfFourKibPages) {
  constexpr std::uint64_t mapped = 64 * MiB;
  constexpr std::uint64_t ram_size = mapped + 2 * MiB;  // tables above what is mapped
  VectorGuestMemory memory(ram_size);
  GuestTables tables(memory, mapped, 2 * MiB);
  const std::uint64_t root = tables.allocate();
  for (std::uint64_t frame = 0; frame < mapped; frame += kPageSize) {
    tables.map(root, kPhysmap + frame, frame | kP | kW | kU);
  }
  ASSERT_EQ(tables.allocated().size(), 1u + 1 + 1 + 32);
  PageTableValidator validator = make_validator(memory, make_config(ram_size));
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(validator.pin_root(GuestPhysAddr(root)), VMLAB_OK) << validator.last_error();
    EXPECT_EQ(validator.page_table_count(), 35u);
    EXPECT_EQ(validator.writable_mappings(GuestPhysAddr(mapped - kPageSize)), 1u);
    ASSERT_EQ(validator.unpin_root(GuestPhysAddr(root)), VMLAB_OK);
    EXPECT_EQ(validator.page_table_count(), 0u);
    EXPECT_EQ(validator.writable_mappings(GuestPhysAddr(mapped - kPageSize)), 0u);
  }
}

// --- randomized ----------------------------------------------------------------

// Random valid and invalid requests on small trees; after each one the
// validator's books must equal a recomputation from guest memory, a refused
// request must leave memory as it was, and no security invariant may break.
//
// Each pool frame has a level it is meant for (2 roots, 3 PDPTs, 4 PDs, 7
// PTs) and mostly gets entries that fit that level, so trees grow deep
// enough to matter; some requests break the rules on purpose (wrong level,
// monitor region, outside RAM, reserved bits, 1 GiB pages, writable tables).
class RandomUpdates {
 public:
  RandomUpdates(std::uint64_t seed, VectorGuestMemory& memory, PageTableValidator& validator)
      : m_random(seed), m_memory(memory), m_validator(validator) {
    constexpr unsigned kLevels[] = {4, 4, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1};
    for (unsigned index = 0; index < std::size(kLevels); ++index) {
      const std::uint64_t frame = kPoolBase + std::uint64_t{index} * kPageSize;
      m_pool.push_back(frame);
      m_pool_by_level[kLevels[index]].push_back(frame);
    }
    for (unsigned index = 0; index < 8; ++index) {
      m_data.push_back(kDataFrame + std::uint64_t{index} * kPageSize);
    }
  }

  // Also checks that exactly the page-table frames are kept from devices.
  void watch(const RecordingDmaRemapping& remapping) { m_remapping = &remapping; }

  void run(int steps) {
    ASSERT_EQ(m_validator.pin_root(GuestPhysAddr(m_pool[0])), VMLAB_OK);
    m_pins[m_pool[0]] = 1;
    for (int step = 0; step < steps; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const unsigned dice = below(100);
      if (dice < 4) {
        pin();
      } else if (dice < 6) {
        unpin();
      } else if (dice < 11) {
        recycle();
      } else {
        update();
      }
      check();
      if (::testing::Test::HasFailure()) return;
    }
    for (const auto& [root, count] : m_pins) {
      for (std::uint32_t pin = 0; pin < count; ++pin) {
        ASSERT_EQ(m_validator.unpin_root(GuestPhysAddr(root)), VMLAB_OK);
      }
    }
    m_pins.clear();
    check();
    EXPECT_EQ(m_validator.page_table_count(), 0u);
  }

  const std::map<std::int64_t, int>& outcomes() const { return m_outcomes; }
  std::size_t most_tables() const { return m_most_tables; }
  double average_tables() const {
    return m_steps == 0 ? 0 : static_cast<double>(m_table_sum) / static_cast<double>(m_steps);
  }
  int table_changes() const { return m_table_changes; }  // accepted updates of page tables
  int flushes() const { return m_flushes; }
  int recycled() const { return m_recycled; }

 private:
  unsigned below(unsigned limit) {
    return std::uniform_int_distribution<unsigned>(0, limit - 1)(m_random);
  }
  template <typename T>
  const T& pick(const std::vector<T>& items) {
    return items[below(static_cast<unsigned>(items.size()))];
  }

  unsigned intended_level(std::uint64_t frame) const {
    for (unsigned level = 1; level <= 4; ++level) {
      const auto& frames = m_pool_by_level[level];
      if (std::find(frames.begin(), frames.end(), frame) != frames.end()) return level;
    }
    return 1;  // data frames
  }

  std::uint64_t fitting_value(unsigned level) {
    const std::uint64_t extra = (below(2) != 0 ? kU : 0) | (below(4) == 0 ? kA | kD : 0);
    if (below(5) == 0) return 0;
    if (level >= 2 && below(6) != 0) return pick(m_pool_by_level[level - 1]) | kTableFlags;
    if (level == 2) {
      return std::uint64_t{below(4)} * 2 * MiB | kP | kPs | extra | (below(2) != 0 ? kW : 0);
    }
    if (level > 2) return 0;
    switch (below(6)) {
      case 0:
        return pick(m_pool) | kP | extra;  // read-only views of tables are fine
      case 1:
        return (kVirtioWindow + std::uint64_t{below(16)} * kPageSize) | kP | kW | extra;
      case 2:
        return pick(m_data) | kP | extra;
      default:
        return pick(m_data) | kP | kW | extra;
    }
  }

  std::uint64_t breaking_value(unsigned level) {
    switch (below(7)) {
      case 0:
        return (kMonitorBase + std::uint64_t{below(4)} * kPageSize) | kP;
      case 1:
        return (kRamSize + std::uint64_t{below(4)} * kPageSize) | kP;
      case 2:
        return pick(m_data) | kP | (1ULL << (46 + below(6)));
      case 3:
        return std::uint64_t{below(4)} * GiB | kP | kPs;  // 1 GiB at level 3, PS at level 4
      case 4:
        return pick(m_pool) | kP | kW;  // a writable view of a table, or a wrong level
      case 5:
        return pick(m_pool_by_level[level]) | kTableFlags;  // a loop
      default:
        return pick(m_pool) | kTableFlags;  // any level
    }
  }

  std::uint64_t random_pointer() {
    const unsigned dice = below(100);
    if (dice < 3) return pick(m_pool) + 8 * below(512) + 1 + below(7);
    if (dice < 6) return kRamSize + 8 * std::uint64_t{below(512)};
    std::vector<std::uint64_t> tables;
    for (std::uint64_t frame : m_pool) {
      if (m_validator.is_page_table(GuestPhysAddr(frame))) tables.push_back(frame);
    }
    std::uint64_t frame = pick(m_pool);
    if (dice < 12) {
      frame = pick(m_data);
    } else if (dice < 60 && !tables.empty()) {
      frame = pick(tables);
    }
    // A few slots often, so that entries get replaced and trees change.
    static constexpr unsigned kFavourite[] = {0, 1, 2, 3, 4, 5, 511};
    const unsigned index = below(8) != 0 ? kFavourite[below(7)] : below(512);
    return slot_address(frame, index);
  }

  void update() {
    const std::uint64_t pointer = random_pointer();
    const unsigned level = m_validator.level_of(GuestPhysAddr(pointer));
    const bool was_table = level != 0;
    // Tables the CPU uses get many rule-breaking requests (refused, they
    // leave nothing behind); frames being built get a few, which then make
    // their tree fail validation until they are overwritten.
    const bool breaking = below(100) < (was_table ? 30u : 3u);
    const unsigned target_level = was_table ? level : intended_level(pointer & ~(kPageSize - 1));
    const std::uint64_t value =
        breaking ? breaking_value(target_level) : fitting_value(target_level);
    const bool readable = (pointer & 7) == 0 && pointer + 8 <= kRamSize;
    const std::uint64_t old_value = readable ? m_memory.get(pointer) : 0;
    const UpdateResult result = m_validator.update(GuestPhysAddr(pointer), value);
    ++m_outcomes[result.result];
    if (!readable) {
      EXPECT_NE(result.result, VMLAB_OK);
      return;
    }
    if (result.result == VMLAB_OK) {
      if (was_table) ++m_table_changes;
      if (result.flush_needed) ++m_flushes;
      EXPECT_EQ(m_memory.get(pointer), value);
      EXPECT_EQ(result.flush_needed, was_table && (old_value & kP) != 0 && old_value != value);
    } else {
      EXPECT_EQ(m_memory.get(pointer), old_value) << "a refused update changed memory";
      EXPECT_FALSE(result.flush_needed);
    }
  }

  // The guest zeroes a frame it is done with before it builds a table in it,
  // through update() when it has no writable mapping of the frame.
  void recycle() {
    const std::uint64_t frame = pick(m_pool);
    if (m_validator.is_page_table(GuestPhysAddr(frame)) ||
        m_validator.writable_mappings(GuestPhysAddr(frame)) != 0) {
      return;
    }
    for (unsigned index = 0; index < 512; ++index) {
      ASSERT_EQ(m_validator.update(GuestPhysAddr(slot_address(frame, index)), 0).result, VMLAB_OK);
    }
    ++m_recycled;
  }

  void pin() {
    const std::uint64_t root = below(5) != 0 ? pick(m_pool_by_level[4]) : pick(m_pool);
    const std::uint64_t slot = slot_address(root, kMonitorSlot);
    const std::uint64_t old_slot_value = m_memory.get(slot);
    const std::int64_t result = m_validator.pin_root(GuestPhysAddr(root));
    ++m_outcomes[result];
    if (result == VMLAB_OK) {
      ++m_pins[root];
    } else {
      EXPECT_EQ(m_memory.get(slot), old_slot_value);
    }
  }

  void unpin() {
    std::uint64_t root = pick(m_pool);
    if (!m_pins.empty() && below(4) != 0) {
      root = std::next(m_pins.begin(), below(static_cast<unsigned>(m_pins.size())))->first;
    }
    const std::int64_t result = m_validator.unpin_root(GuestPhysAddr(root));
    ++m_outcomes[result];
    if (result != VMLAB_OK) {
      EXPECT_EQ(m_pins.count(root), 0u);
      return;
    }
    ASSERT_EQ(m_pins.count(root), 1u);
    if (--m_pins[root] == 0) m_pins.erase(root);
  }

  void check() {
    Recomputation recomputation(m_memory, m_validator.config());
    const Books expected = recomputation.run(m_pins);
    EXPECT_EQ(differences(expected, books_of(m_validator)), "");
    if (m_remapping != nullptr) {
      std::set<std::uint64_t> tables;
      for (std::size_t frame = 0; frame < expected.levels.size(); ++frame) {
        if (expected.levels[frame] != 0) tables.insert(frame);
      }
      EXPECT_EQ(m_remapping->frames(), tables);
    }
    EXPECT_EQ(recomputation.violations(), std::vector<std::string>{});
    m_most_tables = std::max(m_most_tables, m_validator.page_table_count());
    m_table_sum += m_validator.page_table_count();
    ++m_steps;
  }

  std::mt19937_64 m_random;
  VectorGuestMemory& m_memory;
  PageTableValidator& m_validator;
  std::vector<std::uint64_t> m_pool;
  std::array<std::vector<std::uint64_t>, 5> m_pool_by_level;  // indexed by level
  std::vector<std::uint64_t> m_data;
  std::map<std::uint64_t, std::uint32_t> m_pins;
  std::map<std::int64_t, int> m_outcomes;
  std::size_t m_most_tables = 0;
  std::size_t m_table_sum = 0;
  std::size_t m_steps = 0;
  int m_table_changes = 0;
  int m_flushes = 0;
  int m_recycled = 0;
  const RecordingDmaRemapping* m_remapping = nullptr;
};

TEST(PageTableValidatorRandomized, BooksAlwaysMatchARecomputation) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    VectorGuestMemory memory(kRamSize);
    RecordingDmaRemapping remapping;
    PageTableValidatorConfig config = make_config();
    config.dma_remapping = &remapping;
    PageTableValidator validator = make_validator(memory, config);
    RandomUpdates random(seed, memory, validator);
    random.watch(remapping);
    random.run(3000);
    if (::testing::Test::HasFailure()) return;
    std::string summary;
    for (const auto& [code, count] : random.outcomes()) {
      summary += std::string(describe_result(code).substr(0, describe_result(code).find(':'))) +
                 " " + std::to_string(count) + ", ";
    }
    std::printf(
        "seed %llu: %s%.1f tables on average, at most %zu; %d table changes, %d flushes, %d "
        "frames recycled\n",
        static_cast<unsigned long long>(seed), summary.c_str(), random.average_tables(),
        random.most_tables(), random.table_changes(), random.flushes(), random.recycled());
    // The run reached every outcome and changed real trees.
    for (std::int64_t code : {VMLAB_OK, VMLAB_EPERM, VMLAB_EFAULT, VMLAB_EBUSY, VMLAB_EINVAL}) {
      EXPECT_GT(random.outcomes().count(code), 0u) << describe_result(code);
    }
    EXPECT_GE(random.most_tables(), 10u);
    EXPECT_GE(random.average_tables(), 4.0);
    EXPECT_GT(random.table_changes(), 500);
    EXPECT_GT(random.flushes(), 200);
  }
}

}  // namespace
}  // namespace vmlab::para
