// Move-only owners of the KVM objects (STYLE.md 1): each wraps its fd the
// moment the ioctl returns it and holds no policy (no devices, no layout).
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "vmlab/address.hpp"
#include "vmlab/file_descriptor.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

// Why /dev/kvm, a VM or a vCPU could not be opened, created or driven.
enum class KvmError {
  kDeviceMissing = 1,  // /dev/kvm does not exist: no KVM module, or no virtualization
  kPermissionDenied,   // /dev/kvm exists but this user may not open it
  kCannotOpen,         // /dev/kvm could not be opened for another reason (system_errno)
  kApiVersion,         // the kernel speaks a KVM API version vmlab was not written for
  kIoctlFailed,        // a KVM ioctl failed; system_errno says how
  kMapFailed,          // the vCPU's kvm_run page could not be mapped
  kMsrRefused,         // KVM_SET_MSRS set fewer MSRs than asked: the backend lacks one
  kMalformedExit,      // KVM reported an exit whose data lies outside kvm_run
};
constexpr const char* error_domain(KvmError) {
  return "kvm";
}

class Vm;
class Vcpu;

class Kvm {
 public:
  // Opens /dev/kvm (or `path`) and checks the API version; the error says
  // what to do when the device is missing or not accessible.
  static Result<Kvm> open(const std::string& path = "/dev/kvm");

  int api_version() const { return m_api_version; }
  int check_extension(long capability) const;  // 0 when absent
  Result<Vm> create_vm() const;
  Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  int fd() const { return m_fd.get(); }

 private:
  Kvm(FileDescriptor fd, int api_version, int vcpu_mmap_size)
      : m_fd(std::move(fd)), m_api_version(api_version), m_vcpu_mmap_size(vcpu_mmap_size) {}
  FileDescriptor m_fd;
  int m_api_version = 0;
  int m_vcpu_mmap_size = 0;
};

class Vm {
 public:
  Status set_user_memory_region(std::uint32_t slot, std::uint64_t guest_phys, std::uint64_t size,
                                void* host, std::uint32_t flags = 0);
  Status set_tss_address(std::uint64_t address);
  Status set_identity_map_address(std::uint64_t address);
  Status create_irqchip();
  Status create_pit2();
  Status set_irq_line(std::uint32_t irq, bool level);
  // KVM_IOEVENTFD: a guest write of `value` (`length` bytes) to the MMIO
  // address `address` signals the eventfd `event` inside KVM instead of
  // leaving KVM_RUN; other writes there still exit.
  Status add_mmio_ioeventfd(std::uint64_t address, std::uint32_t length, std::uint64_t value,
                            int event);
  // KVM_IRQFD: a write to `event` pulses interrupt line `gsi` of the
  // in-kernel irqchip without an exit to user space.
  Status add_irqfd(int event, std::uint32_t gsi);
  int check_extension(long capability) const;
  Result<Vcpu> create_vcpu(std::uint32_t id);
  int fd() const { return m_fd.get(); }

 private:
  friend class Kvm;
  Vm(FileDescriptor fd, int vcpu_mmap_size)
      : m_fd(std::move(fd)), m_vcpu_mmap_size(vcpu_mmap_size) {}
  FileDescriptor m_fd;
  int m_vcpu_mmap_size = 0;
};

// Typed exits: kvm_run decoded in one place (STYLE.md 2).
namespace exits {
// Port I/O (KVM_EXIT_IO): `count` elements of `size` bytes (1, 2 or 4), more
// than one for rep ins/outs, inside the kvm_run page. The direction is the
// type: an input's data is for the VMM to fill, an output's only to read.
struct PortIn {
  IoPort port;
  std::uint8_t size;
  std::uint32_t count;
  std::span<std::uint8_t> data;  // size * count bytes
};
struct PortOut {
  IoPort port;
  std::uint8_t size;
  std::uint32_t count;
  std::span<const std::uint8_t> data;
};
// MMIO (KVM_EXIT_MMIO): 1 to 8 bytes inside kvm_run.
struct MmioRead {
  GuestPhysAddr address;
  std::span<std::uint8_t> data;  // for the VMM to fill
};
struct MmioWrite {
  GuestPhysAddr address;
  std::span<const std::uint8_t> data;
};
struct Halt {};
struct Shutdown {};             // triple fault or similar: the guest is dead
struct Interrupted {};          // KVM_RUN returned EINTR (we were kicked)
struct InterruptWindowOpen {};  // the guest can take an interrupt now
struct FailEntry {
  std::uint64_t hardware_reason;
};
struct InternalError {
  std::uint32_t suberror;
};
struct SystemEvent {
  std::uint32_t type;
};
struct Debug {
  std::uint32_t exception;
  std::uint64_t pc;
};
struct Unknown {
  std::uint32_t reason;
};
}  // namespace exits

