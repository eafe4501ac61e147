// Unit tests of the para mode's hypercall handlers (abi/vmlab/hypercall.h),
// driven without KVM: guest RAM is a plain buffer, the page-table validator is
// the real one over it, and the rest of the VMM is a fake environment whose
// kernel address space maps every RAM address to itself.
#include "vmlab/para/hypercalls.hpp"
#include "guest_layout.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/page_walker.hpp"

namespace vmlab::para {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)

// The kernel's tables: one path PML4[0] -> PDPT[0] -> PD[1] -> PT, so the PT
// maps virtual 0x200000-0x3fffff; its first 256 entries map that range to the
// same physical frames, writable.
constexpr std::uint64_t kRoot = 0x100000;
constexpr std::uint64_t kPdpt = 0x101000;
constexpr std::uint64_t kPd = 0x102000;
constexpr std::uint64_t kPt = 0x103000;
constexpr std::uint64_t kMappedBase = 0x200000;
constexpr unsigned kMappedPages = 256;
// Other tables the tests build, and plain memory for hypercall arguments
// (kernel-virtual == guest-physical through the fake environment).
constexpr std::uint64_t kSpareTables = 0x110000;
constexpr std::uint64_t kScratch = 0x400000;
constexpr std::uint64_t kSharedFrame = 0x500000;

constexpr std::uint64_t kNonCanonical = 0x0000800000000000;
constexpr std::uint64_t kKernelHandler = 0xffffffff80001000;

// The kernel address space as an identity map of guest RAM: a virtual
// address is the physical one, and anything outside RAM faults as not
// present. Pages can be made read-only to see what a write-protected buffer
// does.
class IdentityMemory final : public monitor::GuestVirtualMemory {
 public:
  explicit IdentityMemory(VectorGuestMemory& memory) : m_memory(memory) {}

  void make_read_only(std::uint64_t address) { m_read_only.insert(address / kPageSize); }

  std::optional<Fault> read(GuestVirtAddr address, std::span<std::uint8_t> out,
                            monitor::AccessPrivilege privilege) override {
    if (auto fault = check(address.value(), out.size(), privilege, 0)) return fault;
    (void)m_memory.read(GuestPhysAddr(address.value()), out);
    return std::nullopt;
  }
  std::optional<Fault> write(GuestVirtAddr virtual_address, std::span<const std::uint8_t> in,
                             monitor::AccessPrivilege privilege) override {
    const std::uint64_t address = virtual_address.value();
    if (in.empty()) return std::nullopt;
    if (auto fault = check(address, in.size(), privilege, kPageFaultWrite)) return fault;
    for (std::uint64_t page = address / kPageSize; page <= (address + in.size() - 1) / kPageSize;
         ++page) {
      if (m_read_only.count(page) != 0) {
        return Fault{GuestVirtAddr(std::max(address, page * kPageSize)),
                     kPageFaultWrite | kPageFaultPresent};
      }
    }
    (void)m_memory.write(GuestPhysAddr(address), in);
    ++m_writes;
    return std::nullopt;
  }
  std::optional<Fault> fetch(GuestVirtAddr address, std::span<std::uint8_t> out,
                             monitor::AccessPrivilege privilege) override {
    return read(address, out, privilege);
  }

  std::size_t writes() const { return m_writes; }

 private:
  std::optional<Fault> check(std::uint64_t address, std::size_t length,
                             monitor::AccessPrivilege privilege, std::uint32_t code) const {
    if (privilege == monitor::AccessPrivilege::User) code |= kPageFaultUser;
    if (length == 0) return std::nullopt;
    if (!m_memory.contains(GuestPhysAddr(address), length)) {
      return Fault{GuestVirtAddr(std::max(address, m_memory.size())), code};
    }
    return std::nullopt;
  }

  VectorGuestMemory& m_memory;
  std::set<std::uint64_t> m_read_only;  // page numbers
  std::size_t m_writes = 0;
};

struct PortAccess {
  enum class Direction { In, Out };
  Direction direction = Direction::Out;
  std::uint16_t port = 0;
  unsigned size = 0;
  std::uint32_t value = 0;
  bool operator==(const PortAccess&) const = default;
};

// GoogleTest finds a value printer by this name.
// NOLINTNEXTLINE(readability-identifier-naming)
void PrintTo(const PortAccess& access, std::ostream* stream) {
  *stream << (access.direction == PortAccess::Direction::In ? "in" : "out") << "(port 0x"
          << std::hex << access.port << ", size " << std::dec << access.size << ", value 0x"
          << std::hex << access.value << std::dec << ")";
}

PortAccess port_in(std::uint16_t port, unsigned size, std::uint32_t value) {
  return {PortAccess::Direction::In, port, size, value};
}
PortAccess port_out(std::uint16_t port, unsigned size, std::uint32_t value) {
  return {PortAccess::Direction::Out, port, size, value};
}

// Records what the hypercalls ask of the VMM.
class FakeEnvironment final : public HypercallEnvironment {
 public:
  explicit FakeEnvironment(VectorGuestMemory& memory) : m_identity(memory) {}

  monitor::GuestVirtualMemory& kernel_memory() override { return m_identity; }
  std::uint32_t port_read(std::uint16_t port, unsigned size) override {
    std::uint32_t value = 0xffffffff;  // an unclaimed port
    if (!port_inputs.empty()) {
      value = port_inputs.front();
      port_inputs.pop_front();
    }
    port_accesses.push_back(port_in(port, size, value));
    return value;
  }
  void port_write(std::uint16_t port, unsigned size, std::uint32_t value) override {
    port_accesses.push_back(port_out(port, size, value));
  }
  void console_write(std::string_view text) override { console += text; }
  void flush_translations() override { ++flushes; }
  void kernel_root_changed(GuestPhysAddr root) override { root_changes.push_back(root.value()); }

  IdentityMemory& identity() { return m_identity; }

  std::deque<std::uint32_t> port_inputs;  // what port_read returns, in order
  std::vector<PortAccess> port_accesses;
  std::string console;
  int flushes = 0;
  std::vector<std::uint64_t> root_changes;

 private:
  IdentityMemory m_identity;
};

vmlab_mmu_update request(std::uint64_t pointer, std::uint64_t value) {
  return {pointer, value, 0x5555};  // the result field must be overwritten
}

vmlab_multicall multicall_entry(std::uint64_t op, std::uint64_t argument0 = 0,
                                std::uint64_t argument1 = 0) {
  vmlab_multicall entry{};
  entry.op = op;
  entry.arguments[0] = argument0;
  entry.arguments[1] = argument1;
  entry.result = 0x5555;
  return entry;
}

class HypercallsTest : public ::testing::Test {
 protected:
  HypercallsTest()
      : m_memory(kRamSize),
        m_validator(make_validator(m_memory)),
        m_environment(m_memory),
        m_hypercalls(m_memory, m_validator, m_environment, m_state) {
    m_memory.put_object(slot_address(kRoot, 0), kPdpt | kTableFlags);
    m_memory.put_object(slot_address(kPdpt, 0), kPd | kTableFlags);
    m_memory.put_object(slot_address(kPd, 1), kPt | kTableFlags);
    for (unsigned index = 0; index < kMappedPages; ++index) {
      m_memory.put_object(slot_address(kPt, index),
                          (kMappedBase + index * kPageSize) | kP | kW | kU);
    }
  }

