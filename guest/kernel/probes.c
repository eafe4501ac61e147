/* The x86 holes on display (Robin & Irvine, USENIX Security 2000; Adams &
 * Agesen, ASPLOS 2006): instructions that are sensitive (they read or change
 * privileged state) but not privileged (they do not fault at CPL3). Natively,
 * and under hardware-assisted virtualization, the kernel runs them at CPL0 and
 * sees the truth. Deprivileged to CPL3 under trap-and-emulate they run
 * silently against the real CPU and report the monitor's state, not the
 * guest's. Each probe prints one line on the debug console:
 *
 *   VMLAB-PROBE <name> <what it saw>
 *
 * The host (`vmlab probe`) compares the lines across QEMU and every mode. */
#include "probes.h"

#include <stdbool.h>

#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "vmlab/cpuid.h"

#define RFLAGS_IF (1ull << 9)

/* CR0 as this kernel sets it, so smsw reads the same value after either entry
 * (the PVH trampoline and the vmlab entry leave different bits). */
#define PROBE_CR0 0x80050033ull /* PG WP NE ET MP PE */

struct table_register {
  uint16_t limit;
  uint64_t base;
} __attribute__((packed));

static uint64_t probes_run;

static void report_value(const char* name, uint64_t value) {
  debug_console_print("VMLAB-PROBE %s 0x%lx\n", name, value);
  ++probes_run;
}

static void report_flag(const char* name, const char* flag, bool set) {
  debug_console_print("VMLAB-PROBE %s %s=%d\n", name, flag, set ? 1 : 0);
  ++probes_run;
}

static void report_invalid(const char* name) {
  debug_console_print("VMLAB-PROBE %s invalid\n", name);
  ++probes_run;
}

static void report_table(const char* name, uint64_t base, uint64_t limit) {
  debug_console_print("VMLAB-PROBE %s base=0x%lx,limit=0x%lx\n", name, base, limit);
  ++probes_run;
}

/* lar/lsl/verr/verw set ZF when the selector passed the checks (SDM vol. 2A). */
static void probe_segment_checks(void) {
  uint16_t code;
  uint16_t data;
  __asm__ volatile("mov %%cs, %0" : "=r"(code));
  __asm__ volatile("mov %%ss, %0" : "=r"(data));
  uint64_t rights = 0;
  uint8_t valid = 0;
  __asm__ volatile("lar %2, %0\n\tsetz %1"
                   : "=r"(rights), "=q"(valid)
                   : "r"((uint64_t)code)
                   : "cc");
  if (valid) {
    report_value("lar-cs", rights & 0x00ffff00u);
  } else {
    report_invalid("lar-cs");
  }
  uint64_t limit = 0;
  __asm__ volatile("lsl %2, %0\n\tsetz %1" : "=r"(limit), "=q"(valid) : "r"((uint64_t)code) : "cc");
  if (valid) {
    report_value("lsl-cs", limit);
  } else {
    report_invalid("lsl-cs");
  }
  __asm__ volatile("verr %1\n\tsetz %0" : "=q"(valid) : "r"(code) : "cc");
  report_flag("verr-cs", "readable", valid != 0);
  __asm__ volatile("verw %1\n\tsetz %0" : "=q"(valid) : "r"(data) : "cc");
  report_flag("verw-ss", "writable", valid != 0);
}

/* CPUID at the kernel's level: the hypervisor leaves the VMM published
 * (abi/vmlab/cpuid.h). At CPL0 (hvm, QEMU) the CPU, or KVM emulating
 * it, answers with the virtual machine's leaves. Deprivileged to CPL3 (full,
 * para) the answer depends on the host: VT-x and AMD-V always intercept
 * CPUID, but kvm_pvm can only where the host CPU has CPUID faulting; without
 * it `cpuid` runs on the host CPU and shows the host's leaves. The host
 * (`vmlab probe`) compares these lines with what its VMM published. */
static void probe_cpuid(void) {
  uint32_t eax, ebx, ecx, edx;
  __asm__ volatile("cpuid"
                   : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx)
                   : "a"(VMLAB_CPUID_HYPERVISOR_LEAF), "c"(0));
  const uint32_t words[3] = {ebx, ecx, edx};
  char signature[13];
  for (unsigned index = 0; index < 12; ++index) {
    char c = (char)(words[index / 4] >> (8 * (index % 4)));
    signature[index] = (c > ' ' && c <= '~') ? c : '.';
  }
  signature[12] = '\0';
  debug_console_print("VMLAB-PROBE cpuid-signature %s\n", signature);
  ++probes_run;
  __asm__ volatile("cpuid"
                   : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx)
                   : "a"(VMLAB_CPUID_VERSION_LEAF), "c"(0));
  debug_console_print("VMLAB-PROBE cpuid-0x40000001 eax=0x%x\n", eax);
  ++probes_run;
}

