#include "workloads.h"

#include "arch.h"
#include "boot.h"
#include "disk_workloads.h"
#include "dma_attack.h"
#include "hostile.h"
#include "integer_mix.h"
#include "lib.h"
#include "memory.h"
#include "operation_workloads.h"
#include "pic.h"
#include "pit.h"
#include "probes.h"
#include "rtc.h"
#include "task.h"
#include "user_abi.h"

#define UART_SCRATCH 7
#define PIO_PATTERN 0x5a

static void fail(struct workload_outcome* outcome, const char* reason) {
  console_print("vmlab: %s\n", reason);
  outcome->status = RUN_STATUS_ERROR;
}

/* The user task does the work at CPL3 and measures itself with rdtsc; the
 * kernel's own interval (task entry to exit) is the fallback for cycles. */
static void run_user_task(uint64_t workload, uint64_t count, struct workload_outcome* outcome) {
  struct task_report report;
  measurement_begin();
  task_run(workload, count, &report);
  measurement_end();
  outcome->cycles = report.reported ? report.reported_cycles : measurement_cycles();
  outcome->check = report.reported ? report.reported_check : report.bytes_written;
  /* Printed after the measured interval: console output is not part of it. */
  if (report.outcome == TASK_OUTCOME_SEGFAULT) {
    console_print("vmlab: user task fault: vector %lu error 0x%lx rip 0x%lx address 0x%lx\n",
                  report.fault_vector, report.fault_error_code, report.fault_rip,
                  report.fault_address);
    outcome->status = RUN_STATUS_SEGFAULT;
  } else if (report.exit_status != 0) {
    console_print("vmlab: user task exited with status %lu\n", report.exit_status);
    outcome->status = RUN_STATUS_ERROR;
  }
}

/* Creates the user task; when it cannot, the outcome says so for `workload`. */
static bool user_task_ready(const char* workload, struct workload_outcome* outcome) {
  if (task_create()) return true;
  console_print("vmlab: %s: cannot create the user task\n", workload);
  outcome->status = RUN_STATUS_ERROR;
  return false;
}

static void run_hello(const struct run_options* options, struct workload_outcome* outcome) {
  console_print("Hello from the vmlab guest kernel (%s entry)\n",
                boot_entry_kind() == BOOT_ENTRY_PVH ? "PVH" : "vmlab");
  if (!user_task_ready("hello", outcome)) return;
  run_user_task(VMLAB_USER_WORKLOAD_HELLO, options->count, outcome);
}

static void run_syscalls(const struct run_options* options, struct workload_outcome* outcome) {
  if (!user_task_ready("syscalls", outcome)) return;
  run_user_task(VMLAB_USER_WORKLOAD_SYSCALLS, options->count, outcome);
}

static void run_pagefaults(const struct run_options* options, struct workload_outcome* outcome) {
  if (!user_task_ready("pagefaults", outcome)) return;
  /* One frame per page and one page table per 2 MiB of the region. */
  uint64_t needed = options->count + (options->count + 511) / 512;
  if (frames_free() < needed) {
    console_print(
        "vmlab: pagefaults n=%lu needs %lu free frames, the VM has %lu: give it more "
        "memory or lower n\n",
        options->count, needed, frames_free());
    outcome->status = RUN_STATUS_ERROR;
    return;
  }
  run_user_task(VMLAB_USER_WORKLOAD_PAGEFAULTS, options->count, outcome);
}

static void run_compute(const struct run_options* options, struct workload_outcome* outcome) {
  if (!user_task_ready("compute", outcome)) return;
  run_user_task(VMLAB_USER_WORKLOAD_COMPUTE, options->count, outcome);
}

/* compute's integer mix (integer_mix.h) in the kernel itself: at CPL0 under
 * hvm, deprivileged under full and para. Its cycles and check mean what
 * compute's do, so the pair compares user code, which every mode runs
 * natively, with kernel code as the mode runs it (emulated, translated or
 * native). Interrupts are on over the loop, as in the user task, so that an
 * interrupt is taken when it comes; the enable and the disable, which trap
 * when deprivileged, are outside the measured part. */
