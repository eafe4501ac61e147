/* The kernel's common 64-bit path: both entries (boot.S) arrive here with a
 * boot_info address, on the kernel's boot stack, interrupts disabled. */
#include "arch.h"
#include "boot.h"
#include "command_line.h"
#include "console.h"
#include "cpu.h"
#include "memory.h"
#include "pic.h"
#include "result.h"
#include "workloads.h"

_Noreturn void kernel_main(uint64_t boot_info_address, unsigned entry);

_Noreturn void kernel_main(uint64_t boot_info_address, unsigned entry) {
  /* Copy the boot information while the boot identity map still covers it
   * (plain loads and stores, nothing privileged), then learn from it whether
   * this kernel runs paravirtualized before anything privileged runs. Then
   * replace everything the VMM (or the PVH trampoline) set up. */
  bool adopted = boot_adopt(boot_info_address, entry);
  pv_init(adopted ? boot_info() : NULL);
  cpu_init();
  bool memory_ready = adopted && memory_init();
  console_init();

  const struct vmlab_boot_info* info = boot_info();
  const char* entry_name = entry == BOOT_ENTRY_PVH ? "pvh" : "vmlab";
  debug_console_print("VMLAB-BOOT entry=%s mem=%lu devices=%u pv=%s\n", entry_name,
                      adopted ? boot_ram_bytes() : 0, adopted ? info->device_count : 0,
                      pv_ops.name);
  if (!adopted) {
    console_print("vmlab: unusable boot information: %s\n", boot_problem());
    result_finish(RUN_STATUS_ERROR, 0, 0);
  }
  console_print("vmlab guest kernel: %s entry, %lu MiB RAM, %u devices, command line \"%s\"\n",
                entry_name, boot_ram_bytes() >> 20, info->device_count, boot_command_line());
  if (!memory_ready) {
    console_print("vmlab: %s\n", memory_problem());
    result_finish(RUN_STATUS_ERROR, 0, 0);
  }

  pic_init();
  syscall_init();

  struct run_options options;
  char message[256]; /* the unknown-workload message lists every name */
  bool parsed = command_line_parse(boot_command_line(), &options, message, sizeof message);
  result_set_run(options.workload != NULL ? options.workload->name : "unknown", options.count);
  measurement_set_marks(options.window);
  if (!parsed) {
    console_print("vmlab: bad command line: %s\n", message);
    result_finish(RUN_STATUS_ERROR, 0, 0);
  }
  if (options.console == CONSOLE_MODE_INTERRUPT && !console_use_interrupts()) {
    console_print("vmlab: console=irq needs a 16550 UART with an IRQ below 16\n");
    result_finish(RUN_STATUS_ERROR, 0, 0);
  }

  struct workload_outcome outcome = {RUN_STATUS_OK, 0, 0};
  options.workload->run(&options, &outcome);
  result_finish(outcome.status, outcome.cycles, outcome.check);
}
