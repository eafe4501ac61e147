#include "operation_workloads.h"

#include "arch.h"
#include "expect_fault.h"
#include "memory.h"
#include "pic.h"
#include "pit.h"
#include "vmlab/hypercall.h"

#define UART_SCRATCH 7
#define PIO_OUT_INITIAL 0xa5

/* FNV-1a's offset basis and prime (as kernel-smc's check), one value a step. */
#define CHECK_BASIS 0xcbf29ce484222325ull
#define CHECK_PRIME 0x100000001b3ull

/* operations.S */
void cr8_write_loop(uint64_t count);
uint64_t call_ret_loop(uint64_t count);
void divide_error_loop(uint64_t count);
extern char divide_error_instruction[];
extern char divide_error_resume[];
void page_fault_loop(uint64_t count, const uint64_t* address);
extern char page_fault_instruction[];
extern char page_fault_resume[];

static void fail(struct workload_outcome* outcome, const char* reason) {
  console_print("vmlab: %s\n", reason);
  outcome->status = RUN_STATUS_ERROR;
}

/* ---- pio-out ---- */

/* Write `index` of pio-out: it differs from the one before, so the value
 * read back at the end is the last write's and no other's. */
static uint8_t pio_out_value(uint64_t index) {
  return (uint8_t)(index * 0x3b + 0x11);
}

/* N writes of the 16550's scratch register (PC16550D datasheet, SCR: plain
 * storage), each a port access that must reach the device model. check =
 * N << 8 | the value read back at the end, which must be the last one
 * written. */
void run_pio_out(const struct run_options* options, struct workload_outcome* outcome) {
  if (!console_has_uart()) {
    fail(outcome, "pio-out needs a 16550 UART in the device table");
    return;
  }
  uint16_t scratch = (uint16_t)(console_uart_base() + UART_SCRATCH);
  port_write8(scratch, PIO_OUT_INITIAL);
  measurement_begin();
  for (uint64_t index = 0; index < options->count; ++index)
    port_write8(scratch, pio_out_value(index));
  measurement_end();
  uint8_t last = port_read8(scratch);
  uint8_t expected = options->count == 0 ? PIO_OUT_INITIAL : pio_out_value(options->count - 1);
  outcome->cycles = measurement_cycles();
  outcome->check = (options->count << 8) | last;
  if (last != expected) {
    console_print("vmlab: pio-out: the scratch register reads 0x%x after the writes, not 0x%x\n",
                  last, expected);
    outcome->status = RUN_STATUS_ERROR;
  }
}

/* ---- cr8-write ---- */

/* N writes of 0 to CR8, the task-priority register (Adams and Agesen's
 * cr8wr): privileged, so deprivileged it traps and the monitor emulates
 * it. A paravirtualized kernel has no TPR: it runs at CPL3 and para's
 * monitor emulates no instruction (its interrupt mask is the shared
 * page's), so under para the workload refuses. check = N. */
void run_cr8_write(const struct run_options* options, struct workload_outcome* outcome) {
  if (pv_ops.paravirtual) {
    fail(outcome,
         "cr8-write: a paravirtualized kernel has no task-priority register (CR8): it runs "
         "deprivileged and --cpu para emulates no privileged instruction; run it with --cpu "
         "hvm, full or bt");
    return;
  }
  measurement_begin();
  if (options->count != 0) cr8_write_loop(options->count);
  measurement_end();
  outcome->cycles = measurement_cycles();
  outcome->check = options->count;
}

/* ---- call-ret ---- */

/* N near call/ret pairs in the kernel: natively and under full nothing
 * traps; under bt both are control flow the translator rewrites (the
 * return address pushed is the guest's, so ret needs a lookup). check = the
 * callee's count, N. */
void run_call_ret(const struct run_options* options, struct workload_outcome* outcome) {
  uint64_t calls = 0;
  measurement_begin();
  if (options->count != 0) calls = call_ret_loop(options->count);
  measurement_end();
  outcome->cycles = measurement_cycles();
  outcome->check = calls;
}

/* ---- divide-error ---- */

#define VECTOR_DIVIDE_ERROR 0

/* N divisions by zero in the kernel, each a #DE delivered through the
 * kernel's IDT (reflected by the monitor under full, bt and para) to its
 * handler, which counts it at the armed fault site (expect_fault.h) and
 * returns after the div. check = the #DE the handler took there; anything
 * but N is an error. */
