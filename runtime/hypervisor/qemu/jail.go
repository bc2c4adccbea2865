package qemu

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// jailHelperDir is where a jailed vhost-device-vsock sees the sandbox's
// helper directory (statedir.HelperDir).
const jailHelperDir = "/helper"

// startVsockd starts vhost-device-vsock, jailed when cfg says so: its
// own root holds only the vsock directory (writable: it makes its
// sockets there) and the binary.
func startVsockd(ctx context.Context, cfg hypervisor.VMConfig, path string) (*proc.Process, error) {
	hostDir := filepath.Dir(cfg.VsockSocket)
	sockDir := hostDir
	var js *jail.Spec
	if cfg.Jail != nil {
		js = withNamespaces(cfg.Jail)
		js.Binds = append(js.Binds, jail.Bind{Source: hostDir, Target: jailHelperDir, Writable: true})
		sockDir = jailHelperDir
	}
	return proc.Start(ctx, proc.Spec{
		Name: vhostVsockName,
		Dir:  cfg.Dir,
		Path: path,
		Args: []string{
			"--guest-cid", fmt.Sprint(guestCID),
			"--socket", filepath.Join(sockDir, filepath.Base(vhostVsockSocket)),
			"--uds-path", filepath.Join(sockDir, filepath.Base(cfg.VsockSocket)),
		},
		Jail:   js,
		Cgroup: cfg.Cgroup,
	})
}

// qemuJail is QEMU's jail: the sandbox's identity and limits, its own
// namespaces (an empty network namespace: its taps are passed), a root
// with the guest images at jailKernel and jailInitrd, and /dev/kvm
// with its group when KVM accelerates.
func qemuJail(cfg hypervisor.VMConfig, accel Accel) *jail.Spec {
	js := withNamespaces(cfg.Jail)
	js.Binds = append(js.Binds,
		jail.Bind{Source: cfg.Kernel, Target: jailKernel},
		jail.Bind{Source: cfg.Initrd, Target: jailInitrd})
	if accel == AccelKVM {
		js.Devices = append(js.Devices, "/dev/kvm")
		if gid, ok := jail.KVMGroup(); ok {
			js.Groups = append(js.Groups, gid)
		}
	}
	return js
}

// withNamespaces copies the sandbox's jail for one process, with its own
// namespaces and root.
func withNamespaces(base *jail.Spec) *jail.Spec {
	js := *base
	js.Binds = append([]jail.Bind(nil), base.Binds...)
	js.Devices = append([]string(nil), base.Devices...)
	js.Groups = append([]uint32(nil), base.Groups...)
	js.Namespaces = true
	return &js
}

// endpoints are the files passed to QEMU, and the host's end of its
// console.
type endpoints struct {
	passed  []*os.File // QEMU's fds 3, 4, ...
	console net.Conn   // the host's end of the serial console
	owned   []*os.File // closed once QEMU started (or failed to)
}

func (e *endpoints) close() {
	for _, f := range e.owned {
		_ = f.Close()
	}
}

// openEndpoints opens what QEMU needs, in the order of fds: the QMP
// listening socket (in the host-owned sandbox directory), a socketpair
// for the console, the connection to vhost-device-vsock (made by the
// caller; taken over), one to each virtiofsd, and the caller's taps.
func openEndpoints(ctx context.Context, cfg hypervisor.VMConfig, qmpPath string, vsock *net.UnixConn) (_ *endpoints, _ fds, retErr error) {
	e := &endpoints{}
	defer func() {
		if retErr != nil {
			_ = vsock.Close() // a no-op once taken over
			e.close()
			if e.console != nil {
				_ = e.console.Close()
			}
		}
	}()
	next := func(f *os.File, owned bool) int {
		e.passed = append(e.passed, f)
		if owned {
			e.owned = append(e.owned, f)
		}
		return 3 + len(e.passed) - 1
	}
	var fd fds

	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: qmpPath, Net: "unix"})
	if err != nil {
		return nil, fd, fmt.Errorf("qmp socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	f, err := ln.File()
	_ = ln.Close()
	if err != nil {
		return nil, fd, fmt.Errorf("qmp socket: %w", err)
	}
	fd.QMP = next(f, true)

	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fd, fmt.Errorf("console socketpair: %w", err)
	}
	host := os.NewFile(uintptr(pair[0]), "console")
	e.console, err = net.FileConn(host)
	_ = host.Close()
	if err != nil {
		_ = unix.Close(pair[1])
		return nil, fd, fmt.Errorf("console: %w", err)
	}
	fd.Console = next(os.NewFile(uintptr(pair[1]), "console-qemu"), true)

	f, err = connFile(vsock)
	if err != nil {
		return nil, fd, err
	}
	fd.Vsock = next(f, true)

	for _, fs := range cfg.Filesystems {
		conn, err := statedir.DialUnix(ctx, fs.Socket)
		if err != nil {
			return nil, fd, fmt.Errorf("virtio-fs %s: %w", fs.Tag, err)
		}
		f, err := connFile(conn)
		if err != nil {
			return nil, fd, err
		}
		fd.Filesystems = append(fd.Filesystems, next(f, true))
	}
	for _, nic := range cfg.NICs {
		if nic.File == nil {
			return nil, fd, fmt.Errorf("tap %s: not opened by the caller", nic.Tap)
		}
		fd.NICs = append(fd.NICs, next(nic.File, false))
	}
	return e, fd, nil
}

// connFile turns a connection into a file for a child, closing the
// connection.
func connFile(c *net.UnixConn) (*os.File, error) {
	f, err := c.File()
	_ = c.Close()
	if err != nil {
		return nil, fmt.Errorf("socket file: %w", err)
	}
	return f, nil
}
