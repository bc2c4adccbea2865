package shim

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
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
	// Unmount unmounts everything on target and removes its container
	// directory. It is idempotent.
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

func (hostMounter) Unmount(target string) error {
	if err := mount.UnmountRecursive(target, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount rootfs %s: %w", target, err)
	}
	// Only empty directories are removed: a mount that survived would
	// otherwise have its contents deleted.
	if err := os.Remove(target); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove rootfs mount point: %w", err)
	}
	if err := os.Remove(filepath.Dir(target)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove container shared dir: %w", err)
	}
	return nil
}
