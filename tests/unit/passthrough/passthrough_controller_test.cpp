// The passthrough controller driven the way the guest's native driver drives
// it: queues in (fake) guest memory, registers in a shared page, completions
// found by their phase bit. Every wait has a deadline, so a broken device
// fails a test instead of hanging it.
#include <vmlab/devices/passthrough_controller.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <vmlab/devices/memory_block_backend.hpp>

#include "vector_memory.hpp"

namespace vmlab::devices {
namespace {

using testing::VectorMemory;

using namespace std::chrono_literals;

constexpr std::uint64_t kMemorySize = 1 * MiB;
constexpr std::uint64_t kDiskSectors = 256;
constexpr std::uint64_t kSubmissionQueue = 0x10000;
constexpr std::uint64_t kCompletionQueue = 0x20000;
constexpr std::uint64_t kBuffer = 0x40000;
constexpr std::uint64_t kOtherBuffer = 0x60000;
constexpr auto kDeadline = 2s;

struct alignas(4096) RegisterWindow {
  std::array<std::uint8_t, VMLAB_PT_WINDOW_SIZE> bytes{};
};

// Runs `work` on a thread and fails the test (ending the process, since the
// thread cannot be abandoned safely) if it does not finish by the deadline.
void finishes_within(std::chrono::milliseconds deadline, const std::function<void()>& work) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread worker([&work, done] {
    work();
    done->store(true);
  });
  const auto limit = std::chrono::steady_clock::now() + deadline;
  while (!done->load() && std::chrono::steady_clock::now() < limit) {
    std::this_thread::sleep_for(1ms);
  }
  if (!done->load()) {
    ADD_FAILURE() << "did not finish within " << deadline.count() << " ms";
    std::fprintf(stderr, "passthrough test: hang detected, exiting\n");
    std::_Exit(1);
  }
  worker.join();
}

class Passthrough : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(iommu.map_guest_ram(kMemorySize));
    controller = std::make_unique<PassthroughController>(window->bytes.data(), memory, iommu, disk,
                                                         [this] { interrupts.fetch_add(1); });
  }

  // Register access the way the driver does it: whole, aligned fields. The
  // window is shared with the device thread, hence atomic_ref.
  vmlab_pt_registers& registers() {
    return *reinterpret_cast<vmlab_pt_registers*>(window->bytes.data());
  }
  template <typename T>
  static T load(T& field) {
    return std::atomic_ref<T>(field).load(std::memory_order_acquire);
  }
  template <typename T>
  static void store(T& field, T value) {
    std::atomic_ref<T>(field).store(value, std::memory_order_release);
  }

  // Waits until status & mask is non-zero; returns the status (0 on timeout).
  std::uint32_t wait_status(std::uint32_t mask) {
    const auto limit = std::chrono::steady_clock::now() + kDeadline;
    while (std::chrono::steady_clock::now() < limit) {
      const std::uint32_t status = load(registers().status);
      if ((status & mask) != 0) return status;
      std::this_thread::sleep_for(100us);
    }
    return 0;
  }
  bool wait_status_clear(std::uint32_t mask) {
    const auto limit = std::chrono::steady_clock::now() + kDeadline;
    while (std::chrono::steady_clock::now() < limit) {
      if ((load(registers().status) & mask) == 0) return true;
      std::this_thread::sleep_for(100us);
    }
    return false;
  }

  // The driver's setup: queues, then ENABLE; returns the status the device
  // answers with (READY or FATAL, 0 if it never answers).
  std::uint32_t enable(std::uint32_t entries, std::uint64_t submission = kSubmissionQueue,
                       std::uint64_t completion = kCompletionQueue,
                       std::uint32_t control = VMLAB_PT_CONTROL_ENABLE |
                                               VMLAB_PT_CONTROL_INTERRUPTS) {
    m_entries = entries;
    m_sq_tail = 0;
    m_cq_head = 0;
    m_phase = 1;
    const std::vector<std::uint8_t> zeros(std::uint64_t{entries} * sizeof(vmlab_pt_completion));
    if (memory.contains(GuestPhysAddr(completion), zeros.size())) {
      EXPECT_TRUE(memory.write(GuestPhysAddr(completion), zeros));
    }
    store(registers().sq_address, submission);
    store(registers().cq_address, completion);
    store(registers().queue_entries, entries);
    store(registers().sq_tail, 0u);
    store(registers().cq_head, 0u);
    store(registers().control, control);
    return wait_status(VMLAB_PT_STATUS_READY | VMLAB_PT_STATUS_FATAL);
  }

  void disable() {
    store(registers().control, 0u);
    EXPECT_TRUE(wait_status_clear(VMLAB_PT_STATUS_READY | VMLAB_PT_STATUS_FATAL));
  }

  // Clearing ENABLE resets the device, FATAL included: a good setup of
  // `entries` entries is served again.
  void expect_serves_again(std::uint32_t entries) {
    disable();
    ASSERT_EQ(enable(entries), VMLAB_PT_STATUS_READY);
    EXPECT_EQ(run_command(VMLAB_PT_FLUSH, 0, 0, 0), VMLAB_PT_OK);
  }

  // Writes a command at the tail without ringing the doorbell.
  void queue(std::uint8_t opcode, std::uint64_t sector, std::uint32_t sector_count,
             std::uint64_t buffer) {
    vmlab_pt_command command{};
    command.opcode = opcode;
    command.command_id = m_next_id++;
    command.sector_count = sector_count;
    command.sector = sector;
    command.buffer_address = buffer;
    ASSERT_TRUE(memory.write_object(
        GuestPhysAddr(kSubmissionQueue + std::uint64_t{m_sq_tail} * sizeof(command)), command));
    m_sq_tail = (m_sq_tail + 1) % m_entries;
  }
  void ring() { store(registers().sq_tail, m_sq_tail); }

  // The next completion, found by its phase bit, consumed (cq_head written).
  std::optional<vmlab_pt_completion> next_completion() {
    const auto limit = std::chrono::steady_clock::now() + kDeadline;
    const GuestPhysAddr entry(kCompletionQueue +
                              std::uint64_t{m_cq_head} * sizeof(vmlab_pt_completion));
    while (std::chrono::steady_clock::now() < limit) {
      auto completion = memory.read_object<vmlab_pt_completion>(entry);
      if (completion && completion->phase == m_phase) {
        m_cq_head = (m_cq_head + 1) % m_entries;
        if (m_cq_head == 0) m_phase ^= 1;
        store(registers().cq_head, m_cq_head);
        return *completion;
      }
      std::this_thread::sleep_for(50us);
    }
    ADD_FAILURE() << "no completion within the deadline";
    return std::nullopt;
  }

  // One command, submitted and completed; returns its completion status.
  int run_command(std::uint8_t opcode, std::uint64_t sector, std::uint32_t sector_count,
                  std::uint64_t buffer) {
    queue(opcode, sector, sector_count, buffer);
    ring();
    const auto completion = next_completion();
    if (!completion) return -1;
    EXPECT_EQ(completion->command_id, static_cast<std::uint16_t>(m_next_id - 1));
    return completion->status;
  }

  std::vector<std::uint8_t> disk_bytes(std::uint64_t sector, std::uint64_t sectors) {
    auto contents = disk.contents().subspan(sector * kSectorSize, sectors * kSectorSize);
    return {contents.begin(), contents.end()};
  }

  std::unique_ptr<RegisterWindow> window = std::make_unique<RegisterWindow>();
  VectorMemory memory{kMemorySize};
  Iommu iommu{kMemorySize};
  MemoryBlockBackend disk{kDiskSectors};
  std::atomic<int> interrupts{0};
  // Declared last: destroyed (and its thread stopped) before what it uses.
  std::unique_ptr<PassthroughController> controller;

  std::uint32_t m_entries = 0;
  std::uint32_t m_sq_tail = 0;
  std::uint32_t m_cq_head = 0;
  std::uint16_t m_phase = 1;
  std::uint16_t m_next_id = 1;
};

