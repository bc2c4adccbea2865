package ch

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/jail"
)

// Paths in a jailed Cloud Hypervisor's root.
const (
	jailVMDir     = "/vm"
	jailKernel    = jailVMDir + "/kernel"
	jailInitrd    = jailVMDir + "/initrd"
	jailHelperDir = "/helper"
)

// jailFSSocket is where a jailed Cloud Hypervisor finds virtiofsd i's
// socket.
func jailFSSocket(i int) string { return fmt.Sprintf("%s/fs%d.sock", jailVMDir, i) }

// chJail is Cloud Hypervisor's jail: the sandbox's identity and limits,
// its own mount, PID, IPC and UTS namespaces but the pod's network
// namespace (it opens its taps by name), /dev/kvm and /dev/net/tun (those
// the host has) with
// the kvm group, and a root holding the guest images, virtiofsd's
// sockets and the sandbox's helper directory (writable: its API, vsock
// and console sockets).
func chJail(cfg hypervisor.VMConfig) *jail.Spec {
	js := *cfg.Jail
	js.Namespaces = true
	js.NetNS = cfg.NetNSPath
	js.Devices = append([]string(nil), cfg.Jail.Devices...)
	for _, d := range []string{"/dev/kvm", "/dev/net/tun"} {
		// A host without the device fails in Cloud Hypervisor, with its
		// own message, as it would unjailed.
		if _, err := os.Stat(d); err == nil {
			js.Devices = append(js.Devices, d)
		}
	}
	js.Groups = append([]uint32(nil), cfg.Jail.Groups...)
	if gid, ok := jail.KVMGroup(); ok {
		js.Groups = append(js.Groups, gid)
	}
	js.Binds = append(append([]jail.Bind(nil), cfg.Jail.Binds...),
		jail.Bind{Source: cfg.Kernel, Target: jailKernel},
		jail.Bind{Source: cfg.Initrd, Target: jailInitrd},
		jail.Bind{Source: filepath.Dir(cfg.VsockSocket), Target: jailHelperDir, Writable: true},
	)
	for i, fs := range cfg.Filesystems {
		js.Binds = append(js.Binds, jail.Bind{Source: fs.Socket, Target: jailFSSocket(i)})
	}
	return &js
}

// inJail is cfg as a jailed Cloud Hypervisor sees it: every path it is
// given is the one in its root.
func inJail(cfg hypervisor.VMConfig) hypervisor.VMConfig {
	v := cfg
	v.Kernel, v.Initrd = jailKernel, jailInitrd
	v.VsockSocket = filepath.Join(jailHelperDir, filepath.Base(cfg.VsockSocket))
	v.Filesystems = nil
	for i, fs := range cfg.Filesystems {
		v.Filesystems = append(v.Filesystems, hypervisor.Filesystem{Tag: fs.Tag, Socket: jailFSSocket(i)})
	}
	return v
}

// landlockRules are the paths a jailed Cloud Hypervisor may reach besides
// those of its VM config (which it adds itself): read the guest images,
// read and write its helper directory.
func landlockRules() [][2]string {
	return [][2]string{{jailVMDir, "r"}, {jailHelperDir, "rw"}}
}
