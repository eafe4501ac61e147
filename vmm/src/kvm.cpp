#include "vmlab/kvm.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

namespace vmlab {

namespace {

// The signal used to kick a vCPU thread out of KVM_RUN.
constexpr int kKickSignal = SIGUSR1;

// The kvm_run of the vCPU this thread runs, for the kick signal handler.
thread_local kvm_run* t_current_run = nullptr;

void on_kick_signal(int) {
  // Async-signal-safe: a plain store into the shared kvm_run page. KVM checks
  // immediate_exit on entry, which closes the window between our last check of
  // the stop/interrupt flags and the KVM_RUN ioctl (KVM API, "immediate_exit").
  if (t_current_run != nullptr) t_current_run->immediate_exit = 1;
}

// Debian's uapi headers declare the trailing arrays of kvm_cpuid2 and
// kvm_msrs with __DECLARE_FLEX_ARRAY, which in C++ becomes an empty struct
// plus the array: the C++ structs are larger than the kernel's, so both the
// entries' offset and the ioctl numbers (which encode the struct size) come
// out wrong, and KVM answers EINVAL. vmlab uses its own C-layout headers and
// computes the numbers from them.
struct VariableLengthHeader {
  std::uint32_t count;
  std::uint32_t padding;
};
static_assert(sizeof(VariableLengthHeader) == 8);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, VariableLengthHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, VariableLengthHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, VariableLengthHeader);

// A header followed by `count` entries, laid out as the kernel expects.
template <typename Entry>
class VariableLengthBuffer {
 public:
  explicit VariableLengthBuffer(std::size_t count)
      : m_storage((sizeof(VariableLengthHeader) + count * sizeof(Entry) + 7) / 8) {
    header().count = static_cast<std::uint32_t>(count);
  }
  VariableLengthHeader& header() {
    return *reinterpret_cast<VariableLengthHeader*>(m_storage.data());
  }
  // The entries start right after the 8-byte header; the storage is 8-byte
  // aligned, which satisfies both entry types.
  Entry* entries() {
    return reinterpret_cast<Entry*>(reinterpret_cast<std::uint8_t*>(m_storage.data()) +
                                    sizeof(VariableLengthHeader));
  }
  void* data() { return m_storage.data(); }

 private:
  std::vector<std::uint64_t> m_storage;
};

template <typename... Args>
int retry_ioctl(int fd, unsigned long request, Args... args) {
  int result;
  do {
    result = ioctl(fd, request, args...);
  } while (result < 0 && errno == EINTR);
  return result;
}

// A failed ioctl, named by its request, with errno's words.
Error ioctl_error(const char* name) {
  return Error::from_errno(KvmError::kIoctlFailed, name, errno);
}

// An ioctl that returns 0 or fails with errno, as most VM and vCPU requests do.
template <typename Argument>
Status checked_ioctl(int fd, unsigned long request, const char* name, Argument argument) {
  if (ioctl(fd, request, argument) < 0) return ioctl_error(name);
  return {};
}

}  // namespace

Result<Kvm> Kvm::open(const std::string& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    const int error_number = errno;
    if (error_number == ENOENT) {
      return Error{KvmError::kDeviceMissing,
                   path +
                       " does not exist: load the KVM module (kvm_intel, kvm_amd or kvm_pvm) "
                       "or run vmlab on a machine with virtualization enabled",
                   error_number};
    }
    if (error_number == EACCES || error_number == EPERM) {
      return Error{
          KvmError::kPermissionDenied,
          "no permission to open " + path + ": run as root or add your user to the 'kvm' group",
          error_number};
    }
    return Error::from_errno(KvmError::kCannotOpen, "cannot open " + path, error_number);
  }
  const int version = ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return Error{KvmError::kApiVersion, path + " speaks KVM API version " +
                                            std::to_string(version) + ", vmlab needs " +
                                            std::to_string(KVM_API_VERSION)};
  }
  const int mmap_size = ioctl(fd.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size < static_cast<int>(sizeof(kvm_run))) return ioctl_error("KVM_GET_VCPU_MMAP_SIZE");
  return Kvm(std::move(fd), version, mmap_size);
}

int Kvm::check_extension(long capability) const {
  const int result = ioctl(m_fd.get(), KVM_CHECK_EXTENSION, capability);
  return result < 0 ? 0 : result;
}

Result<Vm> Kvm::create_vm() const {
  FileDescriptor fd(retry_ioctl(m_fd.get(), KVM_CREATE_VM, 0UL));
  if (!fd.valid()) return ioctl_error("KVM_CREATE_VM");
  return Vm(std::move(fd), m_vcpu_mmap_size);
}

