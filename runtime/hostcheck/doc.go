// Package hostcheck decides whether a host can run Veil sandboxes: it
// checks virtualization, vsock, tun, the helper binaries, the guest
// kernel and initramfs, cgroups, the containerd runtime class and the
// hypervisor that "auto" resolves to, and whether the confinement of the
// helpers can be applied: the sandbox cgroup's controllers, a jail uid
// range no host user owns, the jail itself (namespaces and the mount
// API), seccomp (the kernel's, and QEMU's -sandbox) and a /dev/kvm that
// a jailed VMM may open. Every check reads the host through a Host
// value, so tests run against a fake root directory; the two checks that
// must start processes (Host.TryJail, Host.ProbeQEMUSandbox) do so only
// on the local host and report SKIP elsewhere. The hypervisors it checks,
// their binaries and how to install them come from
// runtime/hypervisor/registry.
package hostcheck
