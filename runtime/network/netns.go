package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// socketTimeout bounds every netlink request, so that no step can hang.
const socketTimeout = 5 * time.Second

// errNoNetNS reports a namespace path that no longer names a namespace.
var errNoNetNS = errors.New("network namespace does not exist")

// nsHandle is an open network namespace with a netlink handle inside it.
type nsHandle struct {
	path string
	ns   netns.NsHandle
	nl   *netlink.Handle
}

// openNetNS opens the namespace at path and a netlink handle in it. A
// path that is missing, or no longer a namespace (the bind mount is gone),
// gives an error wrapping errNoNetNS.
func openNetNS(path string) (*nsHandle, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("netns %s: %w", path, errNoNetNS)
		}
		return nil, fmt.Errorf("netns %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return nil, fmt.Errorf("netns %s: not a namespace (filesystem type %#x): %w", path, st.Type, errNoNetNS)
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("netns %s: open: %w", path, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		_ = ns.Close()
		return nil, fmt.Errorf("netns %s: netlink handle: %w", path, err)
	}
	if err := h.SetSocketTimeout(socketTimeout); err != nil {
		h.Close()
		_ = ns.Close()
		return nil, fmt.Errorf("netns %s: netlink timeout: %w", path, err)
	}
	return &nsHandle{path: path, ns: ns, nl: h}, nil
}

func (n *nsHandle) Close() {
	n.nl.Close()
	_ = n.ns.Close()
}

// do runs fn on an OS thread switched into the namespace and switches the
// thread back afterwards. Only what acts on the calling thread's
// namespace (the tun ioctl) needs it. A thread that cannot be switched
// back is never reused: its goroutine ends locked, so Go ends the thread.
func (n *nsHandle) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer func() { _ = orig.Close() }()
		if err := netns.Set(n.ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", n.path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("return from netns %s: %w", n.path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