  // Makes the hypercall with registers set by the calling convention and
  // returns RAX, keeping the outcome and the registers for inspection.
  std::int64_t call(std::uint64_t number, std::uint64_t argument0 = 0, std::uint64_t argument1 = 0,
                    std::uint64_t argument2 = 0, std::uint64_t argument3 = 0,
                    std::uint64_t argument4 = 0) {
    m_registers.rax = number;
    m_registers.rdi = argument0;
    m_registers.rsi = argument1;
    m_registers.rdx = argument2;
    m_registers.r10 = argument3;
    m_registers.r8 = argument4;
    m_outcome = m_hypercalls.call(m_registers);
    if (m_outcome.continuation != HypercallContinuation::Iret) {
      EXPECT_EQ(static_cast<std::int64_t>(m_registers.rax), m_outcome.result);
    }
    return static_cast<std::int64_t>(m_registers.rax);
  }

  void pin_kernel_root() {
    ASSERT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, kRoot, VMLAB_BASEPTR_KERNEL), VMLAB_OK);
    ASSERT_EQ(m_state.kernel_root, GuestPhysAddr(kRoot));
  }
  void register_shared_page() {
    ASSERT_EQ(call(VMLAB_HYPERCALL_REGISTER_SHARED_INFO, kSharedFrame), VMLAB_OK);
  }

  // The batch `sent` to kScratch as the hypercall left it: each element's
  // result as `expected`, and `same_request` checks the rest is as sent.
  template <typename Element, typename SameRequest>
  void expect_batch_results(const std::vector<Element>& sent,
                            const std::vector<std::int64_t>& expected, SameRequest same_request) {
    ASSERT_EQ(sent.size(), expected.size());
    for (std::size_t index = 0; index < sent.size(); ++index) {
      SCOPED_TRACE(index);
      const auto written = m_memory.get_object<Element>(kScratch + index * sizeof(Element));
      EXPECT_EQ(written.result, expected[index]);
      same_request(written, sent[index]);
    }
  }

  unsigned level(std::uint64_t frame) const { return m_validator.level_of(GuestPhysAddr(frame)); }
  std::uint64_t pt_entry(unsigned index) const { return m_memory.get(slot_address(kPt, index)); }

  VectorGuestMemory m_memory;
  PageTableValidator m_validator;
  FakeEnvironment m_environment;
  ParaState m_state;
  Hypercalls m_hypercalls;
  monitor::GuestRegisters m_registers;
  HypercallOutcome m_outcome;
};

// --- dispatch ----------------------------------------------------------------

TEST_F(HypercallsTest, UnknownNumbersAreNotImplemented) {
  for (const std::uint64_t number : {std::uint64_t{14}, std::uint64_t{1000}, ~std::uint64_t{0}}) {
    SCOPED_TRACE(number);
    EXPECT_EQ(call(number, 1, 2, 3, 4, 5), VMLAB_ENOSYS);
    EXPECT_EQ(m_outcome.result, VMLAB_ENOSYS);
    EXPECT_EQ(m_outcome.continuation, HypercallContinuation::Return);
  }
  EXPECT_EQ(m_environment.flushes, 0);
  EXPECT_TRUE(m_environment.port_accesses.empty());
}

TEST_F(HypercallsTest, FlushTlbFlushes) {
  EXPECT_EQ(call(VMLAB_HYPERCALL_FLUSH_TLB, VMLAB_FLUSH_ALL), VMLAB_OK);
  EXPECT_EQ(m_environment.flushes, 1);
  EXPECT_EQ(call(VMLAB_HYPERCALL_FLUSH_TLB, kMappedBase), VMLAB_OK);
  EXPECT_EQ(m_environment.flushes, 2);
}

TEST_F(HypercallsTest, NamesHypercalls) {
  EXPECT_EQ(hypercall_name(VMLAB_HYPERCALL_SET_TRAP_TABLE), "set_trap_table");
  EXPECT_EQ(hypercall_name(VMLAB_HYPERCALL_FLUSH_TLB), "flush_tlb");
  EXPECT_EQ(hypercall_name(VMLAB_HYPERCALL_COUNT), "unknown");
}

// --- set_trap_table ----------------------------------------------------------

TEST_F(HypercallsTest, SetTrapTableInstallsHandlersAndMaskFlags) {
  m_state.trap_table[3] = {GuestVirtAddr(kKernelHandler + 0x300), false};
  m_memory.put_object(kScratch + 0,
                      vmlab_trap_info{14, VMLAB_TRAP_MASK_EVENTS, 0, 0, kKernelHandler});
  m_memory.put_object(kScratch + 16, vmlab_trap_info{32, 0, 0, 0, kKernelHandler + 0x100});
  m_memory.put_object(kScratch + 32, vmlab_trap_info{3, 0, 0, 0, 0});  // removes vector 3's handler
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_TRAP_TABLE, kScratch, 3), VMLAB_OK);
  EXPECT_EQ(m_state.trap_table[14].handler, GuestVirtAddr(kKernelHandler));
  EXPECT_TRUE(m_state.trap_table[14].mask_events);
  EXPECT_EQ(m_state.trap_table[32].handler, GuestVirtAddr(kKernelHandler + 0x100));
  EXPECT_FALSE(m_state.trap_table[32].mask_events);
  EXPECT_EQ(m_state.trap_table[3].handler, GuestVirtAddr(0u));
  EXPECT_EQ(m_state.trap_table[0].handler, GuestVirtAddr(0u));
}

TEST_F(HypercallsTest, SetTrapTableAcceptsAllVectorsButNoMore) {
  for (std::uint64_t vector = 0; vector < 256; ++vector) {
    m_memory.put_object(
        kScratch + vector * 16,
        vmlab_trap_info{static_cast<std::uint8_t>(vector), 0, 0, 0, kKernelHandler + vector * 16});
  }
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_TRAP_TABLE, kScratch, 257), VMLAB_EINVAL);
  EXPECT_EQ(m_state.trap_table[255].handler, GuestVirtAddr(0u));
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_TRAP_TABLE, kScratch, 256), VMLAB_OK);
  EXPECT_EQ(m_state.trap_table[255].handler,
            GuestVirtAddr(kKernelHandler + std::uint64_t{255} * 16));
}

TEST_F(HypercallsTest, SetTrapTableRefusesBadEntriesAndInstallsNothing) {
  const vmlab_trap_info good{14, VMLAB_TRAP_MASK_EVENTS, 0, 0, kKernelHandler};
  m_memory.put_object(kScratch, good);

  m_memory.put_object(kScratch + 16,
                      vmlab_trap_info{32, 0x2, 0, 0, kKernelHandler});  // unknown flag
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_TRAP_TABLE, kScratch, 2), VMLAB_EINVAL);
  EXPECT_EQ(m_state.trap_table[14].handler, GuestVirtAddr(0u));

  m_memory.put_object(kScratch + 16, vmlab_trap_info{32, 0x80, 0, 0, kKernelHandler});
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_TRAP_TABLE, kScratch, 2), VMLAB_EINVAL);

  m_memory.put_object(kScratch + 16, vmlab_trap_info{32, 0, 0, 0, kNonCanonical});
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_TRAP_TABLE, kScratch, 2), VMLAB_EINVAL);
  EXPECT_EQ(m_state.trap_table[14].handler, GuestVirtAddr(0u));
  EXPECT_EQ(m_state.trap_table[32].handler, GuestVirtAddr(0u));
}

