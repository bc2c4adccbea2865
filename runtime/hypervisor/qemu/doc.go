// Package qemu is the QEMU driver of runtime/hypervisor: a microvm machine
// booting a PVH vmlinux, memory in a shared memfd (for vhost-user), virtio-fs
// through vhost-user-fs devices, and hybrid vsock through a
// vhost-device-vsock daemon that the driver starts and stops with the VM.
// It uses KVM when the CPU has VT-x/SVM and /dev/kvm opens, else TCG, and a
// QMP socket to stop the VM. It can also pause and resume the VM
// (hypervisor.Pauser: QMP stop and cont, refused with
// errdefs.ErrFailedPrecondition unless query-status says running, resp.
// paused), but Veil does not: a stopped VM's vhost-device-vsock wedges on
// any host connection, so a task's pause freezes its container in the
// guest instead. Remote reads a running VM's
// state over the same socket for operator tools.
package qemu
