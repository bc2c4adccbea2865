package guest

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// System does the sandbox-level guest work for the agent server.
type System struct{}

// SetHostname sets the guest's host name.
func (System) SetHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("set hostname %q: %w", name, err)
	}
	return nil
}

// MountShare mounts the virtio-fs file system with tag at dir.
func (System) MountShare(ctx context.Context, tag, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	// Not nosuid: the share holds the containers' root filesystems, whose
	// setuid programs must work as under runc (the guest is the boundary).
	if err := unix.Mount(tag, dir, "virtiofs", unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mount virtio-fs tag %q on %s: %w", tag, dir, err)
	}
	log.G(ctx).WithFields(log.Fields{"tag": tag, "dir": dir}).Info("share mounted")
	return nil
}

// UnmountShare unmounts dir, lazily when it is still busy.
func (System) UnmountShare(ctx context.Context, dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		log.G(ctx).WithField("dir", dir).Warn("share busy; detaching it")
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// MountTmpfs mounts a tmpfs of sizeBytes at dir (the pod's /dev/shm).
func (System) MountTmpfs(ctx context.Context, dir string, sizeBytes uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	data := fmt.Sprintf("mode=1777,size=%d", sizeBytes)
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data); err != nil {
		return fmt.Errorf("mount tmpfs (%s) on %s: %w", data, dir, err)
	}
	log.G(ctx).WithFields(log.Fields{"dir": dir, "size": sizeBytes}).Info("pod shm mounted")
	return nil
}
