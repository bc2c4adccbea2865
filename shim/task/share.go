package task

import (
	"context"
	"time"

	"github.com/veil-runtime/veil/runtime/cleanup"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// ContainerShare shows containers' filesystems to the guest: it is the
// sandbox's share (runtime/statedir.Share), which owns every host-side
// operation below it; the shim never handles a path inside it.
type ContainerShare interface {
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
func removeFromShare(ctx context.Context, share ContainerShare, id string) error {
	rctx, cancel := cleanup.Context(ctx, shareTimeout)
	defer cancel()
	return share.RemoveContainer(rctx, id)
}

// guestRootfsPath is where the guest sees a container's rootfs.
func guestRootfsPath(containerID string) string { return statedir.GuestRootfs(containerID) }