void run_divide_error(const struct run_options* options, struct workload_outcome* outcome) {
  struct fault_site site = {
      .vector = VECTOR_DIVIDE_ERROR,
      .rip = (uint64_t)(uintptr_t)divide_error_instruction,
      .resume = (uint64_t)(uintptr_t)divide_error_resume,
  };
  fault_site_arm(&site);
  measurement_begin();
  if (options->count != 0) divide_error_loop(options->count);
  measurement_end();
  fault_site_disarm();
  outcome->cycles = measurement_cycles();
  outcome->check = site.taken;
  if (site.taken != options->count) {
    console_print("vmlab: divide-error: the handler took %lu divide errors, not %lu\n", site.taken,
                  options->count);
    outcome->status = RUN_STATUS_ERROR;
  }
}

/* ---- pte-update ---- */

/* Quadword `index` of frame `which` (0 or 1): the two frames differ in
 * every quadword. */
static uint64_t pte_update_content(unsigned which, uint64_t index) {
  return (which + 1) * 0x0101010101010101ull ^ index * 0x9e3779b97f4a7c15ull;
}

/* N changes of a present mapping, as a kernel makes them: one page of the
 * code area (memory.h) is mapped to one of two frames of known, different
 * contents; update i points its entry at the other frame through
 * pv_ops.set_pte, invalidates the page with pv_ops.flush_tlb_single (Intel
 * SDM vol. 3A, 4.10.4.1: a changed present entry needs INVLPG) and reads a
 * quadword through the page (quadword i mod 512). Natively the update is a
 * store; under full and bt the entry's table is write-protected, so it is a
 * trap, an emulated store and a shadow update, and the read a shadow fill;
 * under para it is a validated mmu_update hypercall. check = the values
 * read, folded FNV-1a style; a read that is not the new frame's is an
 * error (a stale translation). */
void run_pte_update(const struct run_options* options, struct workload_outcome* outcome) {
  uint64_t frames[2] = {frame_allocate(), frame_allocate()};
  if (frames[0] == 0 || frames[1] == 0) {
    fail(outcome, "pte-update: no RAM left for its two frames");
    return;
  }
  for (unsigned which = 0; which < 2; ++which) {
    uint64_t* contents = physical_to_virtual(frames[which]);
    for (uint64_t index = 0; index < PAGE_SIZE / 8; ++index)
      contents[index] = pte_update_content(which, index);
  }
  uint64_t* entry;
  volatile const uint64_t* page = memory_map_remappable_page(frames[0], &entry);
  if (page == NULL) {
    fail(outcome, "pte-update: no room or RAM left to map its page");
    return;
  }
  const uint64_t flags = PTE_PRESENT | kernel_mapping_flags();
  const uint64_t address = (uint64_t)(uintptr_t)page;
  /* One read through the first mapping before the measured part: a monitor
   * with shadow tables builds (and write-protects) the entry's table now. */
  uint64_t first = page[0];
  uint64_t check = CHECK_BASIS;
  uint64_t stale = 0;
  uint64_t first_stale = 0;
  measurement_begin();
  for (uint64_t update = 0; update < options->count; ++update) {
    unsigned which = (unsigned)((update + 1) & 1);
    pv_ops.set_pte(entry, frames[which] | flags);
    pv_ops.flush_tlb_single(address);
    uint64_t index = update % (PAGE_SIZE / 8);
    uint64_t value = page[index];
    check = (check ^ value) * CHECK_PRIME;
    if (value != pte_update_content(which, index) && stale++ == 0) first_stale = update;
  }
  measurement_end();
  outcome->cycles = measurement_cycles();
  outcome->check = check;
  if (first != pte_update_content(0, 0)) {
    console_print("vmlab: pte-update: the page read 0x%lx before any update, not 0x%lx\n", first,
                  pte_update_content(0, 0));
    outcome->status = RUN_STATUS_ERROR;
  }
  if (stale != 0) {
    console_print(
        "vmlab: pte-update: %lu of %lu reads after an update did not see the new frame (the "
        "first after update %lu)\n",
        stale, options->count, first_stale);
    outcome->status = RUN_STATUS_ERROR;
  }
}

/* ---- page-fault ---- */

#define VECTOR_PAGE_FAULT 14

/* N loads from a kernel page whose entry the kernel made not present, each
 * a #PF that the kernel's handler takes at the armed fault site and returns
 * from past the load, changing no mapping: Adams and Agesen's pgfault, a
 * guest page fault and nothing else (pagefaults, demand paging from user
 * mode, also maps a page each time). Under full and bt the monitor finds no
 * guest entry and reflects the fault; under para it reflects it too.
 * check = the faults the handler took there; anything but N is an error. */
