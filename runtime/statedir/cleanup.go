package statedir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
//
// For a pool directory it also removes the VM's lock file and, when
// nothing else is left there, <state_dir>/.pool itself. For a claimed
// pool directory (Open, Claimed) it then removes the link
// <state_dir>/<id> as well, once the pool directory is gone and if the
// link still names it; while something is left in the pool directory the
// link stays, so that the sandbox is still found by id. A missing link is
// not an error.
func Remove(ctx context.Context, d Dir) error {
	gone, err := removeDir(ctx, d)
	if err != nil {
		return err
	}
	if d.pool != "" && gone {
		removePoolLeftovers(d)
	}
	if d.link == "" {
		return nil
	}
	if !gone {
		log.G(ctx).WithField("sandbox", d.id).Warnf("kept the link %s: its pool directory %s is not empty", d.link, d.path)
		return nil
	}
	if err := removeLink(ctx, d); err != nil {
		return fmt.Errorf("remove sandbox link %s: %w", d.link, err)
	}
	return nil
}

// removeDir is Remove for the directory itself; it reports whether the
// directory is gone.
func removeDir(ctx context.Context, d Dir) (gone bool, _ error) {
	parent, err := openRoot(filepath.Dir(d.path))
	if errors.Is(err, unix.ENOENT) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer func() { _ = parent.Close() }()
	var errs []error
	if err := unmountHost(d); err != nil {
		errs = append(errs, err)
	}
	// The entry's own name: a claimed pool directory's is its pool VM id,
	// not the sandbox id.
	left, err := removeTree(parent, filepath.Base(d.path))
	if err != nil {
		errs = append(errs, err)
	}
	if len(left) > 0 {
		log.G(ctx).WithField("sandbox", d.id).Warnf("left in the sandbox directory (not removed): %q", left)
	}
	if err := errors.Join(errs...); err != nil {
		return false, fmt.Errorf("remove sandbox directory %s: %w", d.path, err)
	}
	return len(left) == 0, nil
}

// unmountHost detaches the host-side mounts of the sandbox directory.
// It names only mount points whose every element Veil made and the guest
// never wrote: the directory itself, share/, shared/, staging/ and
// staging/<cid>; detaching one (MNT_DETACH) takes everything below it, so
// no path below those, inside a container's filesystem, is ever resolved
// (a directory of an older layout, with container mounts below shared/,
// goes the same way). Deepest first, without following the last element.
func unmountHost(d Dir) error {
	for range 16 {
		mps, err := mountsUnder(d.path)
		if err != nil {
			return err
		}
		var own []string
		for _, mp := range mps {
			if hostMadeMountPoint(d, mp) {
				own = append(own, mp)
			}
		}
		if len(own) == 0 {
			if len(mps) > 0 {
				return fmt.Errorf("mounts left below %s that Veil did not make: %q", d.path, mps)
			}
			return nil
		}
		var errs []error
		for i := len(own) - 1; i >= 0; i-- {
			err := unix.Unmount(own[i], unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
			if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", own[i], err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return fmt.Errorf("unmount below %s: mounts keep reappearing", d.path)
}

// hostMadeMountPoint reports whether mp is the sandbox directory, one of
// its fixed children, or a rootfs staging point.
func hostMadeMountPoint(d Dir, mp string) bool {
	rel, ok := strings.CutPrefix(mp, d.path)
	if !ok {
		return false
	}
	switch els := strings.Split(strings.TrimPrefix(rel, "/"), "/"); {
	case rel == "":
		return true
	case len(els) == 1:
		return els[0] == shareName || els[0] == sharedName || els[0] == stagingName
	case len(els) == 2:
		return els[0] == stagingName
	}
	return false
}

// Exists reports whether the sandbox directory is there (for a claimed
// pool directory, the pool directory, not the link).
func Exists(d Dir) bool {
	_, err := os.Lstat(d.path)
	return err == nil
}