static void run_kernel_compute(const struct run_options* options,
                               struct workload_outcome* outcome) {
  pv_ops.irq_enable();
  measurement_begin();
  uint64_t state = integer_mix(options->count);
  measurement_end();
  pv_ops.irq_disable();
  outcome->cycles = measurement_cycles();
  outcome->check = state;
}

/* kernel-smc: self-modifying kernel code. A function on a page of its own in
 * the code area (memory_map_code_page), rewritten and called round after
 * round:
 *
 *   b8 imm32    mov eax, imm32
 *   op f8       add, sub or xor eax, edi (ModRM f8: mod 11, reg edi, r/m eax)
 *   c3          ret
 *
 * Generation g of it has the immediate smc_immediate(g) and the operation
 * g % 3, so that each patch changes an immediate and an opcode, both in the
 * middle of the code. Generation 0 runs once before the first patch; round
 * r calls generation r, patches it into r + 1 and calls it again, so every
 * write hits a page that has just run as code. What each call must return
 * is computed here in C, not by the patched code: a VMM that went on running
 * a translation of the old bytes gives mismatches (counted, status=error)
 * and another check.
 *
 * On one processor the store, then a branch to the new code, is all x86
 * asks when the code is written at the address it runs from (Intel SDM vol.
 * 3A, 9.1.3 "Handling Self- and Cross-Modifying Code", option 1): even
 * rounds patch that way. Odd rounds patch through the physical map, as a
 * kernel patching its text through an alias does (Linux's text_poke); the
 * prefetch check is by linear address, so the SDM has that software execute
 * a serializing instruction, such as CPUID, before the new code (vol. 3A,
 * 11.6 "Self-Modifying Code"). */
#define SMC_OPCODE_MOV_EAX_IMMEDIATE 0xb8
#define SMC_MODRM_EAX_EDI 0xf8
#define SMC_OPCODE_RET 0xc3
#define SMC_IMMEDIATE_OFFSET 1
#define SMC_OPERATION_OFFSET 5
#define SMC_MODRM_OFFSET 6
#define SMC_RET_OFFSET 7

/* FNV-1a's offset basis and prime, folding one returned value a step. */
#define SMC_CHECK_BASIS 0xcbf29ce484222325ull
#define SMC_CHECK_PRIME 0x100000001b3ull

enum smc_operation { SMC_ADD, SMC_SUBTRACT, SMC_XOR, SMC_OPERATION_COUNT };

/* op r/m32, r32 (Intel SDM vol. 2A and 2B: ADD 01 /r, SUB 29 /r, XOR 31 /r). */
static const uint8_t smc_opcodes[SMC_OPERATION_COUNT] = {
    [SMC_ADD] = 0x01,
    [SMC_SUBTRACT] = 0x29,
    [SMC_XOR] = 0x31,
};

typedef uint32_t (*smc_function)(uint32_t argument);

static uint32_t smc_immediate(uint64_t generation) {
  return (uint32_t)generation * 0x9e3779b9u + 0x7f4a7c15u;
}

static enum smc_operation smc_operation_of(uint64_t generation) {
  return (enum smc_operation)(generation % SMC_OPERATION_COUNT);
}

/* What generation's code returns for argument. */
static uint32_t smc_expected(uint64_t generation, uint32_t argument) {
  uint32_t immediate = smc_immediate(generation);
  switch (smc_operation_of(generation)) {
    case SMC_ADD:
      return immediate + argument;
    case SMC_SUBTRACT:
      return immediate - argument;
    case SMC_XOR:
    case SMC_OPERATION_COUNT:
      break;
  }
  return immediate ^ argument;
}

/* The argument of the call-th call, spread over 32 bits. */
static uint32_t smc_argument(uint64_t call) {
  return (uint32_t)call * 0x85ebca6bu;
}

/* The immediate (one unaligned 4-byte store) and the opcode (one byte). The
 * call through the function pointer that follows is opaque to the compiler,
 * which therefore makes both stores before it. */
static void smc_patch(uint8_t* code, uint64_t generation) {
  uint32_t immediate = smc_immediate(generation);
  __builtin_memcpy(code + SMC_IMMEDIATE_OFFSET, &immediate, sizeof immediate);
  code[SMC_OPERATION_OFFSET] = smc_opcodes[smc_operation_of(generation)];
}

