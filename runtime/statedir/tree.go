package statedir

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"
)

// Volume is a host file or directory to show the guest at
// <cid>/mounts/<n>, already opened (O_PATH) and checked against the
// volume policy by the caller, so no path is resolved again.
type Volume struct {
	// Source is the opened source; the share does not close it.
	Source *os.File
	// Recursive clones the source's submounts too (rbind).
	Recursive bool
	// ReadOnly makes the top mount read-only; RecursiveReadOnly every
	// mount of the tree (rro). Read-only holds in virtiofsd's mount
	// namespace from the start, whatever the guest asks virtiofsd.
	ReadOnly, RecursiveReadOnly bool
	// HostToGuest makes the tree a slave of the source, so that mounts
	// the host makes below the source later reach the guest (rslave,
	// rshared); otherwise it is private.
	HostToGuest bool
}

// detachedTree is a mount tree that is attached nowhere yet (open_tree
// with OPEN_TREE_CLONE); closing it unmounts whatever was not moved.
type detachedTree struct {
	f *os.File
}

func (t *detachedTree) Close() error {
	if t == nil || t.f == nil {
		return nil
	}
	return t.f.Close()
}

// cloneTree clones the mount at f (an O_PATH file) as a detached tree,
// with its submounts when recursive.
func cloneTree(f *os.File, recursive bool) (*detachedTree, error) {
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(int(f.Fd()), "", uint(flags))
	if err != nil {
		return nil, fmt.Errorf("clone mount tree of %s: %w", f.Name(), err)
	}
	return &detachedTree{f: os.NewFile(uintptr(fd), "detached:"+f.Name())}, nil
}

// setAttr applies mount attributes and propagation to the top mount of
// the tree, or to every mount in it.
func (t *detachedTree) setAttr(set uint64, propagation uint64, recursive bool) error {
	flags := unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Attr_set: set, Propagation: propagation}
	if err := unix.MountSetattr(int(t.f.Fd()), "", uint(flags), &attr); err != nil {
		return fmt.Errorf("set attributes of %s: %w", t.f.Name(), err)
	}
	return nil
}

// confine makes every mount of a tree nosuid and nodev, with the given
// propagation: a setuid file or device node the guest made in a
// container's filesystem takes no effect through the share's mounts
// (the file itself still exists in the snapshot or volume).
func (t *detachedTree) confine(propagation uint64) error {
	return t.setAttr(unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, propagation, true)
}

// volumeTree clones a volume's source as the tree the guest will see.
func volumeTree(v Volume) (*detachedTree, error) {
	t, err := cloneTree(v.Source, v.Recursive)
	if err != nil {
		return nil, err
	}
	prop := uint64(unix.MS_PRIVATE)
	if v.HostToGuest {
		prop = unix.MS_SLAVE
	}
	err = t.confine(prop)
	switch {
	case err != nil:
	case v.RecursiveReadOnly:
		err = t.setAttr(unix.MOUNT_ATTR_RDONLY, 0, true)
	case v.ReadOnly:
		err = t.setAttr(unix.MOUNT_ATTR_RDONLY, 0, false)
	}
	if err != nil {
		_ = t.Close()
		return nil, err
	}
	return t, nil
}

// rootfsTree mounts containerd's rootfs mounts (or, with none, binds
// bundleRootfs) on a private staging directory, clones the result as a
// detached tree and unmounts the staging directory again.
func (s *Share) rootfsTree(ctx context.Context, cid string, mounts []mount.Mount, bundleRootfs string) (_ *detachedTree, retErr error) {
	if len(mounts) == 0 {
		mounts = []mount.Mount{{Type: "bind", Source: bundleRootfs, Options: []string{"rbind", "rw"}}}
	}
	stage, err := mkdirBeneath(s.staging, cid, 0o700)
	if err != nil {
		return nil, fmt.Errorf("staging directory for the rootfs of %s: %w", cid, err)
	}
	stagePath := stage.Name()
	_ = stage.Close()
	defer func() {
		if err := unmountAt(s.staging, cid); err != nil {
			retErr = errors.Join(retErr, err)
		}
		if err := unix.Unlinkat(int(s.staging.Fd()), cid, unix.AT_REMOVEDIR); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("remove staging directory %s: %w", stagePath, err))
		}
	}()
	if err := mount.All(mounts, stagePath); err != nil {
		return nil, fmt.Errorf("mount rootfs of %s: %w", cid, err)
	}
	// The mount point itself, not beneath-resolved: RESOLVE_NO_XDEV
	// would refuse to land on the new mount, which is what is wanted. The
	// staging directory and its entry are the host's own.
	fd, err := unix.Openat(int(s.staging.Fd()), cid, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open staged rootfs of %s: %w", cid, err)
	}
	f := os.NewFile(uintptr(fd), stagePath)
	defer func() { _ = f.Close() }()
	t, err := cloneTree(f, true)
	if err != nil {
		return nil, err
	}
	if err := t.confine(unix.MS_PRIVATE); err != nil {
		_ = t.Close()
		return nil, err
	}
	return t, nil
}

// unmountAt unmounts everything stacked on name in dir (a directory the
// host made), detaching the whole subtree; name must not be a symlink
// (UMOUNT_NOFOLLOW). Nothing mounted there is not an error.
func unmountAt(dir *os.File, name string) error {
	path := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), name)
	for range 16 {
		err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s/%s: %w", dir.Name(), name, err)
		}
	}
	return fmt.Errorf("unmount %s/%s: still mounted after 16 unmounts", dir.Name(), name)
}