TEST_F(Passthrough, RegistersIdentifyTheDeviceAtConstruction) {
  EXPECT_EQ(load(registers().magic), VMLAB_PT_MAGIC);
  EXPECT_EQ(load(registers().version), VMLAB_PT_VERSION);
  EXPECT_EQ(load(registers().capacity_sectors), kDiskSectors);
  EXPECT_EQ(load(registers().status), 0u);
  EXPECT_FALSE(controller->running());
}

TEST_F(Passthrough, WriteReadFlushRoundTrip) {
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(8), VMLAB_PT_STATUS_READY);

  memory.fill_pattern(kBuffer, 2 * kSectorSize, 3);
  const auto written = memory.bytes(kBuffer, 2 * kSectorSize);
  EXPECT_EQ(run_command(VMLAB_PT_WRITE, 5, 2, kBuffer), VMLAB_PT_OK);
  EXPECT_EQ(disk_bytes(5, 2), written);
  EXPECT_EQ(disk_bytes(4, 1), std::vector<std::uint8_t>(kSectorSize, 0));

  EXPECT_EQ(run_command(VMLAB_PT_READ, 5, 2, kOtherBuffer), VMLAB_PT_OK);
  EXPECT_EQ(memory.bytes(kOtherBuffer, 2 * kSectorSize), written);
  EXPECT_EQ(memory.bytes(kOtherBuffer + 2 * kSectorSize, 16), std::vector<std::uint8_t>(16, 0));

  EXPECT_EQ(run_command(VMLAB_PT_FLUSH, 0, 0, 0), VMLAB_PT_OK);
  EXPECT_EQ(disk.flushes(), 1u);

  const PassthroughCounters counters = controller->counters();
  EXPECT_EQ(counters.writes, 1u);
  EXPECT_EQ(counters.reads, 1u);
  EXPECT_EQ(counters.flushes, 1u);
  EXPECT_EQ(counters.bytes_to_disk, 2 * kSectorSize);
  EXPECT_EQ(counters.bytes_to_memory, 2 * kSectorSize);
  EXPECT_EQ(counters.commands_completed, 3u);
  EXPECT_EQ(load(registers().commands_completed), 3u);
  EXPECT_EQ(counters.dma_faults, 0u);
  EXPECT_GE(interrupts.load(), 3);
  EXPECT_EQ(load(registers().interrupt_cause), 1u);
}

