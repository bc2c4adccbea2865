package bundle

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/runtime/statedir"
)

// ContainerFS prepares what AddContainer needs: containerd's rootfs
// mounts (or the bundle's rootfs directory) and the planned volumes, each
// source opened and checked against the policy (openVolumeSource). The
// returned function closes the sources.
func ContainerFS(rootfs []*types.Mount, bundle string, root string, plan VolumePlan, policy VolumePolicy) (statedir.ContainerFS, func(), error) {
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
