package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/runtime/cleanup"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// containerShare shows containers' filesystems to the guest: it is the
// sandbox's share (runtime/statedir.Share), which owns every host-side
// operation below it; the shim never handles a path inside it.
type containerShare interface {
	// AddContainer shows a container's rootfs and volumes to the guest
	// and returns the guest paths of the mounts below its volumes.
	AddContainer(ctx context.Context, id string, fs statedir.ContainerFS) ([]string, error)
	// RemoveContainer takes them away again; it is idempotent.
	RemoveContainer(ctx context.Context, id string) error
}

// shareTimeout bounds taking a container out of the share on a delete or
// a rollback, which must happen even when the request was cancelled.
const shareTimeout = 30 * time.Second

// removeFromShare takes container id out of share, bounded by
// shareTimeout whatever ctx says.
func removeFromShare(ctx context.Context, share containerShare, id string) error {
	rctx, cancel := cleanup.Context(ctx, shareTimeout)
	defer cancel()
	return share.RemoveContainer(rctx, id)
}

// guestRootfsPath is where the guest sees a container's rootfs.
func guestRootfsPath(containerID string) string { return statedir.GuestRootfs(containerID) }

// containerFS prepares what AddContainer needs: containerd's rootfs
// mounts (or the bundle's rootfs directory) and the planned volumes, each
// source opened and checked against the policy (openVolumeSource). The
// returned function closes the sources.
func containerFS(rootfs []*types.Mount, bundle string, root string, plan volumePlan, policy volumePolicy) (statedir.ContainerFS, func(), error) {
	fs := statedir.ContainerFS{Rootfs: mount.FromProto(rootfs)}
	if len(fs.Rootfs) == 0 {
		if root == "" {
			root = "rootfs"
		}
		if !filepath.IsAbs(root) {
			root = filepath.Join(bundle, root)
		}
		fs.BundleRootfs = root
	}
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			_ = f.Close()
		}
	}
	for _, v := range plan.Volumes {
		if v.RecursiveReadOnly && v.HostToGuest {
			closeAll()
			return statedir.ContainerFS{}, nil, fmt.Errorf("volume %s: rro with slave or shared propagation is not supported (mounts the host adds below it later would reach the guest writable); use private propagation: %w",
				v.Source, errdefs.ErrInvalidArgument)
		}
		f, _, err := openVolumeSource(v.Source, policy)
		if err != nil {
			closeAll()
			return statedir.ContainerFS{}, nil, err
		}
		opened = append(opened, f)
		fs.Volumes = append(fs.Volumes, statedir.Volume{
			Source:            f,
			Recursive:         v.Recursive,
			ReadOnly:          v.ReadOnly,
			RecursiveReadOnly: v.RecursiveReadOnly,
			HostToGuest:       v.HostToGuest,
		})
		fs.VolumeNames = append(fs.VolumeNames, v.Name)
	}
	return fs, closeAll, nil
}
