/* The CPUID leaves a vmlab VMM publishes, in every CPU mode, in the range
 * Intel and AMD leave to hypervisors (0x40000000 up), the way KVM, Xen and
 * VMware publish theirs. Shared by the VMM and the guest kernel.
 *
 *   0x40000000  EAX = the highest hypervisor leaf (VMLAB_CPUID_TIMING_LEAF);
 *               EBX, ECX, EDX = the 12-byte signature VMLAB_CPUID_SIGNATURE
 *   0x40000001  EAX = the boot protocol version (VMLAB_BOOT_VERSION)
 *   0x40000010  EAX = the TSC rate in kHz, 0 if unknown (the timing leaf
 *               KVM and VMware define)
 *
 * Nothing depends on these leaves. A kernel at CPL0 (hvm, QEMU) sees them, but
 * a kernel deprivileged to CPL3 (full, para) sees them only on a host that
 * intercepts CPUID at CPL3 (VT-x and AMD-V always do; kvm_pvm only where the
 * host CPU has CPUID faulting): elsewhere `cpuid` at CPL3 returns the host's
 * own leaves (PLATFORM.md "Hosts differ"). That is one more x86 hole, and
 * `vmlab probe` shows it; what a kernel needs from the VMM comes from
 * boot_info (boot_info.h), never from CPUID. */
#ifndef VMLAB_ABI_CPUID_H
#define VMLAB_ABI_CPUID_H

#define VMLAB_CPUID_HYPERVISOR_LEAF 0x40000000u
#define VMLAB_CPUID_VERSION_LEAF 0x40000001u
#define VMLAB_CPUID_TIMING_LEAF 0x40000010u
#define VMLAB_CPUID_SIGNATURE "vmlab-vmm-01" /* 12 bytes: EBX, ECX, EDX */

#endif /* VMLAB_ABI_CPUID_H */