TEST_F(Passthrough, BackendFailureCompletesWithIoError) {
  disk.fail_writes(true);
  disk.fail_flushes(true);
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(4), VMLAB_PT_STATUS_READY);
  EXPECT_EQ(run_command(VMLAB_PT_WRITE, 0, 1, kBuffer), VMLAB_PT_ERROR_IO);
  EXPECT_EQ(run_command(VMLAB_PT_FLUSH, 0, 0, 0), VMLAB_PT_ERROR_IO);
  EXPECT_EQ(controller->counters().io_errors, 2u);
}

TEST_F(Passthrough, PhaseFlipsEachTimeTheCompletionQueueWraps) {
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(4), VMLAB_PT_STATUS_READY);
  std::vector<std::uint16_t> phases;
  for (int index = 0; index < 10; ++index) {
    queue(VMLAB_PT_FLUSH, 0, 0, 0);
    ring();
    const auto completion = next_completion();
    ASSERT_TRUE(completion);
    EXPECT_EQ(completion->status, VMLAB_PT_OK);
    phases.push_back(completion->phase);
  }
  EXPECT_EQ(phases, (std::vector<std::uint16_t>{1, 1, 1, 1, 0, 0, 0, 0, 1, 1}));
}

TEST_F(Passthrough, BatchWithOneDoorbellCompletesEveryCommand) {
  constexpr std::uint32_t kEntries = 16;
  constexpr std::uint32_t kBatch = kEntries - 1;  // one slot stays free
  for (std::uint32_t index = 0; index < kBatch; ++index) {
    memory.fill_pattern(kBuffer + index * kSectorSize, kSectorSize,
                        static_cast<std::uint8_t>(index));
  }
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(kEntries), VMLAB_PT_STATUS_READY);
  for (std::uint32_t index = 0; index < kBatch; ++index) {
    queue(VMLAB_PT_WRITE, index, 1, kBuffer + index * kSectorSize);
  }
  ring();
  for (std::uint32_t index = 0; index < kBatch; ++index) {
    const auto completion = next_completion();
    ASSERT_TRUE(completion);
    EXPECT_EQ(completion->command_id, index + 1);
    EXPECT_EQ(completion->status, VMLAB_PT_OK);
  }
  EXPECT_EQ(disk_bytes(0, kBatch), memory.bytes(kBuffer, kBatch * kSectorSize));
  EXPECT_GE(interrupts.load(), 1);
  EXPECT_LE(interrupts.load(), static_cast<int>(kBatch));
  EXPECT_EQ(controller->counters().commands_completed, kBatch);
}

