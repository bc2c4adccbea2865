package jail

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// newRoot is where the stage builds the helper's root: a tmpfs mounted
// over /tmp in the stage's own mount namespace (as bubblewrap does), so
// nothing is made on the host's filesystems.
const newRoot = "/tmp"

// libLinks are the top-level entries that hold binaries and libraries
// besides /usr: recreated as the same symlink on merged-/usr hosts,
// bound read-only otherwise.
var libLinks = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// tree is a detached mount (open_tree clone) waiting to be attached at
// target in the new root.
type tree struct {
	fd     int
	target string
	dir    bool
}

// buildRoot makes the stage's root: /usr and the library entries
// read-only, the Spec's binds and devices, nothing else; the root itself
// ends read-only. It runs in the stage's fresh mount namespace.
func buildRoot(s *Spec) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	// Clone every source before the tmpfs hides what lies below /tmp.
	var trees []tree
	defer func() {
		for _, t := range trees {
			_ = unix.Close(t.fd)
		}
	}()
	var links [][2]string
	add := func(src, target string, attr uint64) error {
		t, err := clone(src, target, attr)
		if err != nil {
			return err
		}
		trees = append(trees, t)
		return nil
	}
	const ro = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	if err := add("/usr", "/usr", ro); err != nil {
		return err
	}
	for _, p := range libLinks {
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink != 0:
			dst, err := os.Readlink(p)
			if err != nil {
				return err
			}
			links = append(links, [2]string{dst, p})
		default:
			if err := add(p, p, ro); err != nil {
				return err
			}
		}
	}
	for _, d := range append(append([]string{}, alwaysDevices...), s.Devices...) {
		if err := add(d, d, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC); err != nil {
			return err
		}
	}
	for _, b := range s.Binds {
		attr := uint64(ro)
		if b.Writable {
			attr = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
		}
		if err := add(b.Source, b.Target, attr); err != nil {
			return err
		}
	}

	if err := unix.Mount("tmpfs", newRoot, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k,nr_inodes=256"); err != nil {
		return fmt.Errorf("mount the root's tmpfs: %w", err)
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(newRoot, l[1])); err != nil {
			return err
		}
	}
	for _, t := range trees {
		at := filepath.Join(newRoot, t.target)
		if err := mountPoint(at, t.dir); err != nil {
			return err
		}
		if err := unix.MoveMount(t.fd, "", unix.AT_FDCWD, at, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("attach %s: %w", t.target, err)
		}
	}
	if err := unix.Mount("", newRoot, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("make the root read-only: %w", err)
	}
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	return unix.Chdir("/")
}

// clone clones the mount of src (following symlinks: the sources are
// host-owned) as a detached tree with attr set.
func clone(src, target string, attr uint64) (tree, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return tree{}, fmt.Errorf("clone %s: %w", src, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return tree{}, fmt.Errorf("stat %s: %w", src, err)
	}
	ma := unix.MountAttr{Attr_set: attr, Propagation: unix.MS_PRIVATE}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &ma); err != nil {
		_ = unix.Close(fd)
		return tree{}, fmt.Errorf("set attributes of %s: %w", src, err)
	}
	return tree{fd: fd, target: target, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR}, nil
}

// mountPoint makes an empty directory or file at p, with its parents.
func mountPoint(p string, dir bool) error {
	if dir {
		return os.MkdirAll(p, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