Result<std::vector<kvm_cpuid_entry2>> Kvm::supported_cpuid() const {
  // The kernel says E2BIG until the buffer is large enough.
  for (std::size_t capacity = 64; capacity <= 4096; capacity *= 2) {
    VariableLengthBuffer<kvm_cpuid_entry2> buffer(capacity);
    if (ioctl(m_fd.get(), kGetSupportedCpuid, buffer.data()) == 0) {
      return std::vector<kvm_cpuid_entry2>(buffer.entries(),
                                           buffer.entries() + buffer.header().count);
    }
    if (errno != E2BIG) return ioctl_error("KVM_GET_SUPPORTED_CPUID");
  }
  return Error{KvmError::kIoctlFailed, "KVM_GET_SUPPORTED_CPUID: too many entries"};
}

Status Vm::set_user_memory_region(std::uint32_t slot, std::uint64_t guest_phys, std::uint64_t size,
                                  void* host, std::uint32_t flags) {
  const kvm_userspace_memory_region region{.slot = slot,
                                           .flags = flags,
                                           .guest_phys_addr = guest_phys,
                                           .memory_size = size,
                                           .userspace_addr = reinterpret_cast<std::uint64_t>(host)};
  return checked_ioctl(m_fd.get(), KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION",
                       &region);
}

Status Vm::set_tss_address(std::uint64_t address) {
  return checked_ioctl(m_fd.get(), KVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", address);
}

Status Vm::set_identity_map_address(std::uint64_t address) {
  return checked_ioctl(m_fd.get(), KVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR",
                       &address);
}

Status Vm::create_irqchip() {
  return checked_ioctl(m_fd.get(), KVM_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP", 0);
}

Status Vm::create_pit2() {
  kvm_pit_config config{};
  return checked_ioctl(m_fd.get(), KVM_CREATE_PIT2, "KVM_CREATE_PIT2", &config);
}

Status Vm::set_irq_line(std::uint32_t irq, bool level) {
  kvm_irq_level line{};
  line.irq = irq;
  line.level = level ? 1 : 0;
  return checked_ioctl(m_fd.get(), KVM_IRQ_LINE, "KVM_IRQ_LINE", &line);
}

Status Vm::add_mmio_ioeventfd(std::uint64_t address, std::uint32_t length, std::uint64_t value,
                              int event) {
  kvm_ioeventfd request{.datamatch = value,
                        .addr = address,
                        .len = length,
                        .fd = event,
                        .flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
                        .pad = {}};
  return checked_ioctl(m_fd.get(), KVM_IOEVENTFD, "KVM_IOEVENTFD", &request);
}

Status Vm::add_irqfd(int event, std::uint32_t gsi) {
  kvm_irqfd request{};
  request.fd = static_cast<std::uint32_t>(event);
  request.gsi = gsi;
  return checked_ioctl(m_fd.get(), KVM_IRQFD, "KVM_IRQFD", &request);
}

int Vm::check_extension(long capability) const {
  const int result = ioctl(m_fd.get(), KVM_CHECK_EXTENSION, capability);
  return result < 0 ? 0 : result;
}

Result<Vcpu> Vm::create_vcpu(std::uint32_t id) {
  FileDescriptor fd(retry_ioctl(m_fd.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)));
  if (!fd.valid()) return ioctl_error("KVM_CREATE_VCPU");
  const auto size = static_cast<std::size_t>(m_vcpu_mmap_size);
  void* mapping = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (mapping == MAP_FAILED)
    return Error::from_errno(KvmError::kMapFailed, "mmap of kvm_run", errno);
  return Vcpu(std::move(fd), static_cast<kvm_run*>(mapping), size, id);
}

Vcpu::Vcpu(Vcpu&& other) noexcept
    : m_fd(std::move(other.m_fd)),
      m_run(std::exchange(other.m_run, nullptr)),
      m_run_size(std::exchange(other.m_run_size, 0)),
      m_id(other.m_id),
      m_cpuid(std::move(other.m_cpuid)),
      m_thread(other.m_thread.load()) {}

Vcpu& Vcpu::operator=(Vcpu&& other) noexcept {
  if (this != &other) {
    if (m_run != nullptr) munmap(m_run, m_run_size);
    m_fd = std::move(other.m_fd);
    m_run = std::exchange(other.m_run, nullptr);
    m_run_size = std::exchange(other.m_run_size, 0);
    m_id = other.m_id;
    m_cpuid = std::move(other.m_cpuid);
    m_thread = other.m_thread.load();
  }
  return *this;
}

Vcpu::~Vcpu() {
  if (m_run != nullptr) munmap(m_run, m_run_size);
}

void Vcpu::prepare_thread() {
  struct sigaction action {};
  action.sa_handler = on_kick_signal;
  sigemptyset(&action.sa_mask);
  // KVM_RUN returns EINTR for a pending signal whatever the flags; SA_RESTART
  // keeps other system calls on this thread (console output) from failing.
  action.sa_flags = SA_RESTART;
  sigaction(kKickSignal, &action, nullptr);
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, kKickSignal);
  pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);
  t_current_run = m_run;
  m_thread.store(static_cast<unsigned long>(pthread_self()));
}

