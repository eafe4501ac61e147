// The passthrough storage controller (DESIGN.md 6): a "physical" device whose
// hardware is a host thread. Its register window (abi/vmlab/passthrough.h)
// is a page of memory shared with the guest, so register accesses cause no
// exit; the thread polls the doorbell, DMAs through the IOMMU model, and
// raises an interrupt per completion batch through a callback.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include <vmlab/passthrough.h>
#include <vmlab/devices/block_backend.hpp>
#include <vmlab/devices/iommu.hpp>
#include <vmlab/guest_memory.hpp>
#include <vmlab/result.hpp>
#include "vmlab/result.hpp"

namespace vmlab::devices {

// Why the controller could not start, or a VM could not claim it. New kinds
// go last.
enum class PassthroughError {
  kThreadFailed = 1,  // the host could not start the device thread
  kUnnamed,           // claim() of a device with no name
  kClaimed,           // the device already belongs to another VM
};
constexpr const char* error_domain(PassthroughError) {
  return "passthrough";
}
using vmlab::make_error_code;  // found by argument-dependent lookup here

// What the controller has done so far; readable from any thread.
struct PassthroughCounters {
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
  std::uint64_t flushes = 0;
  std::uint64_t invalid_commands = 0;  // unknown opcode, bad length or range
  std::uint64_t io_errors = 0;
  std::uint64_t bytes_to_memory = 0;  // READ: disk -> guest memory
  std::uint64_t bytes_to_disk = 0;    // WRITE: guest memory -> disk
  std::uint64_t dma_faults = 0;
  std::uint64_t commands_completed = 0;
  std::uint64_t interrupts = 0;
  std::uint64_t polls = 0;   // doorbell checks, spinning or after a sleep
  std::uint64_t sleeps = 0;  // times the thread slept instead of spinning
};

class PassthroughController {
 public:
  using InterruptCallback = std::function<void()>;

  // How long the thread keeps spinning on the doorbell after the last
  // activity, and the longest it sleeps between checks once idle.
  static constexpr std::chrono::microseconds kSpinWindow{50};
  static constexpr std::chrono::microseconds kLongestSleep{1000};

  // `register_window` is VMLAB_PT_WINDOW_SIZE bytes, page-aligned, and
  // outlives the controller, as do `memory`, `iommu` and `disk`.
  // `interrupt` is called from the device thread.
  PassthroughController(std::uint8_t* register_window, GuestMemoryAccess& memory, Iommu& iommu,
                        BlockBackend& disk, InterruptCallback interrupt);
  ~PassthroughController();
  PassthroughController(const PassthroughController&) = delete;
  PassthroughController& operator=(const PassthroughController&) = delete;

  // Launches the device thread; starting a running controller does nothing.
  Status start();
  // Stops the thread and joins it, leaving commands not yet taken in the
  // queue for the next start(). Idempotent.
  void stop();
  bool running() const { return m_thread.joinable(); }

  PassthroughCounters counters() const;

  // One VM owns a passed-through device (DESIGN.md 6): a process-wide claim
  // keyed by device name, released when the token is destroyed. Move-only.
  class ClaimToken {
   public:
    const std::string& device() const { return *m_device; }

   private:
    friend class PassthroughController;
    struct Release {
      void operator()(const std::string* device) const;
    };
    explicit ClaimToken(std::string device) : m_device(new std::string(std::move(device))) {}
    std::unique_ptr<const std::string, Release> m_device;  // null once moved from
  };
  static Result<ClaimToken> claim(const std::string& device);

 private:
  enum class State { Disabled, Serving, Fatal };

  void run();
  // One look at the registers; true if there was something to do.
  bool poll();
  bool enable();
  // Stops serving until the driver clears and sets ENABLE (STATUS_FATAL).
  void fail();
  std::uint16_t execute(const vmlab_pt_command& command);
  std::uint16_t transfer(const vmlab_pt_command& command);
  void record_fault(std::uint64_t iova);
  // DMA through the IOMMU: the whole range is translated before a byte
  // moves; a blocked one is recorded in the registers.
  bool dma_read(std::uint64_t iova, std::span<std::uint8_t> out);
  bool dma_write(std::uint64_t iova, std::span<const std::uint8_t> in);

  vmlab_pt_registers* const m_registers;
  GuestMemoryAccess& m_memory;
  Iommu& m_iommu;
  BlockBackend& m_disk;
  const InterruptCallback m_interrupt;

  // Device-thread state (the thread is the only user while it runs; start()
  // and stop() hand it over through the thread's creation and join).
  State m_state = State::Disabled;
  std::uint32_t m_entries = 0;
  std::uint64_t m_sq_address = 0;
  std::uint64_t m_cq_address = 0;
  std::uint32_t m_sq_head = 0;
  std::uint32_t m_cq_tail = 0;
  std::uint16_t m_phase = 1;

  std::thread m_thread;
  std::mutex m_stop_mutex;  // guards m_stop_requested for the sleeping thread
  std::condition_variable m_stop_condition;
  std::atomic<bool> m_stop_requested{false};

  // Counted by the device thread, copied whole by counters() on any other.
  void count(std::uint64_t PassthroughCounters::*counter, std::uint64_t amount = 1);
  mutable std::mutex m_counters_mutex;
  PassthroughCounters m_counters;  // guarded by m_counters_mutex
};

}  // namespace vmlab::devices

VMLAB_ERROR_KINDS(vmlab::devices::PassthroughError);