TEST_F(HypercallsTest, SetTrapTableOutsideMemoryFaultsWithoutPartialInstall) {
  // The first entry is the last 16 bytes of RAM; the second is beyond it.
  const std::uint64_t address = kRamSize - 16;
  m_memory.put_object(address, vmlab_trap_info{14, 0, 0, 0, kKernelHandler});
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_TRAP_TABLE, address, 2), VMLAB_EFAULT);
  EXPECT_EQ(m_state.trap_table[14].handler, GuestVirtAddr(0u));
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_TRAP_TABLE, kRamSize, 1), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_TRAP_TABLE, kNonCanonical, 1), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_TRAP_TABLE, address, 1), VMLAB_OK);
  EXPECT_EQ(m_state.trap_table[14].handler, GuestVirtAddr(kKernelHandler));
}

// --- mmu_update --------------------------------------------------------------

TEST_F(HypercallsTest, MmuUpdateAppliesABatchAndWritesBackEachResult) {
  pin_kernel_root();
  const std::vector<vmlab_mmu_update> requests = {
      request(slot_address(kPt, 5), 0x300000 | kP | kW | kU),      // present -> another frame
      request(slot_address(kPt, 6), kMonitorBase | kP),            // the monitor region
      request(slot_address(kPt, 7), kPt | kP | kW),                // a page table, writable
      request(slot_address(kPt, 8), (kRamSize + kPageSize) | kP),  // past RAM
      request(slot_address(kPt, 9) + 4, 0x301000 | kP),            // misaligned pointer
      request(slot_address(kPt, 300), 0x302000 | kP | kU),         // not present -> present
  };
  for (std::size_t index = 0; index < requests.size(); ++index) {
    m_memory.put_object(kScratch + index * sizeof(vmlab_mmu_update), requests[index]);
  }
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kScratch, requests.size()), 2);
  EXPECT_EQ(m_outcome.batch_size, 6u);
  EXPECT_EQ(m_outcome.detail, "mmu_update(6 requests) = 2, first error -1");

  const std::vector<std::int64_t> expected = {VMLAB_OK,     VMLAB_EPERM,  VMLAB_EPERM,
                                              VMLAB_EFAULT, VMLAB_EINVAL, VMLAB_OK};
  expect_batch_results(requests, expected, [](const auto& written, const auto& sent) {
    EXPECT_EQ(written.pointer, sent.pointer);
    EXPECT_EQ(written.value, sent.value);
  });
  EXPECT_EQ(pt_entry(5), 0x300000 | kP | kW | kU);
  EXPECT_EQ(pt_entry(6), (kMappedBase + 6 * kPageSize) | kP | kW | kU);
  EXPECT_EQ(pt_entry(7), (kMappedBase + 7 * kPageSize) | kP | kW | kU);
  EXPECT_EQ(pt_entry(8), (kMappedBase + 8 * kPageSize) | kP | kW | kU);
  EXPECT_EQ(pt_entry(9), (kMappedBase + 9 * kPageSize) | kP | kW | kU);
  EXPECT_EQ(pt_entry(300), 0x302000 | kP | kU);
  EXPECT_EQ(m_environment.flushes, 1);  // only entry 5 was present
}

TEST_F(HypercallsTest, MmuUpdateRefusesEmptyAndOversizedBatches) {
  pin_kernel_root();
  m_memory.put_object(kScratch, request(slot_address(kPt, 5), 0));
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kScratch, 0), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kScratch, Hypercalls::kMaximumBatch + 1),
            VMLAB_EINVAL);
  EXPECT_EQ(m_outcome.batch_size, Hypercalls::kMaximumBatch);
  EXPECT_EQ(pt_entry(5), (kMappedBase + 5 * kPageSize) | kP | kW | kU);
  EXPECT_EQ(m_memory.get_object<vmlab_mmu_update>(kScratch).result, 0x5555);
}

TEST_F(HypercallsTest, MmuUpdateWithTheArrayOutsideMemoryFaults) {
  pin_kernel_root();
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kRamSize, 1), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kNonCanonical, 2), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kRamSize - 8, 1), VMLAB_EFAULT);
}

TEST_F(HypercallsTest, MmuUpdateStopsWhereTheArrayLeavesMemory) {
  pin_kernel_root();
  // The first request is the last 24 bytes of RAM; the second is beyond it.
  const std::uint64_t address = kRamSize - sizeof(vmlab_mmu_update);
  m_memory.put_object(address, request(slot_address(kPt, 5), 0));
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, address, 2), VMLAB_EFAULT);
  EXPECT_EQ(pt_entry(5), 0u);  // applied before the fault
  EXPECT_EQ(m_memory.get_object<vmlab_mmu_update>(address).result, VMLAB_OK);
}

TEST_F(HypercallsTest, MmuUpdateFlushesOnlyWhenAPresentEntryChanges) {
  pin_kernel_root();
  m_memory.put_object(kScratch, request(slot_address(kPt, 400), 0x300000 | kP | kU));
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kScratch, 1), 1);
  EXPECT_EQ(m_environment.flushes, 0);  // not present -> present: nothing was cached
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kScratch, 1), 1);
  EXPECT_EQ(m_environment.flushes, 0);  // unchanged
  m_memory.put_object(kScratch, request(slot_address(kPt, 400), 0x301000 | kP | kU));
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kScratch, 1), 1);
  EXPECT_EQ(m_environment.flushes, 1);
  m_memory.put_object(kScratch, request(slot_address(kPt, 400), 0));
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kScratch, 1), 1);
  EXPECT_EQ(m_environment.flushes, 2);
  m_memory.put_object(kScratch, request(slot_address(kPt, 401), kMonitorBase | kP));  // refused
  EXPECT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kScratch, 1), 0);
  EXPECT_EQ(m_memory.get_object<vmlab_mmu_update>(kScratch).result, VMLAB_EPERM);
  EXPECT_EQ(m_environment.flushes, 2);
}

// --- update_va_mapping -------------------------------------------------------