void Vcpu::kick() {
  const auto thread = m_thread.load();
  if (thread != 0) pthread_kill(static_cast<pthread_t>(thread), kKickSignal);
}

Result<VcpuExit> Vcpu::run() {
  const int result = ioctl(m_fd.get(), KVM_RUN, 0);
  const int error_number = errno;
  m_run->immediate_exit = 0;
  if (result < 0) {
    if (error_number == EINTR || error_number == EAGAIN) return VcpuExit{exits::Interrupted{}};
    return Error::from_errno(KvmError::kIoctlFailed, "KVM_RUN", error_number);
  }
  auto* page = reinterpret_cast<std::uint8_t*>(m_run);  // kvm_run is the start of the mapping
  switch (m_run->exit_reason) {
    case KVM_EXIT_IO: {
      const auto& io = m_run->io;
      const std::size_t bytes = std::size_t{io.size} * io.count;
      if (io.data_offset + bytes > m_run_size) {
        return Error{KvmError::kMalformedExit, "KVM_EXIT_IO data lies outside the kvm_run mapping"};
      }
      const std::span<std::uint8_t> data(page + io.data_offset, bytes);
      if (io.direction == KVM_EXIT_IO_OUT) {
        return VcpuExit{exits::PortOut{IoPort(io.port), io.size, io.count, data}};
      }
      return VcpuExit{exits::PortIn{IoPort(io.port), io.size, io.count, data}};
    }
    case KVM_EXIT_MMIO: {
      auto& mmio = m_run->mmio;
      const std::size_t length = std::min<std::size_t>(mmio.len, sizeof mmio.data);
      const std::span<std::uint8_t> data(mmio.data, length);
      if (mmio.is_write != 0)
        return VcpuExit{exits::MmioWrite{GuestPhysAddr(mmio.phys_addr), data}};
      return VcpuExit{exits::MmioRead{GuestPhysAddr(mmio.phys_addr), data}};
    }
    case KVM_EXIT_HLT:
      return VcpuExit{exits::Halt{}};
    case KVM_EXIT_SHUTDOWN:
      return VcpuExit{exits::Shutdown{}};
    case KVM_EXIT_INTR:
      return VcpuExit{exits::Interrupted{}};
    case KVM_EXIT_IRQ_WINDOW_OPEN:
      return VcpuExit{exits::InterruptWindowOpen{}};
    case KVM_EXIT_FAIL_ENTRY:
      return VcpuExit{exits::FailEntry{m_run->fail_entry.hardware_entry_failure_reason}};
    case KVM_EXIT_INTERNAL_ERROR:
      return VcpuExit{exits::InternalError{m_run->internal.suberror}};
    case KVM_EXIT_SYSTEM_EVENT:
      return VcpuExit{exits::SystemEvent{m_run->system_event.type}};
    case KVM_EXIT_DEBUG:
      return VcpuExit{exits::Debug{m_run->debug.arch.exception, m_run->debug.arch.pc}};
    default:
      return VcpuExit{exits::Unknown{m_run->exit_reason}};
  }
}

Result<kvm_regs> Vcpu::registers() const {
  kvm_regs registers{};
  if (auto status = checked_ioctl(m_fd.get(), KVM_GET_REGS, "KVM_GET_REGS", &registers); !status) {
    return status.error();
  }
  return registers;
}

Status Vcpu::set_registers(const kvm_regs& registers) {
  return checked_ioctl(m_fd.get(), KVM_SET_REGS, "KVM_SET_REGS", &registers);
}

Result<kvm_sregs> Vcpu::special_registers() const {
  kvm_sregs registers{};
  if (auto status = checked_ioctl(m_fd.get(), KVM_GET_SREGS, "KVM_GET_SREGS", &registers);
      !status) {
    return status.error();
  }
  return registers;
}