TEST_F(Passthrough, NoInterruptUnlessTheDriverAsksForThem) {
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(4, kSubmissionQueue, kCompletionQueue, VMLAB_PT_CONTROL_ENABLE),
            VMLAB_PT_STATUS_READY);
  EXPECT_EQ(run_command(VMLAB_PT_FLUSH, 0, 0, 0), VMLAB_PT_OK);
  EXPECT_EQ(interrupts.load(), 0);
  EXPECT_EQ(load(registers().interrupt_cause), 0u);
}

TEST_F(Passthrough, DmaThroughNonContiguousMappingsFollowsThePages) {
  constexpr std::uint64_t kIova = 0x100000000;
  ASSERT_TRUE(iommu.map(kIova, GuestPhysAddr(0x80000), kPageSize, IommuAccess{}));
  ASSERT_TRUE(iommu.map(kIova + kPageSize, GuestPhysAddr(0x50000), kPageSize, IommuAccess{}));
  memory.fill_pattern(0x80000, kPageSize, 1);
  memory.fill_pattern(0x50000, kPageSize, 2);
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(4), VMLAB_PT_STATUS_READY);

  EXPECT_EQ(run_command(VMLAB_PT_WRITE, 10, 16, kIova), VMLAB_PT_OK);
  EXPECT_EQ(disk_bytes(10, 8), memory.bytes(0x80000, kPageSize));
  EXPECT_EQ(disk_bytes(18, 8), memory.bytes(0x50000, kPageSize));
}