/* CPUID is serializing (Intel SDM vol. 3A, 9.3) at any CPL; its leaf 0 is
 * there on every x86-64 processor, and its answer is not used. */
static void serialize(void) {
  uint32_t eax = 0;
  uint32_t ebx;
  uint32_t ecx = 0;
  uint32_t edx;
  __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx) : : "memory");
}

struct smc_run {
  smc_function function;
  uint64_t calls;
  uint64_t check;
  uint64_t mismatches;
  uint64_t stale; /* mismatches that are what the previous generation returns */
  uint64_t first_mismatch_call;
  uint32_t first_mismatch_value;
  uint32_t first_mismatch_expected;
};

/* Calls the function, which must now be `generation`, and folds the value in. */
static void smc_call(struct smc_run* run, uint64_t generation) {
  uint32_t argument = smc_argument(run->calls);
  uint32_t value = run->function(argument);
  uint32_t expected = smc_expected(generation, argument);
  run->check = (run->check ^ value) * SMC_CHECK_PRIME;
  if (value != expected) {
    if (run->mismatches == 0) {
      run->first_mismatch_call = run->calls;
      run->first_mismatch_value = value;
      run->first_mismatch_expected = expected;
    }
    ++run->mismatches;
    if (generation > 0 && value == smc_expected(generation - 1, argument)) ++run->stale;
  }
  ++run->calls;
}

static void run_kernel_smc(const struct run_options* options, struct workload_outcome* outcome) {
  uint64_t frame;
  uint8_t* code = memory_map_code_page(&frame);
  if (code == NULL) {
    fail(outcome, "kernel-smc: no RAM left for its code page");
    return;
  }
  uint8_t* alias = physical_to_virtual(frame);
  code[0] = SMC_OPCODE_MOV_EAX_IMMEDIATE;
  code[SMC_MODRM_OFFSET] = SMC_MODRM_EAX_EDI;
  code[SMC_RET_OFFSET] = SMC_OPCODE_RET;
  smc_patch(code, 0);
  struct smc_run run = {.function = (smc_function)(uintptr_t)code, .check = SMC_CHECK_BASIS};
  smc_call(&run, 0);

  measurement_begin();
  for (uint64_t round = 0; round < options->count; ++round) {
    smc_call(&run, round);
    bool through_alias = (round & 1) != 0;
    smc_patch(through_alias ? alias : code, round + 1);
    if (through_alias) serialize();
    smc_call(&run, round + 1);
  }
  measurement_end();
  outcome->cycles = measurement_cycles();
  outcome->check = run.check;
  if (run.mismatches != 0) {
    /* Call 2r + 2 follows round r's patch, made through the alias when r is odd. */
    console_print(
        "vmlab: kernel-smc: %lu of %lu calls returned what the code written did not "
        "(%lu the previous code's); the first, call %lu, returned 0x%x, not 0x%x\n",
        run.mismatches, run.calls, run.stale, run.first_mismatch_call, run.first_mismatch_value,
        run.first_mismatch_expected);
    outcome->status = RUN_STATUS_ERROR;
  }
}

/* cli and sti are privileged and cheap on hardware; deprivileged they trap.
 * The loop is one asm block so that exactly these instructions run. */
static void run_cli_sti(const struct run_options* options, struct workload_outcome* outcome) {
  uint64_t remaining = options->count;
  measurement_begin();
  if (pv_ops.paravirtual) {
    /* The paravirtual cli and sti: stores to the shared page, no trap. */
    for (; remaining != 0; --remaining) {
      pv_ops.irq_disable();
      pv_ops.irq_enable();
    }
    pv_ops.irq_disable();
  } else if (remaining != 0) {
    __asm__ volatile("1: cli; sti; dec %0; jnz 1b; cli" : "+r"(remaining) : : "memory", "cc");
  }
  measurement_end();
  outcome->cycles = measurement_cycles();
  outcome->check = options->count;
}

/* The scratch register is plain storage in every 16550 (PC16550D datasheet,
 * SCR): each read is a port access with a known answer. */
static void run_pio(const struct run_options* options, struct workload_outcome* outcome) {
  if (!console_has_uart()) {
    fail(outcome, "pio needs a 16550 UART in the device table");
    return;
  }
  uint16_t scratch = (uint16_t)(console_uart_base() + UART_SCRATCH);
  port_write8(scratch, PIO_PATTERN);
  uint64_t sum = 0;
  measurement_begin();
  for (uint64_t index = 0; index < options->count; ++index)
    sum += port_read8(scratch);
  measurement_end();
  outcome->cycles = measurement_cycles();
  outcome->check = sum;
}

