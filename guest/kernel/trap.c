/* The C side of every interrupt and exception (entry.S saves the registers
 * and calls trap_dispatch). */
#include <stdbool.h>

#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "expect_fault.h"
#include "irq.h"
#include "pic.h"
#include "pit.h"
#include "result.h"
#include "task.h"

/* Drivers' handlers by line (irq.h); written only with interrupts disabled. */
static irq_handler registered_handlers[PIC_IRQ_COUNT];

bool irq_register(uint32_t irq, irq_handler handler) {
  if (irq >= PIC_IRQ_COUNT) return false;
  registered_handlers[irq] = handler;
  return true;
}

static void interrupt_dispatch(uint32_t irq) {
  ++guest_counters.irqs;
  if (pic_spurious(irq)) return;
  if (irq == pit_irq()) {
    timer_interrupt();
  } else if (irq == console_uart_irq()) {
    console_interrupt();
  } else if (registered_handlers[irq] != NULL) {
    registered_handlers[irq]();
  }
  pic_end_of_interrupt(irq);
}

/* The privilege level the interrupted code ran at, from the frame the CPU
 * pushed (Intel SDM vol. 3A, 6.14.2), not from the current CS. */
static int interrupted_privilege_level(const struct trap_frame* frame) {
  return (int)(frame->cs & 3);
}

/* A SYSCALL from user mode that arrived at LSTAR without switching to CPL0.
 * Architecturally SYSCALL always enters CPL0 with CS from STAR (Intel SDM
 * vol. 3A, 5.8.8), so on correct hardware this never happens. The kvm_pvm
 * backend (PLATFORM.md) was observed to jump to LSTAR but stay at CPL3; the
 * kernel's entry page is supervisor-only, so fetching its first instruction
 * faults with RIP = CR2 = LSTAR, which no other fault produces. RCX and R11 still hold
 * what SYSCALL saved (return RIP and RFLAGS), so the kernel completes the
 * system call here and returns with iretq as the entry stub would. */
static bool is_unprivileged_syscall(const struct trap_frame* frame, uint64_t fault_address) {
  uint64_t entry = (uint64_t)(uintptr_t)syscall_entry;
  return frame->vector == VECTOR_PAGE_FAULT && interrupted_privilege_level(frame) == 3 &&
         frame->rip == entry && fault_address == entry;
}

static void complete_unprivileged_syscall(struct trap_frame* frame) {
  frame->rip = frame->rcx;
  /* The frame's own RFLAGS (taken at CPL3, so IOPL is unchanged) with IF
   * restored in case FMASK was applied; never a user-chosen R11. */
  frame->rflags |= RFLAGS_INTERRUPT_ENABLE;
  syscall_dispatch(frame);
}

void trap_dispatch(struct trap_frame* frame) {
  if (frame->vector >= PIC_VECTOR_BASE && frame->vector < PIC_VECTOR_BASE + PIC_IRQ_COUNT) {
    interrupt_dispatch((uint32_t)(frame->vector - PIC_VECTOR_BASE));
    return;
  }
  /* A fault at the armed resumable site (expect_fault.h): counted, and the
   * kernel returns past the instruction. */
  if (interrupted_privilege_level(frame) == 0 && fault_site_take(frame)) return;
  uint64_t fault_address = frame->vector == VECTOR_PAGE_FAULT ? read_cr2() : 0;
  /* A kernel-mode exception that expect_fault() is waiting for: recorded,
   * and the kernel resumes at its recovery point (does not return). */
  if (interrupted_privilege_level(frame) == 0 && expect_fault_armed()) {
    expect_fault_take(frame, fault_address);
  }
  if (is_unprivileged_syscall(frame, fault_address)) {
    complete_unprivileged_syscall(frame);
    return;
  }
  if (frame->vector == VECTOR_PAGE_FAULT && task_handle_page_fault(frame, fault_address)) return;
  if (interrupted_privilege_level(frame) == 3) task_end_on_fault(frame, fault_address);
  fatal_exception(frame, fault_address);
}
