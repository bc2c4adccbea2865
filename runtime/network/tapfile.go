package network

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/cleanup"
)

// OpenTaps opens each NIC's tap in the pod's network namespace, in NICs'
// order, for a VMM that takes file descriptors: it then needs neither
// the namespace nor CAP_NET_ADMIN. The flags match those the taps were
// made with (one queue, virtio-net header, no packet information). The
// caller closes the files once the VMM holds them.
func (e *Endpoints) OpenTaps(ctx context.Context) (_ []*os.File, retErr error) {
	if len(e.NICs) == 0 {
		return nil, nil
	}
	n, err := openNetNS(e.NetNSPath)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	var files []*os.File
	var undo cleanup.Stack
	defer undo.OnError(ctx, &retErr)
	for _, nic := range e.NICs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var f *os.File
		err := n.do(func() error {
			var err error
			f, err = openTap(nic.Tap)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("open tap %s in %s: %w", nic.Tap, e.NetNSPath, err)
		}
		files = append(files, f)
		undo.Push("open tap "+nic.Tap, func(context.Context) error { return f.Close() })
	}
	return files, nil
}

// openTap attaches to the existing tap name in the calling thread's
// network namespace.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_ONE_QUEUE)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	return os.NewFile(uintptr(fd), "tap:"+name), nil
}
