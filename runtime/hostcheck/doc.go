// Package hostcheck decides whether a host can run Veil sandboxes: it
// checks virtualization, vsock, tun, the helper binaries, the guest
// kernel and initramfs, cgroups, the containerd runtime class and the
// hypervisor that "auto" resolves to. Every check reads the host through
// a Host value, so tests run against a fake root directory.
package hostcheck