static void run_timer(const struct run_options* options, struct workload_outcome* outcome) {
  uint32_t irq = pit_irq();
  if (irq >= PIC_IRQ_COUNT) {
    fail(outcome, "timer needs an 8254 PIT with an IRQ");
    return;
  }
  measurement_begin();
  uint64_t first = timer_ticks();
  uint64_t target = first + options->count;
  pit_start(options->hz); /* hz was range-checked with the command line */
  pic_unmask(irq);
  while (timer_ticks() < target)
    interrupts_enable_and_wait();
  pic_mask(irq);
  pit_stop();
  measurement_end();
  outcome->cycles = measurement_cycles();
  outcome->check = timer_ticks() - first;
}

/* The rtc workload's check: one bit for each property that holds on any PC
 * at any time of day, so that QEMU and every CPU mode report the same value
 * (RTC_CHECK_ALL) while the date itself, on the VMLAB-RTC line, differs. */
#define RTC_CHECK_VALID 0x001     /* status D: VRT set */
#define RTC_CHECK_TIME_BASE 0x002 /* status A: the 32.768 kHz time base runs */
#define RTC_CHECK_24_HOUR 0x004   /* status B as a PC BIOS leaves it: 24-hour, */
#define RTC_CHECK_BCD 0x008       /* and BCD */
#define RTC_CHECK_SETTLED 0x010   /* every read settled: UIP cleared, two reads agreed */
#define RTC_CHECK_PLAUSIBLE 0x020 /* fields in range, year 2024-2099, weekday of the date */
#define RTC_CHECK_TICKED 0x040    /* the next second came, one second on */
#define RTC_CHECK_BINARY 0x080    /* binary mode shows the same time, in binary */
#define RTC_CHECK_12_HOUR 0x100   /* 12-hour mode shows the same time, PM in bit 7 */
#define RTC_CHECK_CMOS_RAM 0x200  /* a CMOS RAM byte keeps what is written */
#define RTC_CHECK_ALL 0x3ff

/* A CMOS RAM byte no PC BIOS uses (QEMU's and SeaBIOS's end at 0x5f); the
 * workload puts its value back. */
#define RTC_SCRATCH_BYTE 0x7f