TEST_F(Passthrough, DmaToAnUnmappedIovaIsBlockedAndMovesNothing) {
  // A hole in the middle of RAM and the end of RAM.
  ASSERT_TRUE(iommu.unmap(kBuffer + kPageSize, kPageSize));
  for (std::uint64_t sector = 0; sector < kDiskSectors; ++sector) {
    std::memset(disk.sector(sector).data(), 0xab, kSectorSize);
  }
  memory.fill_pattern(kBuffer, 2 * kPageSize, 9);
  const auto memory_before = memory.bytes(kBuffer, 2 * kPageSize);
  const auto disk_before = disk_bytes(0, kDiskSectors);
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(8), VMLAB_PT_STATUS_READY);

  // A READ whose second page is the hole: the first page is not written either.
  EXPECT_EQ(run_command(VMLAB_PT_READ, 0, 16, kBuffer), VMLAB_PT_ERROR_DMA);
  EXPECT_EQ(load(registers().fault_address), kBuffer + kPageSize);
  EXPECT_NE(load(registers().status) & VMLAB_PT_STATUS_IOMMU_FAULT, 0u);
  EXPECT_NE(load(registers().status) & VMLAB_PT_STATUS_READY, 0u);  // still serving
  EXPECT_EQ(memory.bytes(kBuffer, 2 * kPageSize), memory_before);

  // A WRITE from the hole: the disk is untouched.
  EXPECT_EQ(run_command(VMLAB_PT_WRITE, 0, 16, kBuffer), VMLAB_PT_ERROR_DMA);
  EXPECT_EQ(disk_bytes(0, kDiskSectors), disk_before);

  // A READ running past the end of RAM.
  EXPECT_EQ(run_command(VMLAB_PT_READ, 0, 2, kMemorySize - kSectorSize), VMLAB_PT_ERROR_DMA);
  EXPECT_EQ(load(registers().fault_address), kMemorySize);
  EXPECT_EQ(memory.bytes(kMemorySize - kSectorSize, kSectorSize),
            std::vector<std::uint8_t>(kSectorSize, 0));

  EXPECT_EQ(load(registers().dma_faults), 3u);
  EXPECT_EQ(controller->counters().dma_faults, 3u);
  EXPECT_EQ(iommu.fault_count(), 3u);
  const auto faults = iommu.recent_faults();
  ASSERT_EQ(faults.size(), 3u);
  EXPECT_EQ(faults[0].iova, kBuffer + kPageSize);
  EXPECT_EQ(faults[0].direction, DmaDirection::Write);
  EXPECT_EQ(faults[1].direction, DmaDirection::Read);
  EXPECT_EQ(faults[2].iova, kMemorySize);
  EXPECT_EQ(disk.reads(), 0u);
  EXPECT_EQ(disk.writes(), 0u);
}

TEST_F(Passthrough, ReadOnlyMappingBlocksAReadButAllowsAWrite) {
  ASSERT_TRUE(iommu.unmap(kBuffer, kPageSize));
  ASSERT_TRUE(iommu.map(kBuffer, GuestPhysAddr(kBuffer), kPageSize, IommuAccess{true, false}));
  memory.fill_pattern(kBuffer, kPageSize, 4);
  const auto before = memory.bytes(kBuffer, kPageSize);
  std::memset(disk.sector(0).data(), 0x5a, kSectorSize);
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(4), VMLAB_PT_STATUS_READY);

  // READ means the device writes memory: blocked.
  EXPECT_EQ(run_command(VMLAB_PT_READ, 0, 1, kBuffer), VMLAB_PT_ERROR_DMA);
  EXPECT_EQ(memory.bytes(kBuffer, kPageSize), before);
  ASSERT_EQ(iommu.recent_faults().size(), 1u);
  EXPECT_EQ(iommu.recent_faults()[0].kind, IommuFaultKind::ReadOnly);

  // WRITE means the device reads memory: allowed.
  EXPECT_EQ(run_command(VMLAB_PT_WRITE, 1, 1, kBuffer), VMLAB_PT_OK);
  EXPECT_EQ(disk_bytes(1, 1), memory.bytes(kBuffer, kSectorSize));
}

TEST_F(Passthrough, BypassModeReachesAllRamButNothingOutside) {
  ASSERT_TRUE(iommu.unmap(kBuffer, kPageSize));  // ignored in bypass mode
  iommu.set_enabled(false);
  std::memset(disk.sector(0).data(), 0x77, kSectorSize);
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(4), VMLAB_PT_STATUS_READY);

  EXPECT_EQ(run_command(VMLAB_PT_READ, 0, 1, kBuffer), VMLAB_PT_OK);
  EXPECT_EQ(memory.bytes(kBuffer, kSectorSize), std::vector<std::uint8_t>(kSectorSize, 0x77));
  EXPECT_EQ(run_command(VMLAB_PT_READ, 0, 1, kMemorySize - kSectorSize), VMLAB_PT_OK);
  EXPECT_EQ(memory.bytes(kMemorySize - kSectorSize, kSectorSize),
            std::vector<std::uint8_t>(kSectorSize, 0x77));

  EXPECT_EQ(run_command(VMLAB_PT_READ, 0, 2, kMemorySize - kSectorSize), VMLAB_PT_ERROR_DMA);
  EXPECT_EQ(run_command(VMLAB_PT_READ, 0, 1, kMemorySize), VMLAB_PT_ERROR_DMA);
  EXPECT_EQ(run_command(VMLAB_PT_READ, 0, 1, ~std::uint64_t{0} - 100), VMLAB_PT_ERROR_DMA);
  EXPECT_EQ(load(registers().dma_faults), 3u);
}

