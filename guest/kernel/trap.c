/* The C side of every interrupt and exception (entry.S saves the registers
 * and calls trap_dispatch). */
#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "pic.h"
#include "pit.h"
#include "result.h"
#include "task.h"

static void interrupt_dispatch(uint32_t irq) {
  ++guest_counters.irqs;
  if (pic_spurious(irq)) return;
  if (irq == pit_irq()) {
    timer_interrupt();
  } else if (irq == console_uart_irq()) {
    console_interrupt();
  }
  pic_end_of_interrupt(irq);
}

/* The privilege level the interrupted code ran at, from the frame the CPU
 * pushed (Intel SDM vol. 3A, 6.14.2), not from the current CS. */
static int interrupted_privilege_level(const struct trap_frame* frame) {
  return (int)(frame->cs & 3);
}

/* entry.S */
extern const char syscall_entry[];

/* A `syscall` from user mode that arrived without entering CPL0.
 *
 * On real hardware and QEMU, SYSCALL loads CS from STAR and runs LSTAR at
 * CPL0. The software KVM backend kvm_pvm (PLATFORM.md) instead jumps to LSTAR
 * still at CPL3, so the fetch of syscall_entry faults on the kernel's
 * supervisor-only page. Everything else SYSCALL does has been done: RCX holds
 * the return RIP, R11 the RFLAGS, RSP is still the user stack (Intel SDM
 * vol. 2B, SYSCALL). So the kernel completes the system call from the fault
 * frame and returns with iretq exactly as syscall_entry would have: the user
 * program cannot tell, and the counters match every other platform. */
static bool complete_misdelivered_syscall(struct trap_frame* frame, uint64_t fault_address) {
  if (frame->vector != VECTOR_PAGE_FAULT || interrupted_privilege_level(frame) != 3) return false;
  const uint64_t entry = (uint64_t)(uintptr_t)syscall_entry;
  if (frame->rip != entry || fault_address != entry) return false;
  frame->rip = frame->rcx;
  frame->rflags = frame->r11;
  ++guest_counters.syscalls_completed_from_faults;
  syscall_dispatch(frame);
  return true;
}

void trap_dispatch(struct trap_frame* frame) {
  if (frame->vector >= PIC_VECTOR_BASE && frame->vector < PIC_VECTOR_BASE + PIC_IRQ_COUNT) {
    interrupt_dispatch((uint32_t)(frame->vector - PIC_VECTOR_BASE));
    return;
  }
  uint64_t fault_address = frame->vector == VECTOR_PAGE_FAULT ? read_cr2() : 0;
  if (complete_misdelivered_syscall(frame, fault_address)) return;
  if (frame->vector == VECTOR_PAGE_FAULT && task_handle_page_fault(frame, fault_address)) return;
  if (interrupted_privilege_level(frame) == 3) task_end_on_fault(frame, fault_address);
  fatal_exception(frame, fault_address);
}