/* What a paravirtualized kernel does instead of each sensitive instruction
 * (DESIGN.md 1, `para`): it never runs them, because it knows that at CPL3
 * they would tell it the monitor's state. It asks pv_ops, or answers from
 * what it registered with the monitor or keeps itself, as Linux's Xen
 * paravirt_ops do (a cached CR0, its own GDT and IDT). Each probe line is
 * followed by one VMLAB-PROBE-PV line that names the substitute. */
static void report_substitute(const char* name, const char* how) {
  debug_console_print("VMLAB-PROBE-PV %s %s\n", name, how);
}

static uint64_t run_paravirtual_probes(void) {
  pv_ops.irq_disable();
  report_flag("pushf-after-cli", "if", (pv_ops.save_flags() & RFLAGS_IF) != 0);
  report_substitute("pushf-after-cli", "pv_ops irq_disable + save_flags: the shared page's mask");

  pv_ops.irq_enable();
  pv_ops.restore_flags(pv_ops.save_flags() & ~RFLAGS_IF);
  report_flag("popf-clears-if", "if", (pv_ops.save_flags() & RFLAGS_IF) != 0);
  pv_ops.irq_disable();
  report_substitute("popf-clears-if", "pv_ops restore_flags: a store to the shared page's mask");

  struct cpu_tables tables = cpu_descriptor_tables();
  report_table("sgdt", tables.gdt_base, tables.gdt_limit);
  report_substitute("sgdt", "the GDT it registered with set_gdt");
  report_table("sidt", tables.idt_base, tables.idt_limit);
  report_substitute("sidt", "the IDT it turned into a set_trap_table call");
  report_value("sldt", 0);
  report_substitute("sldt", "no LDT: it never loads one");
  report_value("str", SELECTOR_TSS);
  report_substitute("str", "its own TSS selector (the monitor switches stacks: stack_switch)");
  report_value("smsw", PROBE_CR0 & 0xffff);
  report_substitute("smsw", "its cached CR0 (the value it would load)");
  report_value("mov-from-cs", SELECTOR_KERNEL_CODE);
  report_substitute("mov-from-cs", "its kernel code selector constant, as event frames carry it");
  report_value("mov-from-ss", SELECTOR_KERNEL_DATA);
  report_substitute("mov-from-ss", "its kernel data selector constant");
  /* Run for real, to show what a kernel at CPL3 would see; this kernel takes
   * nothing from CPUID (boot_info says para, and the TSC rate). */
  probe_cpuid();
  return probes_run;
}

uint64_t run_probes(bool segment_checks_skipped) {
  probes_run = 0;
  if (pv_ops.paravirtual) return run_paravirtual_probes();
  write_cr0(PROBE_CR0);

  uint64_t flags;
  /* cli, then read IF back with pushf: 0 on a real CPU. */
  __asm__ volatile("cli\n\tpushfq\n\tpopq %0" : "=r"(flags) : : "memory");
  report_flag("pushf-after-cli", "if", (flags & RFLAGS_IF) != 0);

  /* sti, then clear IF with popf and read it back: 0 on a real CPU. At CPL3
   * with IOPL 0, popf leaves IF alone without faulting (SDM vol. 2B POPF). */
  __asm__ volatile(
      "sti\n\t"
      "pushfq\n\t"
      "andq %1, (%%rsp)\n\t"
      "popfq\n\t"
      "pushfq\n\t"
      "popq %0\n\t"
      "cli"
      : "=r"(flags)
      : "i"(~RFLAGS_IF)
      : "memory", "cc");
  report_flag("popf-clears-if", "if", (flags & RFLAGS_IF) != 0);

  struct table_register table;
  __asm__ volatile("sgdt %0" : "=m"(table));
  report_table("sgdt", table.base, table.limit);
  __asm__ volatile("sidt %0" : "=m"(table));
  report_table("sidt", table.base, table.limit);

  uint16_t selector;
  __asm__ volatile("sldt %0" : "=m"(selector));
  report_value("sldt", selector);
  __asm__ volatile("str %0" : "=m"(selector));
  report_value("str", selector);
  uint16_t machine_status;
  __asm__ volatile("smsw %0" : "=m"(machine_status));
  report_value("smsw", machine_status);

  __asm__ volatile("mov %%cs, %0" : "=r"(selector));
  report_value("mov-from-cs", selector);
  __asm__ volatile("mov %%ss, %0" : "=r"(selector));
  report_value("mov-from-ss", selector);

  probe_cpuid();
  if (!segment_checks_skipped) probe_segment_checks();
  return probes_run;
}