TEST_F(HypercallsTest, UpdateVaMappingWritesTheLeafThroughTheKernelRoot) {
  EXPECT_EQ(call(VMLAB_HYPERCALL_UPDATE_VA_MAPPING, kMappedBase, 0), VMLAB_EINVAL);  // no root yet
  pin_kernel_root();
  const std::uint64_t address = kMappedBase + 6 * kPageSize;
  EXPECT_EQ(call(VMLAB_HYPERCALL_UPDATE_VA_MAPPING, address + 0x123, 0x300000 | kP | kU), VMLAB_OK);
  EXPECT_EQ(pt_entry(6), 0x300000 | kP | kU);
  EXPECT_EQ(m_environment.flushes, 1);
  EXPECT_EQ(call(VMLAB_HYPERCALL_UPDATE_VA_MAPPING, kMappedBase + 300 * kPageSize, 0x301000 | kP),
            VMLAB_OK);
  EXPECT_EQ(pt_entry(300), 0x301000 | kP);
  EXPECT_EQ(m_environment.flushes, 1);

  // The validator's rules apply.
  EXPECT_EQ(call(VMLAB_HYPERCALL_UPDATE_VA_MAPPING, address, kMonitorBase | kP), VMLAB_EPERM);
  EXPECT_EQ(call(VMLAB_HYPERCALL_UPDATE_VA_MAPPING, address, kPd | kP | kW), VMLAB_EPERM);
  EXPECT_EQ(pt_entry(6), 0x300000 | kP | kU);
  // No table maps it, or the address is not one.
  EXPECT_EQ(call(VMLAB_HYPERCALL_UPDATE_VA_MAPPING, 0x40000000, 0x300000 | kP), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_UPDATE_VA_MAPPING, kNonCanonical, 0x300000 | kP), VMLAB_EINVAL);
}

// --- new_baseptr -------------------------------------------------------------

TEST_F(HypercallsTest, NewBaseptrPinsTheKernelRoot) {
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, kRoot, VMLAB_BASEPTR_KERNEL), VMLAB_OK);
  EXPECT_EQ(m_state.kernel_root, GuestPhysAddr(kRoot));
  EXPECT_EQ(m_state.user_root, GuestPhysAddr(0u));
  EXPECT_EQ(m_environment.root_changes, std::vector<std::uint64_t>{kRoot});
  EXPECT_EQ(level(kRoot), 4u);
  EXPECT_EQ(level(kPt), 1u);
  EXPECT_EQ(m_memory.get(slot_address(kRoot, 511)), kMonitorEntry);

  // A new kernel root releases the old one.
  const std::uint64_t other = kSpareTables;
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, other, VMLAB_BASEPTR_KERNEL), VMLAB_OK);
  EXPECT_EQ(m_state.kernel_root, GuestPhysAddr(other));
  EXPECT_EQ(m_environment.root_changes, (std::vector<std::uint64_t>{kRoot, other}));
  EXPECT_EQ(level(other), 4u);
  EXPECT_EQ(level(kRoot), 0u);
  EXPECT_EQ(level(kPt), 0u);
}

TEST_F(HypercallsTest, NewBaseptrSetsAndClearsTheUserRoot) {
  pin_kernel_root();
  const std::uint64_t user = kSpareTables;
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, user, VMLAB_BASEPTR_USER), VMLAB_OK);
  EXPECT_EQ(m_state.user_root, GuestPhysAddr(user));
  EXPECT_EQ(m_state.kernel_root, GuestPhysAddr(kRoot));
  EXPECT_EQ(level(user), 4u);
  EXPECT_EQ(m_environment.root_changes, std::vector<std::uint64_t>{kRoot});
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, 0, VMLAB_BASEPTR_USER), VMLAB_OK);
  EXPECT_EQ(m_state.user_root, GuestPhysAddr(0u));
  EXPECT_EQ(level(user), 0u);
  EXPECT_EQ(level(kRoot), 4u);
}

TEST_F(HypercallsTest, NewBaseptrRefusesBadKindsAndRoots) {
  pin_kernel_root();
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, kSpareTables, 2), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, kSpareTables, ~std::uint64_t{0}), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, kRamSize, VMLAB_BASEPTR_KERNEL), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, kSpareTables + 0x800, VMLAB_BASEPTR_KERNEL),
            VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, kMonitorBase, VMLAB_BASEPTR_USER), VMLAB_EPERM);
  EXPECT_EQ(m_state.kernel_root, GuestPhysAddr(kRoot));
  EXPECT_EQ(m_state.user_root, GuestPhysAddr(0u));
  EXPECT_EQ(level(kSpareTables), 0u);
  EXPECT_EQ(m_environment.root_changes, std::vector<std::uint64_t>{kRoot});
}

TEST_F(HypercallsTest, NewBaseptrKeepsTheOldRootWhenTheNewOneMapsTheMonitor) {
  pin_kernel_root();
  const std::uint64_t root = kSpareTables;
  const std::uint64_t pdpt = kSpareTables + kPageSize;
  const std::uint64_t pd = kSpareTables + 2 * kPageSize;
  const std::uint64_t pt = kSpareTables + 3 * kPageSize;
  m_memory.put_object(slot_address(root, 0), pdpt | kTableFlags);
  m_memory.put_object(slot_address(pdpt, 0), pd | kTableFlags);
  m_memory.put_object(slot_address(pd, 0), pt | kTableFlags);
  m_memory.put_object(slot_address(pt, 0), kMonitorBase | kP);
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, root, VMLAB_BASEPTR_KERNEL), VMLAB_EPERM);
  EXPECT_EQ(m_state.kernel_root, GuestPhysAddr(kRoot));
  EXPECT_EQ(m_environment.root_changes, std::vector<std::uint64_t>{kRoot});
  EXPECT_EQ(level(kRoot), 4u);
  EXPECT_EQ(level(kPt), 1u);
  EXPECT_EQ(level(root), 0u);
  EXPECT_EQ(level(pt), 0u);
  EXPECT_EQ(call(VMLAB_HYPERCALL_NEW_BASEPTR, root, VMLAB_BASEPTR_USER), VMLAB_EPERM);
  EXPECT_EQ(m_state.user_root, GuestPhysAddr(0u));
}

// --- set_gdt -----------------------------------------------------------------

constexpr std::uint64_t kNullDescriptor = 0;
constexpr std::uint64_t kKernelCodeDescriptor = 0x00af9a000000ffff;  // L=1, D=0, DPL 0
constexpr std::uint64_t kKernelDataDescriptor = 0x00cf92000000ffff;
constexpr std::uint64_t kUserDataDescriptor = 0x00cff2000000ffff;
constexpr std::uint64_t kUserCodeDescriptor = 0x00affa000000ffff;
constexpr std::uint64_t kTssLow =
    103 | (0x0100ull << 16) | (0x89ull << 40);  // available 64-bit TSS
constexpr std::uint64_t kTssHigh = 0;
constexpr std::uint64_t kCallGate = 0x1000 | (0x08ull << 16) | (0xecull << 40);  // 64-bit, DPL 3
constexpr std::uint64_t kLdtDescriptor = 0xffff | (0x82ull << 40);
constexpr std::uint64_t kCode32Descriptor = 0x00cf9a000000ffff;  // L=0, D=1
constexpr std::uint64_t kCode16Descriptor = 0x000f9a000000ffff;  // L=0, D=0

void put_descriptors(VectorGuestMemory& memory, std::uint64_t address,
                     const std::vector<std::uint64_t>& descriptors) {
  for (std::size_t index = 0; index < descriptors.size(); ++index) {
    memory.put_object(address + index * 8, descriptors[index]);
  }
}

TEST_F(HypercallsTest, SetGdtAcceptsFlatSegmentsAndATss) {
  put_descriptors(m_memory, kScratch,
                  {kNullDescriptor, kKernelCodeDescriptor, kKernelDataDescriptor,
                   kUserDataDescriptor, kUserCodeDescriptor, kTssLow, kTssHigh});
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_GDT, kScratch, 7), VMLAB_OK);
  EXPECT_EQ(m_state.gdt_address, GuestVirtAddr(kScratch));
  EXPECT_EQ(m_state.gdt_entries, 7u);
}