Status Vcpu::set_special_registers(const kvm_sregs& registers) {
  return checked_ioctl(m_fd.get(), KVM_SET_SREGS, "KVM_SET_SREGS", &registers);
}

std::uint32_t Vcpu::tsc_khz() const {
  const int khz = ioctl(m_fd.get(), KVM_GET_TSC_KHZ);
  return khz > 0 ? static_cast<std::uint32_t>(khz) : 0;
}

Status Vcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) {
  VariableLengthBuffer<kvm_cpuid_entry2> buffer(entries.size());
  std::copy(entries.begin(), entries.end(), buffer.entries());
  if (auto status = checked_ioctl(m_fd.get(), kSetCpuid2, "KVM_SET_CPUID2", buffer.data());
      !status) {
    return status;
  }
  m_cpuid.assign(entries.begin(), entries.end());
  return {};
}

Status Vcpu::inject_interrupt(std::uint8_t vector) {
  kvm_interrupt interrupt{};
  interrupt.irq = vector;
  return checked_ioctl(m_fd.get(), KVM_INTERRUPT, "KVM_INTERRUPT", &interrupt);
}

Status Vcpu::set_single_step(bool enabled) {
  kvm_guest_debug debug{};
  debug.control = enabled ? KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP : 0;
  return checked_ioctl(m_fd.get(), KVM_SET_GUEST_DEBUG, "KVM_SET_GUEST_DEBUG", &debug);
}

Status Vcpu::set_msrs(std::span<const Msr> msrs) {
  VariableLengthBuffer<kvm_msr_entry> buffer(msrs.size());
  for (std::size_t index = 0; index < msrs.size(); ++index) {
    buffer.entries()[index] = kvm_msr_entry{msrs[index].index, 0, msrs[index].value};
  }
  // KVM_SET_MSRS returns how many it set: fewer means one was refused.
  const int done = ioctl(m_fd.get(), kSetMsrs, buffer.data());
  if (done < 0) return ioctl_error("KVM_SET_MSRS");
  if (static_cast<std::size_t>(done) != msrs.size()) {
    char text[64];
    std::snprintf(text, sizeof text, "KVM_SET_MSRS refused MSR %#x",
                  msrs[static_cast<std::size_t>(done)].index);
    return Error{KvmError::kMsrRefused, text};
  }
  return {};
}

Result<FileDescriptor> Vcpu::stats_fd() const {
  FileDescriptor fd(ioctl(m_fd.get(), KVM_GET_STATS_FD, 0));
  if (!fd.valid()) return ioctl_error("KVM_GET_STATS_FD");
  return fd;
}

const char* kvm_exit_reason_name(std::uint32_t reason) {
  switch (reason) {
    case KVM_EXIT_UNKNOWN:
      return "unknown";
    case KVM_EXIT_EXCEPTION:
      return "exception";
    case KVM_EXIT_IO:
      return "io";
    case KVM_EXIT_HYPERCALL:
      return "hypercall";
    case KVM_EXIT_DEBUG:
      return "debug";
    case KVM_EXIT_HLT:
      return "hlt";
    case KVM_EXIT_MMIO:
      return "mmio";
    case KVM_EXIT_IRQ_WINDOW_OPEN:
      return "irq-window-open";
    case KVM_EXIT_SHUTDOWN:
      return "shutdown";
    case KVM_EXIT_FAIL_ENTRY:
      return "fail-entry";
    case KVM_EXIT_INTR:
      return "intr";
    case KVM_EXIT_INTERNAL_ERROR:
      return "internal-error";
    case KVM_EXIT_SYSTEM_EVENT:
      return "system-event";
    default:
      return "other";
  }
}

std::string describe_registers(const VirtualCpu& vcpu) {
  auto registers = vcpu.registers();
  auto special = vcpu.special_registers();
  if (!registers || !special) return "(registers unavailable)";
  const auto& r = *registers;
  const auto& s = *special;
  char text[768];
  std::snprintf(text, sizeof text,
                "rip=%016llx rsp=%016llx rflags=%08llx\n"
                "rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx\n"
                "rsi=%016llx rdi=%016llx rbp=%016llx\n"
                "cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx efer=%llx\n"
                "cs=%04x (dpl %u, l %u) ss=%04x",
                r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, s.cr0,
                s.cr2, s.cr3, s.cr4, s.efer, s.cs.selector, s.cs.dpl, s.cs.l, s.ss.selector);
  return text;
}

}  // namespace vmlab