TEST_F(Passthrough, BadQueueSetupIsFatalUntilReEnabled) {
  ASSERT_TRUE(controller->start());
  EXPECT_EQ(enable(3), VMLAB_PT_STATUS_FATAL);
  disable();
  EXPECT_EQ(enable(0), VMLAB_PT_STATUS_FATAL);
  disable();
  EXPECT_EQ(enable(2 * VMLAB_PT_MAX_QUEUE_ENTRIES), VMLAB_PT_STATUS_FATAL);
  disable();
  EXPECT_EQ(enable(8, kMemorySize), VMLAB_PT_STATUS_FATAL);  // queue outside RAM
  disable();
  EXPECT_EQ(enable(8, kSubmissionQueue, kMemorySize - 8), VMLAB_PT_STATUS_FATAL);
  disable();

  // A FATAL device serves nothing...
  EXPECT_EQ(enable(3), VMLAB_PT_STATUS_FATAL);
  vmlab_pt_command command{};
  command.opcode = VMLAB_PT_FLUSH;
  ASSERT_TRUE(memory.write_object(GuestPhysAddr(kSubmissionQueue), command));
  store(registers().sq_tail, 1u);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(load(registers().commands_completed), 0u);
  // ...until a good setup is enabled.
  expect_serves_again(8);
}

TEST_F(Passthrough, HostileIndicesStopTheDeviceWithoutCrashing) {
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(4), VMLAB_PT_STATUS_READY);
  store(registers().sq_tail, 0xffffffffu);
  EXPECT_NE(wait_status(VMLAB_PT_STATUS_FATAL), 0u);
  EXPECT_EQ(load(registers().commands_completed), 0u);
  disable();

  ASSERT_EQ(enable(4), VMLAB_PT_STATUS_READY);
  queue(VMLAB_PT_FLUSH, 0, 0, 0);
  store(registers().cq_head, 1000u);
  ring();
  EXPECT_NE(wait_status(VMLAB_PT_STATUS_FATAL), 0u);
  expect_serves_again(4);
}

TEST_F(Passthrough, InvalidCommandsCompleteWithAnError) {
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(8), VMLAB_PT_STATUS_READY);
  EXPECT_EQ(run_command(VMLAB_PT_READ, kDiskSectors - 1, 2, kBuffer), VMLAB_PT_ERROR_RANGE);
  EXPECT_EQ(run_command(VMLAB_PT_WRITE, kDiskSectors, 1, kBuffer), VMLAB_PT_ERROR_RANGE);
  EXPECT_EQ(run_command(VMLAB_PT_READ, ~std::uint64_t{0}, 1, kBuffer), VMLAB_PT_ERROR_RANGE);
  EXPECT_EQ(run_command(VMLAB_PT_READ, 0, 0, kBuffer), VMLAB_PT_ERROR_INVALID);
  EXPECT_EQ(run_command(VMLAB_PT_READ, 0, VMLAB_PT_MAX_TRANSFER_SECTORS + 1, kBuffer),
            VMLAB_PT_ERROR_INVALID);
  EXPECT_EQ(run_command(42, 0, 1, kBuffer), VMLAB_PT_ERROR_INVALID);
  EXPECT_EQ(run_command(VMLAB_PT_READ, kDiskSectors - 1, 1, kBuffer), VMLAB_PT_OK);
  EXPECT_EQ(disk.writes(), 0u);
  EXPECT_EQ(disk.reads(), 1u);
}