TEST_F(HypercallsTest, SetGdtRefusesGatesLdtsAndLegacyCode) {
  put_descriptors(m_memory, kScratch, {kNullDescriptor, kKernelCodeDescriptor});
  ASSERT_EQ(call(VMLAB_HYPERCALL_SET_GDT, kScratch, 2), VMLAB_OK);
  for (const std::uint64_t bad :
       {kCallGate, kLdtDescriptor, kCode32Descriptor, kCode16Descriptor}) {
    SCOPED_TRACE(bad);
    put_descriptors(m_memory, kScratch + kPageSize, {kNullDescriptor, kKernelDataDescriptor, bad});
    EXPECT_EQ(call(VMLAB_HYPERCALL_SET_GDT, kScratch + kPageSize, 3), VMLAB_EPERM);
    EXPECT_EQ(m_state.gdt_address, GuestVirtAddr(kScratch));
    EXPECT_EQ(m_state.gdt_entries, 2u);
  }
  // A not-present descriptor grants nothing, whatever it describes.
  put_descriptors(m_memory, kScratch + kPageSize,
                  {kNullDescriptor, kCallGate & ~(1ull << 47), kLdtDescriptor & ~(1ull << 47)});
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_GDT, kScratch + kPageSize, 3), VMLAB_OK);
}

TEST_F(HypercallsTest, SetGdtRefusesBadSizesAndPointers) {
  put_descriptors(m_memory, kScratch, {kNullDescriptor, kTssLow});
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_GDT, kScratch, 0), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_GDT, kScratch, 8193), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_GDT, kScratch, 2), VMLAB_EINVAL);  // half a TSS
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_GDT, kRamSize - 8, 2), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_GDT, kNonCanonical, 1), VMLAB_EFAULT);
  EXPECT_EQ(m_state.gdt_address, GuestVirtAddr(0u));
  EXPECT_EQ(m_state.gdt_entries, 0u);
}

// --- stack_switch, set_callbacks ---------------------------------------------

TEST_F(HypercallsTest, StackSwitchStoresCanonicalStacks) {
  EXPECT_EQ(call(VMLAB_HYPERCALL_STACK_SWITCH, 0xffff800000010000), VMLAB_OK);
  EXPECT_EQ(m_state.kernel_stack, GuestVirtAddr(0xffff800000010000u));
  EXPECT_EQ(call(VMLAB_HYPERCALL_STACK_SWITCH, kNonCanonical), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_STACK_SWITCH, 0xfff0000000000000), VMLAB_EINVAL);
  EXPECT_EQ(m_state.kernel_stack, GuestVirtAddr(0xffff800000010000u));
}

TEST_F(HypercallsTest, SetCallbacksStoresCanonicalEntries) {
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_CALLBACKS, kKernelHandler), VMLAB_OK);
  EXPECT_EQ(m_state.syscall_entry, GuestVirtAddr(kKernelHandler));
  EXPECT_EQ(call(VMLAB_HYPERCALL_SET_CALLBACKS, kNonCanonical), VMLAB_EINVAL);
  EXPECT_EQ(m_state.syscall_entry, GuestVirtAddr(kKernelHandler));
}

// --- sched_op ----------------------------------------------------------------

TEST_F(HypercallsTest, SchedOpYieldReturnsAndBlockUnmasksAndBlocks) {
  register_shared_page();
  EXPECT_TRUE(m_hypercalls.events_masked());
  EXPECT_EQ(call(VMLAB_HYPERCALL_SCHED_OP, VMLAB_SCHED_YIELD), VMLAB_OK);
  EXPECT_EQ(m_outcome.continuation, HypercallContinuation::Return);
  EXPECT_EQ(m_memory.get_u8(kSharedFrame), 1u);

  EXPECT_EQ(call(VMLAB_HYPERCALL_SCHED_OP, VMLAB_SCHED_BLOCK), VMLAB_OK);
  EXPECT_EQ(m_outcome.continuation, HypercallContinuation::Block);
  EXPECT_EQ(m_memory.get_u8(kSharedFrame), 0u);
  EXPECT_FALSE(m_hypercalls.events_masked());

  m_hypercalls.set_events_masked(true);
  EXPECT_EQ(call(VMLAB_HYPERCALL_SCHED_OP, 7), VMLAB_EINVAL);
  EXPECT_EQ(m_outcome.continuation, HypercallContinuation::Return);
  EXPECT_TRUE(m_hypercalls.events_masked());
}

// --- register_shared_info and the shared page --------------------------------

TEST_F(HypercallsTest, RegisterSharedInfoChecksTheFrame) {
  EXPECT_EQ(call(VMLAB_HYPERCALL_REGISTER_SHARED_INFO, kSharedFrame + 8), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_REGISTER_SHARED_INFO, kRamSize), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_REGISTER_SHARED_INFO, kMonitorBase), VMLAB_EFAULT);
  pin_kernel_root();
  EXPECT_EQ(call(VMLAB_HYPERCALL_REGISTER_SHARED_INFO, kPt), VMLAB_EBUSY);
  EXPECT_EQ(call(VMLAB_HYPERCALL_REGISTER_SHARED_INFO, kRoot), VMLAB_EBUSY);
  EXPECT_FALSE(m_state.shared_info.has_value());
  EXPECT_TRUE(m_hypercalls.events_masked());
}

TEST_F(HypercallsTest, RegisterSharedInfoStartsMasked) {
  m_memory.fill(kSharedFrame, 0xff, kPageSize);
  EXPECT_EQ(call(VMLAB_HYPERCALL_REGISTER_SHARED_INFO, kSharedFrame), VMLAB_OK);
  EXPECT_EQ(m_state.shared_info, std::optional{GuestPhysAddr(kSharedFrame)});
  EXPECT_EQ(m_memory.get_u8(kSharedFrame + 0), 1u);  // upcall_mask
  for (std::uint64_t offset = 1; offset < VMLAB_SHARED_INFO_SIZE; ++offset) {
    EXPECT_EQ(m_memory.get_u8(kSharedFrame + offset), 0u) << "offset " << offset;
  }
  EXPECT_TRUE(m_hypercalls.events_masked());
  EXPECT_FALSE(m_hypercalls.event_pending_flag());
  // The last frame of RAM will do.
  EXPECT_EQ(call(VMLAB_HYPERCALL_REGISTER_SHARED_INFO, kRamSize - kPageSize), VMLAB_OK);
  EXPECT_EQ(m_state.shared_info, std::optional{GuestPhysAddr(kRamSize - kPageSize)});
}

