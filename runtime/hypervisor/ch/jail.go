package ch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// Paths in a jailed Cloud Hypervisor's root.
const (
	jailVMDir       = "/vm"
	jailKernel      = jailVMDir + "/kernel"
	jailInitrd      = jailVMDir + "/initrd"
	jailSnapshotDir = jailVMDir + "/snapshot"
	jailHelperDir   = "/helper"
)

// chDevices are the device nodes a jailed Cloud Hypervisor gets (those
// the host has): KVM, and the tun device it opens its taps through.
var chDevices = []string{"/dev/kvm", "/dev/net/tun"}

// jailFSSocket is where a jailed Cloud Hypervisor finds virtiofsd i's
// socket.
func jailFSSocket(i int) string { return fmt.Sprintf("%s/fs%d.sock", jailVMDir, i) }

// shown is one host file or directory shown in a jailed Cloud
// Hypervisor's root.
type shown struct {
	host, jail string
	// dir: paths below host are shown below jail too.
	dir      bool
	writable bool
}

// jailLayout is what of the host a jailed Cloud Hypervisor sees, and
// where: the guest images and virtiofsd's sockets (read-only; the
// sockets the caller made connectable for the jail's uid), the restore
// source, and the sandbox's helper directory (writable: CH makes its API,
// vsock and console sockets there, and anything handed to it after start
// must lie there).
type jailLayout struct {
	shown []shown
}

// newJailLayout lays out cfg's paths (and snapshot, the directory a VM is
// restored from, when set) in the jail. cfg's vsock socket must lie in
// the helper directory, whose sockets the VMM makes.
func newJailLayout(cfg hypervisor.VMConfig, snapshot string) (*jailLayout, error) {
	helper := filepath.Join(cfg.Dir, statedir.HelperDir)
	l := &jailLayout{}
	add := func(host, in string, dir, writable bool) {
		l.shown = append(l.shown, shown{host: host, jail: in, dir: dir, writable: writable})
	}
	add(cfg.Kernel, jailKernel, false, false)
	if cfg.Initrd != "" {
		add(cfg.Initrd, jailInitrd, false, false)
	}
	add(helper, jailHelperDir, true, true)
	for i, fs := range cfg.Filesystems {
		add(fs.Socket, jailFSSocket(i), false, false)
	}
	if snapshot != "" {
		add(snapshot, jailSnapshotDir, true, false)
	}
	for _, s := range l.shown {
		if !filepath.IsAbs(s.host) || filepath.Clean(s.host) != s.host {
			return nil, fmt.Errorf("cloud-hypervisor jail: %q is not a clean absolute path", s.host)
		}
	}
	if _, ok := below(helper, cfg.VsockSocket); !ok {
		return nil, fmt.Errorf("cloud-hypervisor jail: vsock socket %s is outside the helper directory %s", cfg.VsockSocket, helper)
	}
	return l, nil
}

// below reports p's path relative to dir when p lies below dir.
func below(dir, p string) (string, bool) {
	p = filepath.Clean(p)
	if !strings.HasPrefix(p, dir+"/") {
		return "", false
	}
	return strings.TrimPrefix(p, dir+"/"), true
}

// path is host as the jailed VMM sees it: a path shown in its root, or
// below a directory shown there. Any other path does not exist for it.
func (l *jailLayout) path(host string) (string, error) {
	for _, s := range l.shown {
		if host == s.host {
			return s.jail, nil
		}
		if rel, ok := below(s.host, host); ok && s.dir {
			return filepath.Join(s.jail, rel), nil
		}
	}
	return "", fmt.Errorf("%s is outside the jailed cloud-hypervisor's root: hand it paths in the sandbox's helper directory", host)
}

// mustPath is path for the paths the layout was made from.
func (l *jailLayout) mustPath(host string) string {
	p, err := l.path(host)
	if err != nil {
		panic(err)
	}
	return p
}

// chJail is Cloud Hypervisor's jail: the sandbox's identity and limits,
// its own mount, PID, IPC and UTS namespaces but the pod's network
// namespace (it opens its taps by name), /dev/kvm and /dev/net/tun (those
// the host has) with the kvm group, and a root holding only what the
// layout shows.
func chJail(cfg hypervisor.VMConfig, l *jailLayout) *jail.Spec {
	js := *cfg.Jail
	js.Namespaces = true
	js.NetNS = cfg.NetNSPath
	js.Devices = append([]string(nil), cfg.Jail.Devices...)
	for _, d := range chDevices {
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
	js.Binds = append([]jail.Bind(nil), cfg.Jail.Binds...)
	for _, s := range l.shown {
		js.Binds = append(js.Binds, jail.Bind{Source: s.host, Target: s.jail, Writable: s.writable})
	}
	return &js
}

// landlockRules are the paths a jailed Cloud Hypervisor may reach besides
// those of its VM config, which it allows itself when it applies Landlock
// at vm.create (payload "r", fs and vsock sockets "rw", the vsock
// socket's directory "w", the serial socket "rw", the rng source "r",
// /dev/net/tun "rw" with a NIC): read the guest images, virtiofsd's
// sockets and a restore source, read and write the helper directory (what
// is hot-plugged or snapshotted after vm.create lies there).
func landlockRules() [][2]string {
	return [][2]string{{jailVMDir, "r"}, {jailHelperDir, "rw"}}
}
