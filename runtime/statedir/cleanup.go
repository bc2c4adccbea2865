package statedir

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// Remove removes the sandbox directory: it unmounts the host-side mounts
// Veil made in it (staging leftovers, the read-only share, the share's
// tmpfs, the directory's bind on itself) and then removes what is below
// without following a link or crossing into another mount. Container
// mounts need no unmounting here: they live in the share server's mount
// namespace, which is gone once the server was stopped. What cannot be
// removed is never descended into: it is reported, logged as a warning
// naming each path, and does not fail the removal (a delete must
// complete). Only a failure to unmount or to open the state directory is
// an error. A missing directory is not an error.
func Remove(ctx context.Context, d Dir) error {
	parent, err := openRoot(dirOf(d.path))
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer parent.Close()
	var errs []error
	if err := unmountHost(d); err != nil {
		errs = append(errs, err)
	}
	left, err := removeTree(parent, d.id)
	if err != nil {
		errs = append(errs, err)
	}
	if len(left) > 0 {
		log.G(ctx).WithField("sandbox", d.id).Warnf("left in the sandbox directory (not removed): %q", left)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove sandbox directory %s: %w", d.path, err)
	}
	return nil
}

// unmountHost unmounts the host-side mounts of the sandbox directory,
// found by mount point in the host's mountinfo: only the ones at or below
// the directory, which only Veil makes (the guest cannot create host
// mounts), deepest first, detached and without following links.
func unmountHost(d Dir) error {
	for range 16 {
		mps, err := mountsUnder(d.path)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		var errs []error
		for i := len(mps) - 1; i >= 0; i-- {
			err := unix.Unmount(mps[i], unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
			if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mps[i], err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return fmt.Errorf("unmount below %s: mounts keep reappearing", d.path)
}

func dirOf(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}

// Exists reports whether the sandbox directory is there.
func Exists(d Dir) bool {
	_, err := os.Lstat(d.path)
	return err == nil
}