static bool rtc_leap_year(uint32_t year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static bool rtc_plausible(const struct rtc_time* time) {
  static const uint8_t month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (time->year < 2024 || time->year > 2099 || time->month < 1 || time->month > 12) return false;
  unsigned days = month_days[time->month - 1] + (time->month == 2 && rtc_leap_year(time->year));
  return time->day >= 1 && time->day <= days && time->hour < 24 && time->minute < 60 &&
         time->second < 60 && time->weekday == rtc_weekday(time);
}

/* The same moment, or the next second if an update fell in between. */
static bool rtc_same_moment(const struct rtc_time* earlier, const struct rtc_time* later) {
  int64_t difference = rtc_seconds(later) - rtc_seconds(earlier);
  return difference == 0 || difference == 1;
}

/* The hours byte of 12-hour mode: 12, 1-11 for the hours after midnight and
 * noon, bit 7 set from noon on. */
static bool rtc_twelve_hour_register(const struct rtc_time* time, bool binary) {
  uint8_t value = time->hour_register & (uint8_t)~RTC_HOURS_PM;
  unsigned hour = binary ? value : (unsigned)(value >> 4) * 10 + (value & 0x0f);
  unsigned expected = time->hour % 12 == 0 ? 12 : time->hour % 12;
  bool pm = (time->hour_register & RTC_HOURS_PM) != 0;
  return hour == expected && pm == (time->hour >= 12);
}

/* n reads of the date and time the standard way (rtc.c) are the measured
 * part; then the checks above, with status B switched to binary and to
 * 12-hour mode for one read each and put back. */
static void run_rtc(const struct run_options* options, struct workload_outcome* outcome) {
  if (!rtc_init()) {
    fail(outcome, "rtc needs an MC146818 RTC in the device table");
    return;
  }
  uint8_t status_a = rtc_read_register(RTC_STATUS_A) & (uint8_t)~RTC_A_UPDATE_IN_PROGRESS;
  uint8_t status_b = rtc_read_register(RTC_STATUS_B);
  uint8_t status_d = rtc_read_register(RTC_STATUS_D);
  uint64_t check = 0;
  if ((status_d & RTC_D_VALID) != 0) check |= RTC_CHECK_VALID;
  if ((status_a & RTC_A_DIVIDER_MASK) == RTC_A_DIVIDER_32KHZ) check |= RTC_CHECK_TIME_BASE;
  if ((status_b & RTC_B_24_HOUR) != 0) check |= RTC_CHECK_24_HOUR;
  if ((status_b & RTC_B_BINARY) == 0) check |= RTC_CHECK_BCD;

  struct rtc_time time = {0};
  unsigned retries = 0;
  bool settled = true;
  bool plausible = true;
  measurement_begin();
  for (uint64_t read = 0; read < options->count; ++read) {
    if (!rtc_read_time(&time, &retries)) {
      settled = false;
    } else if (!rtc_plausible(&time)) {
      plausible = false;
    }
  }
  measurement_end();
  outcome->cycles = measurement_cycles();
  if (settled) check |= RTC_CHECK_SETTLED;
  if (settled && plausible) check |= RTC_CHECK_PLAUSIBLE;

  struct rtc_time next = time;
  if (settled && rtc_wait_next_second(&time, &next) &&
      rtc_seconds(&next) == rtc_seconds(&time) + 1) {
    check |= RTC_CHECK_TICKED;
  }

  struct rtc_time binary = next;
  struct rtc_time twelve_hour = next;
  rtc_write_register(RTC_STATUS_B, status_b | RTC_B_BINARY | RTC_B_24_HOUR);
  bool binary_read = rtc_read_time(&binary, NULL);
  rtc_write_register(RTC_STATUS_B, status_b & (uint8_t)~RTC_B_24_HOUR);
  bool twelve_hour_read = rtc_read_time(&twelve_hour, NULL);
  rtc_write_register(RTC_STATUS_B, status_b);
  if (binary_read && rtc_same_moment(&next, &binary) && binary.hour_register == binary.hour) {
    check |= RTC_CHECK_BINARY;
  }
  if (twelve_hour_read && rtc_same_moment(&binary, &twelve_hour) &&
      rtc_twelve_hour_register(&twelve_hour, (status_b & RTC_B_BINARY) != 0)) {
    check |= RTC_CHECK_12_HOUR;
  }

  uint8_t saved = rtc_read_register(RTC_SCRATCH_BYTE);
  rtc_write_register(RTC_SCRATCH_BYTE, 0xa5);
  uint8_t first = rtc_read_register(RTC_SCRATCH_BYTE);
  rtc_write_register(RTC_SCRATCH_BYTE, 0x5a);
  uint8_t second = rtc_read_register(RTC_SCRATCH_BYTE);
  rtc_write_register(RTC_SCRATCH_BYTE, saved);
  if (first == 0xa5 && second == 0x5a) check |= RTC_CHECK_CMOS_RAM;

  char text[RTC_TEXT_SIZE];
  char next_text[RTC_TEXT_SIZE];
  rtc_format(&time, text);
  rtc_format(&next, next_text);
  debug_console_print(
      "VMLAB-RTC time=%s weekday=%u next=%s status-a=0x%x status-b=0x%x status-d=0x%x "
      "retries=%u check=0x%lx\n",
      text, time.weekday, next_text, status_a, status_b, status_d, retries, check);
  console_print("vmlab: rtc: %s (UTC), then %s\n", text, next_text);
  outcome->check = check;
  if (check != RTC_CHECK_ALL) {
    console_print("vmlab: rtc: checks 0x%lx failed (see guest/README.md, rtc)\n",
                  RTC_CHECK_ALL & ~check);
    outcome->status = RUN_STATUS_ERROR;
  }
}

/* The two failure paths, for checking that a VMM reports them: a user store
 * to a kernel page (status=segfault) and a kernel load from an unmapped
 * address (status=fault). */
static void run_segfault(const struct run_options* options, struct workload_outcome* outcome) {
  if (!user_task_ready("segfault", outcome)) return;
  run_user_task(VMLAB_USER_WORKLOAD_SEGFAULT, options->count, outcome);
}

static void run_fault(const struct run_options* options, struct workload_outcome* outcome) {
  (void)options;
  (void)outcome;
  measurement_begin();
  /* Nothing is mapped at virtual address 0 in the kernel's address space. */
  __asm__ volatile("movb 0, %%al" : : : "rax", "memory");
}

static void run_probes_workload(const struct run_options* options,
                                struct workload_outcome* outcome) {
  measurement_begin();
  outcome->check = run_probes(options->skip_segment_checks);
  measurement_end();
  outcome->cycles = measurement_cycles();
}

/* Every attempt must end in a fault the kernel survives (hostile.c); check
 * is how many ended as expected. */
static void run_hostile_workload(const struct run_options* options,
                                 struct workload_outcome* outcome) {
  (void)options;
  uint64_t as_expected;
  measurement_begin();
  bool ready = run_hostile(&as_expected);
  measurement_end();
  if (!ready) {
    outcome->status = RUN_STATUS_ERROR;
    return;
  }
  outcome->cycles = measurement_cycles();
  outcome->check = as_expected;
}

/* Limits keep a run within minutes where kernel code is emulated
 * (PLATFORM.md); pagefaults is bounded by the demand region. */
static const struct workload workloads[] = {
    {"hello", 1, 1000, run_hello},
    {"syscalls", 1000, 10000000, run_syscalls},
    {"pagefaults", 256, VMLAB_USER_DEMAND_SIZE / VMLAB_PAGE_SIZE, run_pagefaults},
    {"compute", 10000000, 100000000000ull, run_compute},
    /* compute's rounds where kernel code may be emulated: about 15,000
     * cycles a round under hvm on kvm_pvm, so 6 s by default, 10 minutes at
     * most. */
    {"kernel-compute", 1000000, 100000000, run_kernel_compute},
    /* About 190,000 cycles a round under hvm on kvm_pvm (kernel code
     * emulated) and 1,000,000 under bt (a write fault, a dropped block and a
     * new translation each round): minutes at most. */
    {"kernel-smc", 1000, 1000000, run_kernel_smc},
    {"cli-sti", 1000, 10000000, run_cli_sti},
    {"pio", 1000, 10000000, run_pio},
    {"timer", 10, 100000, run_timer},
    /* The single-operation workloads (operation_workloads.c). Where kernel
     * code is emulated (hvm on kvm_pvm: about 1 us an instruction) or each
     * operation traps to the monitor (full, bt, para: 10-40 us a trap, up
     * to three traps an operation), the defaults take well under a second
     * and the limits minutes. */
    {"pio-out", 1000, 10000000, run_pio_out},
    {"cr8-write", 1000, 10000000, run_cr8_write},
    {"call-ret", 10000, 100000000, run_call_ret},
    {"divide-error", 1000, 1000000, run_divide_error},
    {"pte-update", 1000, 1000000, run_pte_update},
    {"page-fault", 1000, 1000000, run_page_fault},
    {"pte-write", 1000, 1000000, run_pte_write},
    {"hypercall", 1000, 10000000, run_hypercall},
    /* Ticks at hz (default 100): n = 100 takes a second. */
    {"interrupts", 100, 100000, run_interrupts},
    {"rtc", 10, 1000, run_rtc},
    {"segfault", 1, 1, run_segfault},
    {"fault", 1, 1, run_fault},
    {"probes", 1, 1, run_probes_workload},
    {"hostile", 1, 1, run_hostile_workload},
    /* n sectors; memory bounds them further (disk_workloads.c). */
    {"disk-write", 256, 131072, run_disk_write},
    {"disk-read", 256, 131072, run_disk_read},
    {"disk-verify", 256, 65536, run_disk_verify},
    /* Five DMAs through the passthrough disk, whatever n says (dma_attack.c). */
    {"dma-attack", 1, 1, run_dma_attack},
};

const struct workload* workload_find(const char* name, size_t length) {
  for (size_t index = 0; index < sizeof workloads / sizeof workloads[0]; ++index) {
    if (text_equals(name, length, workloads[index].name)) return &workloads[index];
  }
  return NULL;
}