TEST_F(HypercallsTest, SharedPageFieldsLandAtTheirOffsets) {
  // Before registration there is no page: events stay masked.
  EXPECT_TRUE(m_hypercalls.events_masked());
  m_hypercalls.set_events_masked(false);
  EXPECT_TRUE(m_hypercalls.events_masked());
  EXPECT_FALSE(m_hypercalls.event_pending_flag());

  register_shared_page();
  m_hypercalls.set_events_masked(false);
  EXPECT_EQ(m_memory.get_u8(kSharedFrame + 0), 0u);
  EXPECT_FALSE(m_hypercalls.events_masked());
  m_hypercalls.set_event_pending(true);
  EXPECT_EQ(m_memory.get_u8(kSharedFrame + 1), 1u);
  EXPECT_TRUE(m_hypercalls.event_pending_flag());
  m_hypercalls.set_fault_address(GuestVirtAddr(0xffff888000123456));
  EXPECT_EQ(m_memory.get(kSharedFrame + 8), 0xffff888000123456u);
  m_hypercalls.count_event();
  m_hypercalls.count_event();
  EXPECT_EQ(m_memory.get(kSharedFrame + 16), 2u);
  EXPECT_EQ(m_memory.get(kSharedFrame + 24), 0u);  // registration reset the count
  EXPECT_EQ(call(VMLAB_HYPERCALL_FLUSH_TLB, VMLAB_FLUSH_ALL), VMLAB_OK);
  EXPECT_EQ(call(14), VMLAB_ENOSYS);
  EXPECT_EQ(m_memory.get(kSharedFrame + 24), 2u);
  m_hypercalls.set_event_pending(false);
  EXPECT_EQ(m_memory.get_u8(kSharedFrame + 1), 0u);
  m_hypercalls.set_events_masked(true);
  EXPECT_EQ(m_memory.get_u8(kSharedFrame + 0), 1u);
  // The guest's own stores are what the monitor reads.
  m_memory.put_object<std::uint8_t>(kSharedFrame + 0, 0);
  m_memory.put_object<std::uint8_t>(kSharedFrame + 1, 1);
  EXPECT_FALSE(m_hypercalls.events_masked());
  EXPECT_TRUE(m_hypercalls.event_pending_flag());
  EXPECT_EQ(m_memory.get(kSharedFrame + 8), 0xffff888000123456u);
  EXPECT_EQ(m_memory.get(kSharedFrame + 16), 2u);
}

TEST_F(HypercallsTest, SharedPageThatBecameAPageTableIsNotWritten) {
  pin_kernel_root();
  register_shared_page();
  // The frame has no writable mapping, so the guest can make it a page table:
  // PD[2] (virtual 0x400000-0x5fffff) points at it. Its entries (mask 1 maps
  // frame 0 read-only, counters) pass validation.
  m_memory.put_object(kScratch, request(slot_address(kPd, 2), kSharedFrame | kTableFlags));
  ASSERT_EQ(call(VMLAB_HYPERCALL_MMU_UPDATE, kScratch, 1), 1);
  ASSERT_EQ(level(kSharedFrame), 1u);
  const std::uint64_t entry0 = m_memory.get(kSharedFrame + 0);
  const std::uint64_t entry3 = m_memory.get(kSharedFrame + 24);
  // A fault address the guest chose would otherwise become entry 1 and map
  // the monitor region, and the counters entries 2 and 3.
  m_hypercalls.set_fault_address(GuestVirtAddr(kMonitorBase | kP | kW));
  m_hypercalls.count_event();
  m_hypercalls.set_events_masked(false);
  m_hypercalls.set_event_pending(true);
  EXPECT_EQ(call(VMLAB_HYPERCALL_FLUSH_TLB, VMLAB_FLUSH_ALL), VMLAB_OK);
  EXPECT_EQ(m_memory.get(kSharedFrame + 0), entry0);
  EXPECT_EQ(m_memory.get(kSharedFrame + 8), 0u);
  EXPECT_EQ(m_memory.get(kSharedFrame + 16), 0u);
  EXPECT_EQ(m_memory.get(kSharedFrame + 24), entry3);
  EXPECT_TRUE(m_hypercalls.events_masked());
  EXPECT_FALSE(m_hypercalls.event_pending_flag());
}

// --- console_io --------------------------------------------------------------

TEST_F(HypercallsTest, ConsoleWriteReachesTheEnvironment) {
  const std::string text = "hello, vmlab\n";
  for (std::size_t index = 0; index < text.size(); ++index) {
    m_memory.put_object(kScratch + index, text[index]);
  }
  EXPECT_EQ(call(VMLAB_HYPERCALL_CONSOLE_IO, VMLAB_CONSOLE_WRITE, text.size(), kScratch),
            static_cast<std::int64_t>(text.size()));
  EXPECT_EQ(m_environment.console, text);
  EXPECT_EQ(call(VMLAB_HYPERCALL_CONSOLE_IO, VMLAB_CONSOLE_WRITE, 5, kScratch), 5);
  EXPECT_EQ(m_environment.console, text + "hello");
}

TEST_F(HypercallsTest, ConsoleIoRefusesBadRequests) {
  EXPECT_EQ(call(VMLAB_HYPERCALL_CONSOLE_IO, VMLAB_CONSOLE_WRITE,
                 Hypercalls::kMaximumConsoleWrite + 1, kScratch),
            VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_CONSOLE_IO, VMLAB_CONSOLE_WRITE, 4, kRamSize - 2), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_CONSOLE_IO, VMLAB_CONSOLE_WRITE, 4, kNonCanonical), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_CONSOLE_IO, 1, 4, kScratch), VMLAB_EINVAL);
  EXPECT_EQ(m_environment.console, "");
  EXPECT_EQ(call(VMLAB_HYPERCALL_CONSOLE_IO, VMLAB_CONSOLE_WRITE, Hypercalls::kMaximumConsoleWrite,
                 kScratch),
            static_cast<std::int64_t>(Hypercalls::kMaximumConsoleWrite));
  EXPECT_EQ(m_environment.console.size(), Hypercalls::kMaximumConsoleWrite);
}

// --- port_io -----------------------------------------------------------------

TEST_F(HypercallsTest, PortIoSingleAccessesOfEachSize) {
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x3f8, 1, 0x41), VMLAB_OK);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, 2, 0xbeef), VMLAB_OK);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0xcfc, 4, 0x12345678), VMLAB_OK);
  m_environment.port_inputs = {0x5a, 0xcafe, 0xdeadbeef};
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x3fd, 1 | VMLAB_PORT_INPUT), 0x5a);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, 2 | VMLAB_PORT_INPUT), 0xcafe);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0xffff, 4 | VMLAB_PORT_INPUT), 0xdeadbeef);
  EXPECT_EQ(m_environment.port_accesses,
            (std::vector<PortAccess>{port_out(0x3f8, 1, 0x41), port_out(0x1f0, 2, 0xbeef),
                                     port_out(0xcfc, 4, 0x12345678), port_in(0x3fd, 1, 0x5a),
                                     port_in(0x1f0, 2, 0xcafe), port_in(0xffff, 4, 0xdeadbeef)}));
}

TEST_F(HypercallsTest, PortIoRefusesBadSizesFlagsAndPorts) {
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x3f8, 3, 0x41), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x3f8, 0, 0x41), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x3f8, 8 | VMLAB_PORT_INPUT), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x3f8, 1 | 0x40, 0x41), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x3f8, 1 | (1ull << 32), 0x41), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x10000, 1, 0x41), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x10000 | 0x3f8, 1 | VMLAB_PORT_INPUT), VMLAB_EINVAL);
  EXPECT_TRUE(m_environment.port_accesses.empty());
}

