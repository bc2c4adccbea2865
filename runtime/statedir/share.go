package statedir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cleanup"
)

// shareTmpfsOptions bound the share's tmpfs: it only ever holds the
// directories and empty files the host makes as mount points.
const shareTmpfsOptions = "mode=0755,size=1m,nr_inodes=16384"

// Server is the process that serves the share (virtiofsd): container
// mounts go into its mount namespace.
type Server interface {
	// MountNamespace opens the process's mount namespace; it fails with
	// ErrServerGone once the process has exited.
	MountNamespace() (*os.File, error)
}

// ErrServerGone reports that the share's server has exited: its mount
// namespace, and every container mount in it, is gone.
var ErrServerGone = errors.New("the share's server has exited")

// Share is a sandbox's virtio-fs share on the host (see the package doc).
type Share struct {
	root    *os.File // share/: the tmpfs, host-writable
	staging *os.File // staging/
	rootDev uint64
	rootIno uint64

	// mu is held (read) for every operation that uses root and staging,
	// and (write) by Close, which closes them.
	mu     sync.RWMutex
	server Server
	closed bool
}

// CreateShare makes the sandbox directory's share: the directory becomes
// a private bind mount of itself, share/ a tmpfs, shared/ a read-only bind
// of it (what virtiofsd must serve) and staging/ a directory for rootfs
// assembly. The sandbox directory must exist and be empty. On failure
// nothing is left mounted.
func CreateShare(ctx context.Context, d Dir) (_ *Share, retErr error) {
	var undo cleanup.Stack
	defer undo.OnError(ctx, &retErr)
	if err := unix.Mount(d.path, d.path, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind sandbox directory %s on itself: %w", d.path, err)
	}
	undo.Push("unmount the sandbox directory's bind", func(context.Context) error {
		return unix.Unmount(d.path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	})
	if err := unix.Mount("", d.path, "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("make sandbox directory %s private: %w", d.path, err)
	}
	top, err := openRoot(d.path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = top.Close() }()
	for _, name := range []string{shareName, sharedName, stagingName} {
		if err := unix.Mkdirat(int(top.Fd()), name, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d.File(name), err)
		}
	}
	if err := unix.Mount("tmpfs", d.shareDir(), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, shareTmpfsOptions); err != nil {
		return nil, fmt.Errorf("mount the share's tmpfs on %s: %w", d.shareDir(), err)
	}
	s := &Share{}
	if s.root, err = openRoot(d.shareDir()); err != nil {
		return nil, err
	}
	undo.Push("close the share's root", func(context.Context) error { return s.root.Close() })
	var st unix.Stat_t
	if err := unix.Fstat(int(s.root.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat the share's root %s: %w", s.root.Name(), err)
	}
	s.rootDev, s.rootIno = st.Dev, st.Ino
	// The read-only view is made detached and attached complete, so it is
	// never writable, not even for a moment.
	view, err := cloneTree(s.root, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = view.Close() }()
	if err := view.setAttr(unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC, unix.MS_PRIVATE, false); err != nil {
		return nil, err
	}
	if err := unix.MoveMount(int(view.f.Fd()), "", int(top.Fd()), sharedName, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return nil, fmt.Errorf("attach the read-only share on %s: %w", d.SharedDir(), err)
	}
	if s.staging, err = openRoot(d.stagingDir()); err != nil {
		return nil, err
	}
	return s, nil
}

// SetServer names the process that serves the share; AddContainer and
// RemoveContainer work in its mount namespace.
func (s *Share) SetServer(srv Server) {
	s.mu.Lock()
	s.server = srv
	s.mu.Unlock()
}

// Names in a container's directory of the share.
const (
	rootfsName = "rootfs"
	mountsName = "mounts"
)

// ContainerFS is what a container shows the guest.
type ContainerFS struct {
	// Rootfs are containerd's mounts for the root filesystem; with none,
	// BundleRootfs (a host directory) is bind-mounted.
	Rootfs       []mount.Mount
	BundleRootfs string
	// Volumes appear at <cid>/mounts/<n>, n being VolumeNames[i] (the
	// index of the mount in the spec).
	Volumes     []Volume
	VolumeNames []string
}

// GuestRootfs is where the guest sees container cid's root filesystem.
func GuestRootfs(cid string) string { return filepath.Join(api.SharedDir, cid, rootfsName) }

// GuestVolume is where the guest sees volume name of container cid.
func GuestVolume(cid, name string) string {
	return filepath.Join(api.SharedDir, cid, mountsName, name)
}

// AddContainer shows container cid's root filesystem and volumes to the
// guest: it creates their mount points in the share, builds each as a
// detached, nosuid and nodev tree (read-only as asked) and moves them
// into the server's mount namespace. It returns the guest paths of the
// mounts below the volumes (submounts of recursive binds), which the
// guest must mount too. On failure it removes what it added.
func (s *Share) AddContainer(ctx context.Context, cid string, fs ContainerFS) (_ []string, retErr error) {
	if err := api.ValidateID("container id", cid); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("container %s: the sandbox stopped: %w", cid, ErrServerGone)
	}
	if len(fs.Volumes) != len(fs.VolumeNames) {
		return nil, fmt.Errorf("container %s: %d volumes but %d names: %w", cid, len(fs.Volumes), len(fs.VolumeNames), errdefs.ErrInvalidArgument)
	}
	cdir, err := mkdirBeneath(s.root, cid, 0o755)
	if err != nil {
		return nil, fmt.Errorf("container %s: create its share directory: %w", cid, err)
	}
	defer func() { _ = cdir.Close() }()
	defer func() {
		if retErr != nil {
			if err := s.removeContainer(context.WithoutCancel(ctx), cid); err != nil {
				log.G(ctx).WithError(err).Warn("rollback: remove container from share")
			}
		}
	}()
	var trees []*detachedTree
	defer func() {
		for _, t := range trees {
			_ = t.Close()
		}
	}()
	req := nsRequest{RootDev: s.rootDev, RootIno: s.rootIno}

	if err := unix.Mkdirat(int(cdir.Fd()), rootfsName, 0o755); err != nil {
		return nil, fmt.Errorf("container %s: create rootfs mount point: %w", cid, err)
	}
	t, err := s.rootfsTree(ctx, cid, fs.Rootfs, fs.BundleRootfs)
	if err != nil {
		return nil, err
	}
	trees = append(trees, t)
	req.Attach = append(req.Attach, cid+"/"+rootfsName)

	if len(fs.Volumes) > 0 {
		mdir, err := mkdirBeneath(cdir, mountsName, 0o755)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", cid, err)
		}
		defer func() { _ = mdir.Close() }()
		for i, v := range fs.Volumes {
			name := fs.VolumeNames[i]
			if _, err := strconv.ParseUint(name, 10, 32); err != nil {
				return nil, fmt.Errorf("container %s: volume name %q is not a number: %w", cid, name, errdefs.ErrInvalidArgument)
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(v.Source.Fd()), &st); err != nil {
				return nil, fmt.Errorf("container %s: stat volume %s: %w", cid, v.Source.Name(), err)
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				err = unix.Mkdirat(int(mdir.Fd()), name, 0o755)
			} else {
				err = createFileBeneath(mdir, name, 0o644)
			}
			if err != nil {
				return nil, fmt.Errorf("container %s: volume mount point %s: %w", cid, name, err)
			}
			t, err := volumeTree(v)
			if err != nil {
				return nil, fmt.Errorf("container %s: volume %s: %w", cid, v.Source.Name(), err)
			}
			trees = append(trees, t)
			req.Attach = append(req.Attach, cid+"/"+mountsName+"/"+name)
			if v.Recursive {
				req.List = append(req.List, cid+"/"+mountsName+"/"+name)
			}
		}
	}
	resp, err := s.inServer(ctx, req, trees)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", cid, err)
	}
	var subs []string
	for _, m := range resp.Mounts {
		subs = append(subs, filepath.Join(api.SharedDir, m))
	}
	return subs, nil
}