using VcpuExit =
    std::variant<exits::PortIn, exits::PortOut, exits::MmioRead, exits::MmioWrite, exits::Halt,
                 exits::Shutdown, exits::Interrupted, exits::InterruptWindowOpen, exits::FailEntry,
                 exits::InternalError, exits::SystemEvent, exits::Debug, exits::Unknown>;

// For std::visit over a VcpuExit with one lambda per kind of exit: a visit
// that leaves a kind out does not compile.
template <class... Handlers>
struct Overloaded : Handlers... {
  using Handlers::operator()...;
};
template <class... Handlers>
Overloaded(Handlers...) -> Overloaded<Handlers...>;

// Short, stable names for exit kinds (used in summaries and traces).
const char* kvm_exit_reason_name(std::uint32_t reason);

// A vCPU as the run loop (run_loop.hpp) drives it: entered, kicked, and read
// for reports (STYLE.md 7). Vcpu is the KVM one; the loop's unit tests script
// a fake that returns a list of exits.
class VirtualCpu {
 public:
  virtual ~VirtualCpu() = default;
  // Called once on the thread that will call run().
  virtual void prepare_thread() = 0;
  // Enters the guest until the next exit.
  virtual Result<VcpuExit> run() = 0;
  // From any thread: makes a running or about-to-run run() return soon with
  // exits::Interrupted.
  virtual void kick() = 0;
  // The shared kvm_run page: registers KVM syncs at exits (KVM_CAP_SYNC_REGS)
  // and immediate_exit, which a kick sets.
  virtual kvm_run& run_state() = 0;
  virtual Result<kvm_regs> registers() const = 0;
  virtual Result<kvm_sregs> special_registers() const = 0;
};

class Vcpu final : public VirtualCpu {
 public:
  Vcpu(Vcpu&& other) noexcept;
  Vcpu& operator=(Vcpu&& other) noexcept;
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;
  ~Vcpu() override;

  // KVM_RUN. Must be called on the vCPU thread after prepare_thread().
  Result<VcpuExit> run() override;

  // Installs the kick signal on this thread.
  void prepare_thread() override;
  // Safe against the race where the kick lands just before KVM_RUN
  // (immediate_exit is set by the signal handler).
  void kick() override;

  Result<kvm_regs> registers() const override;
  Status set_registers(const kvm_regs& registers);
  Result<kvm_sregs> special_registers() const override;
  Status set_special_registers(const kvm_sregs& registers);
  Status set_cpuid(std::span<const kvm_cpuid_entry2> entries);
  // What the last successful set_cpuid() gave KVM: the leaves a CPL0 `cpuid`
  // in the guest returns (KVM emulates it from them), kept here because
  // KVM_GET_CPUID2 is refused on some backends (kvm_pvm: EINVAL). A monitor
  // that emulates `cpuid` for a deprivileged kernel answers from these.
  std::span<const kvm_cpuid_entry2> cpuid_entries() const { return m_cpuid; }
  // KVM_GET_TSC_KHZ: the guest's TSC rate (0 when KVM cannot say).
  std::uint32_t tsc_khz() const;
  Status inject_interrupt(std::uint8_t vector);  // KVM_INTERRUPT
  // KVM_SET_GUEST_DEBUG: single-step the guest (every instruction ends in
  // KVM_EXIT_DEBUG) or stop doing so.
  Status set_single_step(bool enabled);
  struct Msr {
    std::uint32_t index;
    std::uint64_t value;
  };
  Status set_msrs(std::span<const Msr> msrs);  // KVM_SET_MSRS
  Result<FileDescriptor> stats_fd() const;     // KVM_GET_STATS_FD

  kvm_run& run_state() override { return *m_run; }
  const kvm_run& run_state() const { return *m_run; }
  std::uint32_t id() const { return m_id; }
  int fd() const { return m_fd.get(); }

 private:
  friend class Vm;
  Vcpu(FileDescriptor fd, kvm_run* run, std::size_t run_size, std::uint32_t id)
      : m_fd(std::move(fd)), m_run(run), m_run_size(run_size), m_id(id) {}
  FileDescriptor m_fd;
  kvm_run* m_run = nullptr;
  std::size_t m_run_size = 0;
  std::uint32_t m_id = 0;
  std::vector<kvm_cpuid_entry2> m_cpuid;
  std::atomic<unsigned long> m_thread{0};  // pthread_t of the vCPU thread, 0 until prepared
};

// "rax=... rip=... cr0=..." for error messages about a dead or confused guest.
std::string describe_registers(const VirtualCpu& vcpu);

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::KvmError);
