package shim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
)

// hostRootfsPath is where a container's root filesystem is mounted on the
// host: inside the sandbox's shared directory, so the guest sees it.
func hostRootfsPath(sharedDir, containerID string) string {
	return filepath.Join(sharedDir, containerID, "rootfs")
}

// guestRootfsPath is the same directory as the guest sees it.
func guestRootfsPath(containerID string) string {
	return filepath.Join(api.SharedDir, containerID, "rootfs")
}

// rootfsMounter mounts and unmounts container root filesystems.
type rootfsMounter interface {
	// Mount mounts containerd's rootfs mounts on target (creating it); with
	// no mounts it bind-mounts the bundle's own rootfs directory.
	Mount(mounts []*types.Mount, bundleRootfs, target string) error
	// Bind bind-mounts a volume's source (checked against policy) at its
	// target, creating the target as a file or directory to match.
	Bind(v hostVolume, policy volumePolicy) error
	// Submounts lists the mount points strictly below dir, relative to
	// it.
	Submounts(dir string) ([]string, error)
	// Unmount unmounts everything in the container directory that holds
	// target (the rootfs and the volumes) and removes what it created
	// there. It is idempotent.
	Unmount(target string) error
}

// hostMounter mounts on the host with containerd's mount package.
type hostMounter struct{}

func (h hostMounter) Mount(mounts []*types.Mount, bundleRootfs, target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("create rootfs mount point: %w", err)
	}
	ms := mount.FromProto(mounts)
	if len(ms) == 0 {
		ms = []mount.Mount{{Type: "bind", Source: bundleRootfs, Options: []string{"rbind", "rw"}}}
	}
	if err := mount.All(ms, target); err != nil {
		_ = h.Unmount(target)
		return fmt.Errorf("mount rootfs on %s: %w", target, err)
	}
	return nil
}

func (hostMounter) Bind(v hostVolume, policy volumePolicy) (retErr error) {
	f, fi, err := openVolumeSource(v.Source, policy)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.MkdirAll(filepath.Dir(v.Target), 0o755); err != nil {
		return fmt.Errorf("create volume mount point: %w", err)
	}
	if fi.IsDir() {
		err = os.Mkdir(v.Target, 0o755)
	} else {
		var t *os.File
		if t, err = os.OpenFile(v.Target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			err = t.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("create volume mount point %s: %w", v.Target, err)
	}
	defer func() {
		if retErr != nil {
			_ = unix.Unmount(v.Target, unix.MNT_DETACH)
			_ = os.Remove(v.Target)
		}
	}()
	flags := uintptr(unix.MS_BIND)
	if v.Recursive {
		flags |= unix.MS_REC
	}
	src := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if err := unix.Mount(src, v.Target, "", flags, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", v.Source, v.Target, err)
	}
	// The share is a shared mount, so a new bind would join the source's
	// peer group; the spec's propagation decides instead.
	prop := uintptr(unix.MS_PRIVATE | unix.MS_REC)
	if v.HostToGuest {
		prop = unix.MS_SLAVE | unix.MS_REC
	}
	if err := unix.Mount("", v.Target, "", prop, ""); err != nil {
		return fmt.Errorf("set propagation of bind %s: %w", v.Target, err)
	}
	if v.ReadOnly {
		if err := unix.Mount("", v.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("make bind of %s on %s read-only: %w", v.Source, v.Target, err)
		}
	}
	return nil
}

func (hostMounter) Unmount(target string) error {
	dir := filepath.Dir(target)
	if err := mount.UnmountRecursive(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount container share %s: %w", dir, err)
	}
	// Only what Veil created is removed, one entry at a time: a mount
	// that survived fails with EBUSY instead of having its contents
	// deleted, and directories must be empty.
	var errs []error
	remove := func(p string) {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	remove(target)
	mounts := filepath.Join(dir, "mounts")
	if ents, err := os.ReadDir(mounts); err == nil {
		for _, e := range ents {
			remove(filepath.Join(mounts, e.Name()))
		}
	}
	remove(mounts)
	remove(dir)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove container share %s: %w", dir, err)
	}
	return nil
}

func (hostMounter) Submounts(dir string) ([]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("list mounts below %s: %w", dir, err)
	}
	var rel []string
	for _, m := range ms {
		if r, err := filepath.Rel(dir, m.Mountpoint); err == nil && r != "." && !strings.HasPrefix(r, "../") {
			rel = append(rel, r)
		}
	}
	return rel, nil
}
