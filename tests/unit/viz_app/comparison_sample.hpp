// A small `vmlab compare --json` file for the comparison view's tests: two
// workloads under hvm, full and bt, one run failed (pio under bt), figures
// chosen so that the VM exits read on a linear axis and the monitor traps
// (0.004 to 2.8 per operation) need a log one.
#pragma once

namespace vmlab::viz::testing {

inline constexpr const char* kSmallComparison = R"({
  "platform": "platform: kvm_intel (hardware) on Test CPU, Linux 6.1",
  "rows": [
    {"workload": "syscalls", "n": 500, "cpu": "hvm", "irqchip": "vmm", "disk_model": "",
     "ok": true, "cycles": 200000000, "cycles_per_op": 400000, "vm_exits_per_op": 0.6,
     "kvm_exits_per_op": 3.7, "monitor_traps_per_op": 0, "hypercalls_per_op": 0,
     "share_percent": {"guest": 98.5, "guest_user_at_exit": 0, "guest_kernel_at_exit": 98.5,
                       "monitor": 0, "vmm": 1.5, "halted": 0},
     "relative_to_hvm": 1, "result": "VMLAB-RESULT workload=syscalls n=500 status=ok"},
    {"workload": "syscalls", "n": 500, "cpu": "full", "irqchip": "vmm", "disk_model": "",
     "ok": true, "cycles": 132000000, "cycles_per_op": 264000, "vm_exits_per_op": 2.8,
     "kvm_exits_per_op": 6.8, "monitor_traps_per_op": 2.8, "hypercalls_per_op": 0,
     "share_percent": {"guest": 94.0, "guest_user_at_exit": 41.0, "guest_kernel_at_exit": 53.0,
                       "monitor": 4.5, "vmm": 1.5, "halted": 0},
     "relative_to_hvm": 0.66, "result": "VMLAB-RESULT workload=syscalls n=500 status=ok"},
    {"workload": "syscalls", "n": 500, "cpu": "bt", "irqchip": "vmm", "disk_model": "",
     "ok": true, "cycles": 170000000, "cycles_per_op": 340000, "vm_exits_per_op": 2.95,
     "kvm_exits_per_op": 7.1, "monitor_traps_per_op": 2.78, "hypercalls_per_op": 0,
     "share_percent": {"guest": 80.0, "guest_user_at_exit": 27.0, "guest_kernel_at_exit": 53.0,
                       "monitor": 5.0, "vmm": 15.0, "halted": 0},
     "relative_to_hvm": 0.85, "result": "VMLAB-RESULT workload=syscalls n=500 status=ok"},
    {"workload": "pio", "n": 1000, "cpu": "hvm", "irqchip": "vmm", "disk_model": "",
     "ok": true, "cycles": 181000000, "cycles_per_op": 181000, "vm_exits_per_op": 1.3,
     "kvm_exits_per_op": 1.33, "monitor_traps_per_op": 0, "hypercalls_per_op": 0,
     "share_percent": {"guest": 91.5, "guest_user_at_exit": 0, "guest_kernel_at_exit": 91.5,
                       "monitor": 0, "vmm": 8.5, "halted": 0},
     "relative_to_hvm": 1, "result": "VMLAB-RESULT workload=pio n=1000 status=ok"},
    {"workload": "pio", "n": 1000, "cpu": "full", "irqchip": "vmm", "disk_model": "",
     "ok": true, "cycles": 183000000, "cycles_per_op": 183000, "vm_exits_per_op": 1.36,
     "kvm_exits_per_op": 2.77, "monitor_traps_per_op": 0.004, "hypercalls_per_op": 0,
     "share_percent": {"guest": 96.0, "guest_user_at_exit": 0, "guest_kernel_at_exit": 96.0,
                       "monitor": 3.0, "vmm": 1.0, "halted": 0},
     "relative_to_hvm": 1.01, "result": "VMLAB-RESULT workload=pio n=1000 status=ok"},
    {"workload": "pio", "n": 1000, "cpu": "bt", "irqchip": "vmm", "disk_model": "",
     "ok": false, "failure": "the guest timed out after 60 s"}
  ]
})";

}  // namespace vmlab::viz::testing
