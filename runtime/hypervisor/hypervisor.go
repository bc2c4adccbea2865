package hypervisor

import (
	"context"
	"io"
	"os"

	"github.com/veil-runtime/veil/runtime/jail"
)

// Filesystem is a vhost-user-fs (virtio-fs) device backed by a virtiofsd
// listening on Socket; the guest mounts it by Tag.
type Filesystem struct {
	Tag    string
	Socket string
}

// NIC is a virtio-net device backed by a tap device in the pod's network
// namespace (VMConfig.NetNSPath).
type NIC struct {
	// Tap is the tap device's name.
	Tap string
	// MAC is the guest NIC's hardware address.
	MAC string
	// File is the tap, opened by the caller in the pod's network
	// namespace, for a VMM that takes file descriptors (QEMU): it then
	// needs no network namespace and no privilege. The driver does not
	// close it.
	File *os.File
}

// Placer puts a process in the sandbox's cgroup (runtime/cgroup).
type Placer interface {
	Add(pid int) error
}

// ConsoleSink keeps the guest's serial console (runtime/console).
type ConsoleSink interface {
	// Drain copies r until EOF or ctx ends, never blocking the writer for
	// long.
	Drain(ctx context.Context, r io.Reader) error
}

// VMConfig is everything a driver needs to launch one VM.
type VMConfig struct {
	// ID names the VM (the sandbox id).
	ID string
	// Dir is the sandbox's state directory; the driver keeps its sockets,
	// logs and pid files there.
	Dir string
	// Kernel (an uncompressed PVH vmlinux), Initrd and Cmdline boot the guest.
	Kernel, Initrd, Cmdline string
	// VCPUs and MemoryMiB size the VM.
	VCPUs, MemoryMiB uint32
	// VsockSocket is the hybrid vsock Unix socket the VM must expose
	// (CONNECT <port> protocol; see runtime/vsock).
	VsockSocket string
	// Filesystems are the virtio-fs devices to attach.
	Filesystems []Filesystem
	// NetNSPath, when set, is the pod's network namespace (a VMM that
	// opens taps by name runs in it).
	NetNSPath string
	// NICs are the network devices to attach, in guest order.
	NICs []NIC
	// Console receives the guest's serial console.
	Console ConsoleSink
	// Jail, when set, confines the VMM and its helpers: it carries the
	// sandbox's uid, gid, rlimits and oom_score_adj; the driver adds
	// what each process needs (namespaces, binds, devices).
	Jail *jail.Spec
	// Cgroup, when set, receives the VMM and its helpers before they run.
	Cgroup Placer
}

// Hypervisor starts VMs.
type Hypervisor interface {
	// Start launches a VM and returns once the VMM runs (not once the guest
	// booted). On error nothing it started is left behind.
	Start(ctx context.Context, cfg VMConfig) (VM, error)
}

// VM is a running VM.
type VM interface {
	// Pid is the host pid of the VMM process.
	Pid() int
	// Done is closed when the VM can no longer serve: the VMM process, or a
	// helper process it cannot run without, has exited.
	Done() <-chan struct{}
	// Stop stops the VM, gracefully first and then by force, and waits
	// until the VMM and its helper processes are gone. It is idempotent.
	Stop(ctx context.Context) error
}

// HelperPids is implemented by a VM whose driver runs helper processes
// besides the VMM (e.g. vhost-device-vsock for QEMU).
type HelperPids interface {
	// HelperPids maps each helper's name to its host pid.
	HelperPids() map[string]int
}

// LogTailer is implemented by a VM whose VMM writes a log of its own.
type LogTailer interface {
	// LogTail returns the last lines of the VMM's log, for error messages.
	LogTail() string
}