void run_page_fault(const struct run_options* options, struct workload_outcome* outcome) {
  const uint64_t frame = frame_allocate();
  uint64_t* entry;
  const uint64_t* page = frame == 0 ? NULL : memory_map_remappable_page(frame, &entry);
  if (page == NULL) {
    fail(outcome, "page-fault: no room or RAM left to map its page");
    return;
  }
  /* Not present from now on: every load faults. */
  pv_ops.set_pte(entry, 0);
  pv_ops.flush_tlb_single((uint64_t)(uintptr_t)page);
  struct fault_site site = {
      .vector = VECTOR_PAGE_FAULT,
      .rip = (uint64_t)(uintptr_t)page_fault_instruction,
      .resume = (uint64_t)(uintptr_t)page_fault_resume,
  };
  fault_site_arm(&site);
  measurement_begin();
  if (options->count != 0) page_fault_loop(options->count, page);
  measurement_end();
  fault_site_disarm();
  outcome->cycles = measurement_cycles();
  outcome->check = site.taken;
  if (site.taken != options->count) {
    console_print("vmlab: page-fault: the handler took %lu page faults, not %lu\n", site.taken,
                  options->count);
    outcome->status = RUN_STATUS_ERROR;
  }
}

/* ---- pte-write ---- */

/* N stores to a present kernel page-table entry, alternating it between two
 * frames, through pv_ops.set_pte, and nothing else: no invlpg, no access
 * through the page while the loop runs (Adams and Agesen's ptemod). Natively
 * a store; under full and bt the table is write-protected, so each is a
 * trap and an emulated store; under para a validated mmu_update hypercall.
 * After the loop the page is flushed and read once: it must show the frame
 * the last store chose. check = that quadword. */
void run_pte_write(const struct run_options* options, struct workload_outcome* outcome) {
  uint64_t frames[2] = {frame_allocate(), frame_allocate()};
  if (frames[0] == 0 || frames[1] == 0) {
    fail(outcome, "pte-write: no RAM left for its two frames");
    return;
  }
  for (unsigned which = 0; which < 2; ++which)
    *(uint64_t*)physical_to_virtual(frames[which]) = pte_update_content(which, 0);
  uint64_t* entry;
  volatile const uint64_t* page = memory_map_remappable_page(frames[0], &entry);
  if (page == NULL) {
    fail(outcome, "pte-write: no room or RAM left to map its page");
    return;
  }
  const uint64_t flags = PTE_PRESENT | kernel_mapping_flags();
  /* One read first: a monitor with shadow tables shadows (and
   * write-protects) the entry's table now, outside the loop. */
  const uint64_t first = page[0];
  measurement_begin();
  for (uint64_t store = 0; store < options->count; ++store)
    pv_ops.set_pte(entry, frames[(store + 1) & 1] | flags);
  measurement_end();
  outcome->cycles = measurement_cycles();
  pv_ops.flush_tlb_single((uint64_t)(uintptr_t)page);
  const unsigned last = (unsigned)(options->count & 1);
  outcome->check = page[0];
  if (first != pte_update_content(0, 0) || outcome->check != pte_update_content(last, 0)) {
    console_print("vmlab: pte-write: the page read 0x%lx, then 0x%lx after %lu stores\n", first,
                  outcome->check, options->count);
    outcome->status = RUN_STATUS_ERROR;
  }
}

/* ---- hypercall ---- */

/* N null hypercalls: SCHED_OP YIELD, which returns at once with nothing
 * pending (abi/vmlab/hypercall.h; the monitor's SCHED_OP YIELD case only
 * sets the result), and nothing can be pending here: the kernel runs with
 * events masked and no interrupt line unmasked. So each one is the whole
 * hypercall path, into the monitor and back, and nothing else. Only a
 * paravirtualized kernel has hypercalls. check = the hypercalls the monitor
 * counted in the shared page over the loop, which must be N. */
void run_hypercall(const struct run_options* options, struct workload_outcome* outcome) {
  if (!pv_ops.paravirtual) {
    fail(outcome,
         "hypercall needs --cpu para: only a paravirtualized kernel makes hypercalls (under hvm, "
         "full, bt and on a real machine the kernel runs natively)");
    return;
  }
  uint64_t refused = 0;
  /* Counted inside the measured interval: with window=1 its marks are
   * printed outside it, by hypercalls of their own. */
  measurement_begin();
  uint64_t before = pv_hypercalls_handled();
  for (uint64_t call = 0; call < options->count; ++call) {
    if (hypercall(VMLAB_HYPERCALL_SCHED_OP, VMLAB_SCHED_YIELD, 0, 0, 0) != VMLAB_OK) ++refused;
  }
  uint64_t handled = pv_hypercalls_handled() - before;
  measurement_end();
  outcome->cycles = measurement_cycles();
  outcome->check = handled;
  if (refused != 0 || handled != options->count) {
    console_print("vmlab: hypercall: the monitor counted %lu of %lu, and refused %lu\n", handled,
                  options->count, refused);
    outcome->status = RUN_STATUS_ERROR;
  }
}

