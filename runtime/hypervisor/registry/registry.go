package registry

import (
	"fmt"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/hypervisor/ch"
	"github.com/veil-runtime/veil/runtime/hypervisor/qemu"
)

// Entry is one hypervisor Veil can run.
type Entry struct {
	// Name is its hypervisor.name; it also names the VMM's pid file in the
	// sandbox directory (<Name>.pid).
	Name string
	// Binary is the VMM binary looked up on PATH when the config names
	// none.
	Binary string
	// PathKey is the config key naming the binary (hypervisor.qemu_path).
	PathKey string
	// Path is the binary the config names; empty means Binary on PATH.
	Path func(config.Hypervisor) string
	// Install says how to get the binary, for `veil check`.
	Install string
	// Title names the VMM in messages ("Cloud Hypervisor").
	Title string
	// HardwareKVM: the VMM runs guests only on hardware KVM (it always
	// opens /dev/kvm; there is no emulation fallback).
	HardwareKVM bool
	// VhostVsock: the driver runs vhost-device-vsock
	// (hypervisor.vhost_vsock_path) for hybrid vsock; false when the VMM
	// has hybrid vsock built in.
	VhostVsock bool
	// OpensEndpoints: the VMM opens the pod's taps by name inside the
	// pod's network namespace (as the jail's uid when jailed) and
	// virtiofsd's sockets by path; false when it is given open file
	// descriptors.
	OpensEndpoints bool
	// New builds the driver cfg asks for.
	New func(cfg *config.Config) hypervisor.Hypervisor
	// Connect reaches the VMM of the running sandbox whose state directory
	// is dir (QMP for QEMU, the HTTP API for Cloud Hypervisor), for an
	// operator's tool; close releases it. It does not dial.
	Connect func(dir string) (r hypervisor.InfoReader, close func())
}

// BinaryPath is the binary to run under cfg: the configured path, else
// Binary (looked up on PATH).
func (e Entry) BinaryPath(cfg *config.Config) string {
	if p := e.Path(cfg.Hypervisor); p != "" {
		return p
	}
	return e.Binary
}

// entries are the hypervisors, in the order `veil check` reports them and
// inspect recognises a VMM pid file.
var entries = []Entry{
	{
		Name:       config.HypervisorQEMU,
		Binary:     qemu.DefaultBinary,
		PathKey:    "hypervisor.qemu_path",
		Path:       func(h config.Hypervisor) string { return h.QEMUPath },
		Install:    "apt-get install qemu-system-x86 (or set hypervisor.qemu_path)",
		Title:      "QEMU",
		VhostVsock: true,
		New: func(cfg *config.Config) hypervisor.Hypervisor {
			return &qemu.Driver{
				QEMUPath:       cfg.Hypervisor.QEMUPath,
				VhostVsockPath: cfg.Hypervisor.VhostVsockPath,
				StopTimeout:    cfg.Timeouts.Stop.Duration,
				MaxVCPUs:       cfg.Guest.MaxVCPUs,
			}
		},
		Connect: func(dir string) (hypervisor.InfoReader, func()) { return qemu.Connect(dir), func() {} },
	},
	{
		Name:           config.HypervisorCloudHypervisor,
		Binary:         ch.DefaultBinary,
		PathKey:        "hypervisor.cloud_hypervisor_path",
		Path:           func(h config.Hypervisor) string { return h.CloudHypervisorPath },
		Install:        "install cloud-hypervisor (needs hardware KVM) or set hypervisor.cloud_hypervisor_path; QEMU is used without it",
		Title:          "Cloud Hypervisor",
		HardwareKVM:    true,
		OpensEndpoints: true,
		New: func(cfg *config.Config) hypervisor.Hypervisor {
			return &ch.Driver{
				Path:             cfg.Hypervisor.CloudHypervisorPath,
				StopTimeout:      cfg.Timeouts.Stop.Duration,
				MaxVCPUs:         cfg.Guest.MaxVCPUs,
				HotplugMemoryMiB: cfg.Guest.HotplugMemoryMiB,
			}
		},
		Connect: func(dir string) (hypervisor.InfoReader, func()) {
			r := ch.Connect(dir)
			return r, r.Close
		},
	},
}

// All returns every entry, in a fixed order.
func All() []Entry { return append([]Entry(nil), entries...) }

// Names returns every entry's name, in the order of All.
func Names() []string {
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	return names
}

// Lookup returns the entry named name.
func Lookup(name string) (Entry, bool) {
	for _, e := range entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// Resolve returns the entry cfg selects on this host (hypervisor.name,
// or the "auto" choice) and the reason it was chosen.
func Resolve(cfg *config.Config) (Entry, string, error) {
	name, reason := cfg.Hypervisor.Resolve()
	e, ok := Lookup(name)
	if !ok {
		return Entry{}, "", fmt.Errorf("unknown hypervisor %q (%s)", name, reason)
	}
	return e, reason, nil
}

// New returns the driver cfg selects on this host, with its name and the
// reason it was chosen.
func New(cfg *config.Config) (hypervisor.Hypervisor, string, string, error) {
	e, reason, err := Resolve(cfg)
	if err != nil {
		return nil, "", "", err
	}
	return e.New(cfg), e.Name, reason, nil
}
