package hypervisor

import (
	"context"
	"encoding/json"
)

// Optional abilities of a VM beyond start/stop. A caller type-asserts the
// VM to the interface it needs and treats a failed assertion as "this
// driver cannot do that". Every method talks to the running VMM, so each
// takes a ctx that bounds it.

// DeviceInfo identifies a hot-added device.
type DeviceInfo struct {
	// ID is the VMM's device id; DeviceRemover.RemoveDevice takes it.
	ID string
	// BDF is the device's PCI address in the guest (e.g. "0000:00:05.0"),
	// empty when the device was added cold (before boot).
	BDF string
}

// Disk is a block device to hot-add.
type Disk struct {
	// ID names the device; empty lets the VMM choose.
	ID string
	// Path is the host file or block device backing the disk.
	Path string
	// ReadOnly exposes the disk read-only to the guest.
	ReadOnly bool
}

// NetDevice is a virtio-net device to hot-add, backed by a tap device
// that exists in the VMM's network namespace.
type NetDevice struct {
	// ID names the device; empty lets the VMM choose.
	ID string
	// Tap is the host tap interface name.
	Tap string
	// MAC is the guest MAC address; empty lets the VMM choose.
	MAC string
	// MTU is the device MTU; 0 keeps the VMM's default.
	MTU int
}

// Resize is the target size of a running VM; a zero field is unchanged.
type Resize struct {
	// VCPUs is the desired number of online vCPUs.
	VCPUs uint32
	// MemoryMiB is the desired guest RAM.
	MemoryMiB uint32
}

// VMInfo is what the VMM reports about a VM.
type VMInfo struct {
	// State is the VMM's state name (for Cloud Hypervisor: Created,
	// Running, Shutdown or Paused).
	State string
	// MemoryActualBytes is the guest RAM currently plugged, when known.
	MemoryActualBytes int64
	// Raw is the VMM's full answer as JSON, for diagnostics.
	Raw json.RawMessage
}

// DiskAdder is implemented by a VM that can hot-add block devices.
type DiskAdder interface {
	// AddDisk attaches d to the running VM.
	AddDisk(ctx context.Context, d Disk) (DeviceInfo, error)
}

// NetAdder is implemented by a VM that can hot-add network devices.
type NetAdder interface {
	// AddNet attaches n to the running VM.
	AddNet(ctx context.Context, n NetDevice) (DeviceInfo, error)
}

// FSAdder is implemented by a VM that can hot-add virtio-fs devices.
type FSAdder interface {
	// AddFilesystem attaches a vhost-user-fs device served at fs.Socket.
	AddFilesystem(ctx context.Context, fs Filesystem) (DeviceInfo, error)
}

// DeviceRemover is implemented by a VM that can hot-remove devices.
type DeviceRemover interface {
	// RemoveDevice detaches the device with the given id (DeviceInfo.ID).
	RemoveDevice(ctx context.Context, id string) error
}

// Resizer is implemented by a VM whose vCPUs and memory can change while
// it runs.
type Resizer interface {
	// Resize asks the VMM for the target size. It returns once the VMM
	// accepted it; the guest may still be onlining the new resources.
	Resize(ctx context.Context, r Resize) error
}

// Pauser is implemented by a VM that can freeze its vCPUs and thaw them
// again; the VMM keeps running meanwhile. Pausing a VM that is not
// running, or resuming one that is not paused, fails with an error
// wrapping errdefs.ErrFailedPrecondition and changes nothing.
type Pauser interface {
	// Pause stops the guest's vCPUs.
	Pause(ctx context.Context) error
	// Resume restarts the vCPUs of a paused guest.
	Resume(ctx context.Context) error
}

// Snapshotter is implemented by a VM whose state can be saved.
type Snapshotter interface {
	// Snapshot writes the state of the (paused) VM into the existing
	// directory dir.
	Snapshot(ctx context.Context, dir string) error
}

// Restorer is implemented by a Hypervisor that can start a VM from a
// snapshot instead of booting it.
type Restorer interface {
	// Restore launches a VMM for cfg (its Dir, NetNSPath and sockets;
	// payload and sizes come from the snapshot) and restores the VM saved
	// in dir by Snapshotter.Snapshot, resumed. On error nothing it started
	// is left behind.
	Restore(ctx context.Context, cfg VMConfig, dir string) (VM, error)
}

// CountersReader is implemented by a VM that reports device counters.
type CountersReader interface {
	// Counters maps device id → counter name → value.
	Counters(ctx context.Context) (map[string]map[string]int64, error)
}

// InfoReader is implemented by a VM that reports its VMM's view of it.
type InfoReader interface {
	// Info returns the VM's state as the VMM sees it.
	Info(ctx context.Context) (VMInfo, error)
}