TEST_F(Passthrough, IdleDeviceSleepsInsteadOfSpinning) {
  ASSERT_TRUE(controller->start());
  std::this_thread::sleep_for(30ms);
  const PassthroughCounters idle = controller->counters();
  EXPECT_GT(idle.sleeps, 0u);
  // Sleeping in steps of up to 1 ms: far fewer polls than a busy loop makes.
  EXPECT_LT(idle.polls, 100000u);
  ASSERT_EQ(enable(4), VMLAB_PT_STATUS_READY);
  EXPECT_EQ(run_command(VMLAB_PT_FLUSH, 0, 0, 0), VMLAB_PT_OK);
}

TEST_F(Passthrough, StartAndStopRepeatedly) {
  finishes_within(5000ms, [this] {
    for (int round = 0; round < 20; ++round) {
      ASSERT_TRUE(controller->start());
      ASSERT_TRUE(controller->start());  // already running: nothing happens
      EXPECT_TRUE(controller->running());
      if (round == 0) {
        ASSERT_EQ(enable(4), VMLAB_PT_STATUS_READY);
      }
      if (round % 4 == 1) {
        EXPECT_EQ(run_command(VMLAB_PT_FLUSH, 0, 0, 0), VMLAB_PT_OK);
      }
      controller->stop();
      controller->stop();
      EXPECT_FALSE(controller->running());
    }
  });
}

TEST_F(Passthrough, StopWithCommandsInFlightThenResume) {
  constexpr std::uint32_t kEntries = 64;
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(kEntries), VMLAB_PT_STATUS_READY);
  for (std::uint32_t index = 0; index < kEntries - 1; ++index) {
    queue(VMLAB_PT_WRITE, index % kDiskSectors, 4, kBuffer);
  }
  ring();
  finishes_within(2000ms, [this] { controller->stop(); });
  EXPECT_LE(controller->counters().commands_completed, kEntries - 1);

  // What was not taken is still queued and served after a restart.
  ASSERT_TRUE(controller->start());
  for (std::uint32_t index = 0; index < kEntries - 1; ++index) {
    const auto completion = next_completion();
    ASSERT_TRUE(completion);
    EXPECT_EQ(completion->status, VMLAB_PT_OK);
  }
  EXPECT_EQ(controller->counters().commands_completed, kEntries - 1);
}

TEST_F(Passthrough, DestructionWithoutStopJoinsTheThread) {
  ASSERT_TRUE(controller->start());
  ASSERT_EQ(enable(16), VMLAB_PT_STATUS_READY);
  for (int index = 0; index < 15; ++index)
    queue(VMLAB_PT_READ, 0, 8, kBuffer);
  ring();
  finishes_within(2000ms, [this] { controller.reset(); });

  // A controller that never started is destroyed just as quietly.
  finishes_within(2000ms, [this] {
    PassthroughController unused(window->bytes.data(), memory, iommu, disk, nullptr);
  });
}

TEST(PassthroughClaim, ASecondVmCannotClaimTheSameDevice) {
  auto first = PassthroughController::claim("pt-test-0");
  ASSERT_TRUE(first);
  const auto second = PassthroughController::claim("pt-test-0");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind, PassthroughError::kClaimed);
  EXPECT_NE(second.error().message.find("pt-test-0"), std::string::npos);  // which device
  EXPECT_TRUE(PassthroughController::claim("pt-test-1"));                  // another device is free

  // The claim follows the token and ends with it.
  std::optional<PassthroughController::ClaimToken> moved(std::move(*first));
  EXPECT_EQ(moved->device(), "pt-test-0");
  EXPECT_FALSE(PassthroughController::claim("pt-test-0"));
  moved.reset();
  EXPECT_TRUE(PassthroughController::claim("pt-test-0"));
  const auto unnamed = PassthroughController::claim("");
  ASSERT_FALSE(unnamed);
  EXPECT_EQ(unnamed.error().kind, PassthroughError::kUnnamed);
}

}  // namespace
}  // namespace vmlab::devices
