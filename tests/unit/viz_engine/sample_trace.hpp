// A small trace written by hand, whose spans, transitions and aggregates the
// tests know exactly: a user system call and the kernel's return under
// `full` (each trap carried by the stub's VM exit to port 0xe8), the
// kernel's console write through the monitor, a plain port exit from user
// mode, and a hlt with its wait and the interrupt that ends it.
#pragma once

#include <string>

namespace vmlab::viz::testing {

// In the file's order, which is the recorder's: a monitor trap (or hlt wait)
// comes before the VM exit that carried it. In time order (the engine's
// indexes) the events are:
//   0 vm-exit io-out 0xe8 from guest-user     [1000, 1800)
//   1 monitor-trap system-call user->kernel   [1200, 1500)  "syscall"
//   2 vm-exit io-out 0xe8 from guest-kernel   [3000, 3500)
//   3 monitor-trap privileged-instruction     [3100, 3300)  "out dx, al"
//   4 vm-exit io-out 0xe8 from guest-kernel   [4000, 4600)
//   5 monitor-trap privileged-instruction     [4100, 4400)  "iretq" kernel->user
//   6 vm-exit io-out 0x3f8 from guest-user    [6000, 6400)  (no monitor work)
//   7 vm-exit hlt from guest-kernel           [7000, 9000)
//   8 guest-halt                              [7100, 8600)
//   9 interrupt-injection vector 0x20         8700
inline const std::string kSampleTrace =
    "# vmlab-trace 2\n"
    "# platform: test backend on test CPU\n"
    "# run: cpu=full workload=syscalls n=1\n"
    "# events: 10 recorded, 0 dropped (ring full)\n"
    "# levels: vmm=1000 monitor=800 guest-kernel=2300 guest-user=2400 unknown=0 halted=1500\n"
    "# time_ns\tduration_ns\tvcpu\tkind\treason\tfrom\tto\tguest_rip\taddress\tsize\tvalue\t"
    "detail\n"
    "1200\t300\t0\tmonitor-trap\tsystem-call\tguest-user\tguest-kernel\t0x4002a8\t0\t1\t0x4002a8\t"
    "syscall\n"
    "1000\t800\t0\tvm-exit\tio-out\tguest-user\tvmm\t0xffffff8000003072\t0xe8\t1\t0x3\t\n"
    "3100\t200\t0\tmonitor-trap\tprivileged-instruction\tguest-kernel\tguest-kernel\t0x101000\t"
    "0xd\t1\t0x101000\tout dx, al\n"
    "3000\t500\t0\tvm-exit\tio-out\tguest-kernel\tvmm\t0xffffff800000306a\t0xe8\t1\t0\t\n"
    "4100\t300\t0\tmonitor-trap\tprivileged-instruction\tguest-kernel\tguest-user\t0x100406\t"
    "0xb\t1\t0x100406\tiretq\n"
    "4000\t600\t0\tvm-exit\tio-out\tguest-kernel\tvmm\t0xffffff800000306a\t0xe8\t1\t0\t\n"
    "6000\t400\t0\tvm-exit\tio-out\tguest-user\tvmm\t0x401000\t0x3f8\t1\t0x41\t\n"
    "7100\t1500\t0\tguest-halt\thlt\tguest-kernel\tvmm\t0\t0\t0\t0\t\n"
    "7000\t2000\t0\tvm-exit\thlt\tguest-kernel\tvmm\t0x101020\t0\t0\t0\t\n"
    "8700\t0\t0\tinterrupt-injection\texternal-interrupt\tvmm\tguest-kernel\t0\t0x20\t0\t0\t\n";

}  // namespace vmlab::viz::testing