TEST_F(HypercallsTest, PortIoStringOutputMovesEachElementFromMemory) {
  m_memory.put_object<std::uint16_t>(kScratch + 0, 0x1111);
  m_memory.put_object<std::uint16_t>(kScratch + 2, 0x2222);
  m_memory.put_object<std::uint16_t>(kScratch + 4, 0x3333);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, 2 | VMLAB_PORT_STRING, kScratch, 3), 3);
  m_memory.put_object<std::uint32_t>(kScratch + 8, 0x44332211);
  m_memory.put_object<std::uint32_t>(kScratch + 12, 0x88776655);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, 4 | VMLAB_PORT_STRING, kScratch + 8, 2), 2);
  EXPECT_EQ(m_environment.port_accesses,
            (std::vector<PortAccess>{port_out(0x1f0, 2, 0x1111), port_out(0x1f0, 2, 0x2222),
                                     port_out(0x1f0, 2, 0x3333), port_out(0x1f0, 4, 0x44332211),
                                     port_out(0x1f0, 4, 0x88776655)}));
}

TEST_F(HypercallsTest, PortIoStringInputFillsMemory) {
  m_memory.fill(kScratch, 0xee, 16);
  m_environment.port_inputs = {0xa1, 0xb2, 0xc3, 0xd4};
  EXPECT_EQ(
      call(VMLAB_HYPERCALL_PORT_IO, 0x60, 1 | VMLAB_PORT_INPUT | VMLAB_PORT_STRING, kScratch, 4),
      4);
  EXPECT_EQ(m_memory.get_object<std::uint32_t>(kScratch), 0xd4c3b2a1u);
  EXPECT_EQ(m_memory.get_u8(kScratch + 4), 0xeeu);  // nothing past the buffer
  m_environment.port_inputs = {0xaaaa, 0xbbbb};
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, 2 | VMLAB_PORT_INPUT | VMLAB_PORT_STRING,
                 kScratch + 8, 2),
            2);
  EXPECT_EQ(m_memory.get_object<std::uint32_t>(kScratch + 8), 0xbbbbaaaau);
  EXPECT_EQ(m_memory.get_u8(kScratch + 12), 0xeeu);
  EXPECT_EQ(m_environment.port_accesses.size(), 6u);
}

TEST_F(HypercallsTest, PortIoStringRefusesBadCountsAndBuffersWithoutTouchingDevices) {
  const std::uint64_t input = 2 | VMLAB_PORT_INPUT | VMLAB_PORT_STRING;
  const std::uint64_t output = 2 | VMLAB_PORT_STRING;
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, output, kScratch, 0), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, input, kScratch, 0), VMLAB_EINVAL);
  EXPECT_EQ(
      call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, output, kScratch, Hypercalls::kMaximumPortString + 1),
      VMLAB_EINVAL);
  // The buffer's last element is past RAM, or the buffer is not canonical.
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, output, kRamSize - 2, 2), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, input, kRamSize - 2, 2), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, input, kNonCanonical, 1), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, output, kNonCanonical - 2, 2), VMLAB_EFAULT);
  EXPECT_TRUE(m_environment.port_accesses.empty());
}

TEST_F(HypercallsTest, PortIoStringInputIntoAReadOnlyBufferReadsNoDevice) {
  m_environment.identity().make_read_only(kScratch);
  m_environment.port_inputs = {0x1234, 0x5678};
  EXPECT_EQ(call(VMLAB_HYPERCALL_PORT_IO, 0x1f0, 2 | VMLAB_PORT_INPUT | VMLAB_PORT_STRING,
                 kScratch + kPageSize - 2, 2),
            VMLAB_EFAULT);
  EXPECT_TRUE(m_environment.port_accesses.empty());
  EXPECT_EQ(m_environment.port_inputs.size(), 2u);
}

// --- multicall ---------------------------------------------------------------

TEST_F(HypercallsTest, MulticallRunsABatchAndWritesBackEachResult) {
  const std::vector<vmlab_multicall> entries = {
      multicall_entry(VMLAB_HYPERCALL_STACK_SWITCH, 0xffff800000010000),
      multicall_entry(VMLAB_HYPERCALL_SET_CALLBACKS, kKernelHandler),
      multicall_entry(14),
      multicall_entry(VMLAB_HYPERCALL_MULTICALL, kScratch, 1),
      multicall_entry(VMLAB_HYPERCALL_IRET),
      multicall_entry(VMLAB_HYPERCALL_SCHED_OP, VMLAB_SCHED_BLOCK),
      multicall_entry(VMLAB_HYPERCALL_SCHED_OP, VMLAB_SCHED_YIELD),
      multicall_entry(VMLAB_HYPERCALL_SET_CALLBACKS, kNonCanonical),
  };
  for (std::size_t index = 0; index < entries.size(); ++index) {
    m_memory.put_object(kScratch + index * sizeof(vmlab_multicall), entries[index]);
  }
  register_shared_page();
  // An IRET frame at RSP that a batched IRET must not take.
  m_registers.rsp = kScratch + kPageSize;
  m_memory.put_object(kScratch + kPageSize,
                      vmlab_iret_frame{1, 2, 3, 0x401000, kVirtualUserCode, kRflagsInterrupt,
                                       0x7ff000, kVirtualUserData});
  m_registers.rip = 0x200123;

  EXPECT_EQ(call(VMLAB_HYPERCALL_MULTICALL, kScratch, entries.size()), 8);
  EXPECT_EQ(m_outcome.continuation, HypercallContinuation::Return);
  EXPECT_EQ(m_outcome.batch_size, 8u);
  const std::vector<std::int64_t> expected = {VMLAB_OK,     VMLAB_OK,     VMLAB_ENOSYS,
                                              VMLAB_EINVAL, VMLAB_EINVAL, VMLAB_EINVAL,
                                              VMLAB_OK,     VMLAB_EINVAL};
  expect_batch_results(entries, expected, [](const auto& written, const auto& sent) {
    EXPECT_EQ(written.op, sent.op);
    EXPECT_EQ(written.arguments[0], sent.arguments[0]);
  });
  EXPECT_EQ(m_state.kernel_stack, GuestVirtAddr(0xffff800000010000u));
  EXPECT_EQ(m_state.syscall_entry, GuestVirtAddr(kKernelHandler));
  EXPECT_EQ(m_registers.rip, 0x200123u);
  EXPECT_EQ(m_registers.rsp, kScratch + kPageSize);
  EXPECT_EQ(m_state.cpl, 0u);
  EXPECT_TRUE(m_hypercalls.events_masked());
}