/* ---- interrupts ---- */

/* The cost of taking an interrupt: delivery through the IDT (or, under a
 * monitor, injection into the guest kernel), the kernel's timer handler
 * (count the tick, EOI to the 8259) and the return. The PIT ticks at hz
 * while the kernel, interrupts enabled, runs a loop that reads the tick
 * counter and then the TSC every iteration. An iteration is the interval
 * between two TSC reads.
 *
 * A tick first seen in iteration j was taken after the counter read of
 * iteration j - 1 and before that of j: in iteration j - 1 (between its
 * counter read and its TSC read) or in iteration j. So iterations j - 1 and
 * j together hold the whole of it (j alone when j - 1 already held the
 * tick before). Every other iteration is an ordinary one, and their mean
 * is the cost of an iteration without an interrupt, measured in the same
 * run and mode. cycles = the sum of the iterations holding a tick, less
 * one ordinary mean for each of them: what the N interrupts cost over the
 * loop, so cycles / N is the cost of one. The mean, not the minimum: the
 * host's noise (preemption, emulation) lands in both kinds of iteration
 * alike, and the mean of ordinary ones estimates it without bias.
 *
 * So that irqs is exact, the handler of tick N + 1 masks the timer's line
 * and stops the PIT (timer_stop_at); the loop waits for it after the N
 * measured ones and it is not measured: irqs = N + 1, check = the ticks
 * the loop measured, N. */
struct interrupt_loop {
  uint64_t holding_cycles; /* iterations that held a tick */
  uint64_t holding_iterations;
  uint64_t ordinary_cycles;
  uint64_t ordinary_iterations;
  uint64_t ticks_seen;
};

static void interrupt_loop_run(uint64_t count, uint64_t first_tick, struct interrupt_loop* loop) {
  uint64_t last_ticks = first_tick;
  uint64_t last_time = read_timestamp_counter();
  uint64_t held_length = 0; /* the last ordinary iteration, not yet counted */
  bool held = false;
  pv_ops.irq_enable();
  while (loop->ticks_seen < count) {
    uint64_t ticks = timer_ticks();
    uint64_t now = read_timestamp_counter();
    uint64_t length = now - last_time;
    last_time = now;
    if (ticks != last_ticks) {
      loop->ticks_seen += ticks - last_ticks;
      last_ticks = ticks;
      if (held) {
        loop->holding_cycles += held_length;
        ++loop->holding_iterations;
        held = false;
      }
      loop->holding_cycles += length;
      ++loop->holding_iterations;
    } else {
      if (held) {
        loop->ordinary_cycles += held_length;
        ++loop->ordinary_iterations;
      }
      held_length = length;
      held = true;
    }
  }
  pv_ops.irq_disable();
}

void run_interrupts(const struct run_options* options, struct workload_outcome* outcome) {
  uint32_t irq = pit_irq();
  if (irq >= PIC_IRQ_COUNT) {
    fail(outcome, "interrupts needs an 8254 PIT with an IRQ");
    return;
  }
  pit_start(options->hz); /* hz was range-checked with the command line */
  pic_unmask(irq);
  struct interrupt_loop loop = {0};
  measurement_begin();
  /* Interrupts are still disabled: no tick is taken between these two. */
  uint64_t first = timer_ticks();
  uint64_t stop = first + options->count + 1;
  timer_stop_at(stop);
  if (options->count != 0) interrupt_loop_run(options->count, first, &loop);
  /* The tick that stops the timer; sti; hlt cannot miss it (arch.h). */
  while (timer_ticks() < stop)
    interrupts_enable_and_wait();
  measurement_end();
  pic_mask(irq);
  pit_stop();
  uint64_t excess = 0;
  if (loop.ordinary_iterations != 0) {
    uint64_t ordinary = loop.ordinary_cycles / loop.ordinary_iterations;
    uint64_t expected = ordinary * loop.holding_iterations;
    excess = loop.holding_cycles > expected ? loop.holding_cycles - expected : 0;
  } else if (options->count != 0) {
    console_print(
        "vmlab: interrupts: no iteration of the loop went without a tick at hz=%u: "
        "lower hz\n",
        options->hz);
    outcome->status = RUN_STATUS_ERROR;
  }
  outcome->cycles = excess;
  /* Two ticks in one iteration (a host that stalled the vCPU) can take the
   * stopping tick into the loop; it then counts as measured. */
  outcome->check = loop.ticks_seen > options->count ? options->count : loop.ticks_seen;
}