// RemoveContainer takes container cid out of the share: it unmounts its
// rootfs and volumes in the server's mount namespace (they are gone
// already when the server exited) and removes its mount points. It is
// idempotent. What cannot be removed is reported in the error.
func (s *Share) RemoveContainer(ctx context.Context, cid string) error {
	if err := api.ValidateID("container id", cid); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		// The sandbox stopped: its server, its mounts and its directory
		// went with it.
		return nil
	}
	return s.removeContainer(ctx, cid)
}

// removeContainer is RemoveContainer with mu held.
func (s *Share) removeContainer(ctx context.Context, cid string) error {
	var errs []error
	req := nsRequest{RootDev: s.rootDev, RootIno: s.rootIno, Detach: []string{cid + "/" + rootfsName}}
	if mdir, err := openBeneath(s.root, cid+"/"+mountsName, unix.O_RDONLY|unix.O_DIRECTORY); err == nil {
		names, _ := mdir.Readdirnames(-1)
		_ = mdir.Close()
		for _, n := range names {
			req.Detach = append(req.Detach, cid+"/"+mountsName+"/"+n)
		}
	}
	if _, err := s.inServer(ctx, req, nil); err != nil && !errors.Is(err, ErrServerGone) {
		errs = append(errs, err)
	}
	// A mount point that is still mounted in the server's namespace is
	// not the host's: removing it there detaches that mount.
	left, err := removeTree(s.root, cid)
	if err != nil {
		errs = append(errs, err)
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("left in the share: %q", left))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove container %s from the share: %w", cid, err)
	}
	return nil
}

// inServer runs req in the server's mount namespace (mu held). With no
// server it returns ErrServerGone.
func (s *Share) inServer(ctx context.Context, req nsRequest, trees []*detachedTree) (nsResponse, error) {
	srv := s.server
	if srv == nil {
		return nsResponse{}, fmt.Errorf("the share has no server: %w", ErrServerGone)
	}
	ns, err := srv.MountNamespace()
	if err != nil {
		return nsResponse{}, err
	}
	defer func() { _ = ns.Close() }()
	return runInServerNS(ctx, ns, req, trees)
}

// Close releases the share's file descriptors once its server stopped;
// Remove removes it. After Close, RemoveContainer has nothing left to do
// and AddContainer fails.
func (s *Share) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.server = nil
	_ = s.root.Close()
	_ = s.staging.Close()
	return nil
}