TEST_F(HypercallsTest, MulticallCanBatchPageTableUpdates) {
  pin_kernel_root();
  m_memory.put_object(kScratch + kPageSize, request(slot_address(kPt, 5), 0));
  m_memory.put_object(kScratch + kPageSize + sizeof(vmlab_mmu_update),
                      request(slot_address(kPt, 6), kMonitorBase | kP));
  m_memory.put_object(kScratch,
                      multicall_entry(VMLAB_HYPERCALL_MMU_UPDATE, kScratch + kPageSize, 2));
  m_memory.put_object(
      kScratch + sizeof(vmlab_multicall),
      multicall_entry(VMLAB_HYPERCALL_UPDATE_VA_MAPPING, kMappedBase + 7 * kPageSize, 0));
  EXPECT_EQ(call(VMLAB_HYPERCALL_MULTICALL, kScratch, 2), 2);
  EXPECT_EQ(m_memory.get_object<vmlab_multicall>(kScratch).result, 1);
  EXPECT_EQ(m_memory.get_object<vmlab_multicall>(kScratch + sizeof(vmlab_multicall)).result,
            VMLAB_OK);
  EXPECT_EQ(m_memory.get_object<vmlab_mmu_update>(kScratch + kPageSize).result, VMLAB_OK);
  EXPECT_EQ(
      m_memory.get_object<vmlab_mmu_update>(kScratch + kPageSize + sizeof(vmlab_mmu_update)).result,
      VMLAB_EPERM);
  EXPECT_EQ(pt_entry(5), 0u);
  EXPECT_EQ(pt_entry(7), 0u);
  EXPECT_EQ(m_environment.flushes, 2);
}

TEST_F(HypercallsTest, MulticallRefusesEmptyOversizedAndUnreadableBatches) {
  m_memory.put_object(kScratch, multicall_entry(VMLAB_HYPERCALL_STACK_SWITCH, 0xffff800000010000));
  EXPECT_EQ(call(VMLAB_HYPERCALL_MULTICALL, kScratch, 0), VMLAB_EINVAL);
  EXPECT_EQ(call(VMLAB_HYPERCALL_MULTICALL, kScratch, Hypercalls::kMaximumBatch + 1), VMLAB_EINVAL);
  EXPECT_EQ(m_state.kernel_stack, GuestVirtAddr(0u));
  EXPECT_EQ(m_memory.get_object<vmlab_multicall>(kScratch).result, 0x5555);
  EXPECT_EQ(call(VMLAB_HYPERCALL_MULTICALL, kRamSize, 1), VMLAB_EFAULT);
  EXPECT_EQ(call(VMLAB_HYPERCALL_MULTICALL, kNonCanonical, 1), VMLAB_EFAULT);
}

// --- iret --------------------------------------------------------------------

class HypercallsIretTest : public HypercallsTest {
 protected:
  static constexpr std::uint64_t kFrameAddress = kScratch + 0x800;

  std::int64_t iret(const vmlab_iret_frame& frame) {
    m_memory.put_object(kFrameAddress, frame);
    m_registers.rsp = kFrameAddress;
    m_registers.rip = 0x200123;
    m_registers.rcx = 0x200125;  // what SYSCALL left
    m_registers.r11 = 0x202;
    m_registers.rbx = 0xb0b0;
    return call(VMLAB_HYPERCALL_IRET);
  }
};

TEST_F(HypercallsIretTest, ReturnsToUserModeRestoringTheFrame) {
  register_shared_page();
  const std::uint64_t rflags =
      kRflagsInterrupt | kRflagsIoplMask | kRflagsCarry | kRflagsNestedTask;
  EXPECT_EQ(iret({0x1111, 0x2222, 0x3333, 0x401000, kVirtualUserCode, rflags, 0x7ff000,
                  kVirtualUserData}),
            0x1111);
  EXPECT_EQ(m_outcome.result, VMLAB_OK);
  EXPECT_EQ(m_outcome.continuation, HypercallContinuation::Iret);
  EXPECT_EQ(m_registers.rax, 0x1111u);
  EXPECT_EQ(m_registers.rcx, 0x2222u);
  EXPECT_EQ(m_registers.r11, 0x3333u);
  EXPECT_EQ(m_registers.rip, 0x401000u);
  EXPECT_EQ(m_registers.rsp, 0x7ff000u);
  EXPECT_EQ(m_registers.rbx, 0xb0b0u);
  EXPECT_EQ(m_registers.rflags,
            kRflagsInterrupt | kRflagsCarry | kRflagsFixed);  // IOPL, NT gone
  EXPECT_EQ(m_state.cpl, 3u);
  EXPECT_EQ(m_memory.get_u8(kSharedFrame), 0u);
  EXPECT_FALSE(m_hypercalls.events_masked());
}

TEST_F(HypercallsIretTest, ReturnsToKernelModeWithEventsMasked) {
  register_shared_page();
  m_hypercalls.set_events_masked(false);
  m_state.cpl = 3;
  EXPECT_EQ(iret({7, 8, 9, kKernelHandler, kVirtualKernelCode, kRflagsZero, 0x3ff000,
                  kVirtualKernelData}),
            7);
  EXPECT_EQ(m_outcome.continuation, HypercallContinuation::Iret);
  EXPECT_EQ(m_registers.rip, kKernelHandler);
  EXPECT_EQ(m_registers.rsp, 0x3ff000u);
  EXPECT_EQ(m_registers.rflags, kRflagsZero | kRflagsFixed);
  EXPECT_EQ(m_state.cpl, 0u);
  EXPECT_EQ(m_memory.get_u8(kSharedFrame), 1u);
  EXPECT_TRUE(m_hypercalls.events_masked());
}

TEST_F(HypercallsIretTest, RefusesBadFramesAndChangesNothing) {
  register_shared_page();
  struct Case {
    const char* what;
    vmlab_iret_frame frame;
  };
  const Case cases[] = {
      {"RPL 1", {1, 2, 3, 0x401000, 0x09, kRflagsInterrupt, 0x7ff000, kVirtualUserData}},
      {"RPL 2", {1, 2, 3, 0x401000, 0x12, kRflagsInterrupt, 0x7ff000, kVirtualUserData}},
      {"rip", {1, 2, 3, kNonCanonical, 0x23, kRflagsInterrupt, 0x7ff000, 0x1b}},
      {"rsp", {1, 2, 3, 0x401000, 0x23, kRflagsInterrupt, kNonCanonical, 0x1b}},
  };
  for (const Case& bad : cases) {
    SCOPED_TRACE(bad.what);
    EXPECT_EQ(iret(bad.frame), VMLAB_EINVAL);
    EXPECT_EQ(m_outcome.continuation, HypercallContinuation::Return);
    EXPECT_EQ(m_registers.rip, 0x200123u);
    EXPECT_EQ(m_registers.rsp, kFrameAddress);
    EXPECT_EQ(m_registers.rcx, 0x200125u);
    EXPECT_EQ(m_state.cpl, 0u);
    EXPECT_TRUE(m_hypercalls.events_masked());
  }
}

TEST_F(HypercallsIretTest, FrameOutsideMemoryFaults) {
  m_registers.rsp = kRamSize - 32;  // half the frame is past RAM
  m_registers.rip = 0x200123;
  EXPECT_EQ(call(VMLAB_HYPERCALL_IRET), VMLAB_EFAULT);
  EXPECT_EQ(m_outcome.continuation, HypercallContinuation::Return);
  EXPECT_EQ(m_registers.rip, 0x200123u);
  EXPECT_EQ(m_registers.rsp, kRamSize - 32);
  m_registers.rsp = kNonCanonical;
  EXPECT_EQ(call(VMLAB_HYPERCALL_IRET), VMLAB_EFAULT);
}

}  // namespace
}  // namespace vmlab::para
