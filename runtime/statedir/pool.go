package statedir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
)

// PoolDirName is the directory of the warm pool's VMs in the state
// directory: <state_dir>/.pool/<vmid>/ has a sandbox directory's layout.
// No sandbox id can be it: ids start with a letter or digit
// (api.ValidateID).
const PoolDirName = ".pool"

// NewPool returns the directory of pool VM vmid, <stateDir>/.pool/<vmid>,
// with New's checks: vmid follows the id rule, stateDir is absolute, and
// the directory's socket paths fit in a Unix socket address. Create and
// CreateShare make it as they make a sandbox directory.
func NewPool(stateDir, vmid string) (Dir, error) {
	return newDir(stateDir, "pool VM id", vmid, PoolDirName)
}

// PoolLockFile is the file the keeper of pool VM vmid holds locked for
// as long as it lives (runtime/pool), beside the VM's directory, which
// must be empty when the VM's start fills it. Remove of the VM's
// directory removes it too.
func PoolLockFile(stateDir, vmid string) string {
	return filepath.Join(stateDir, PoolDirName, vmid+".lock")
}

// removePoolLeftovers removes the lock file of the removed pool
// directory d, and the pool's directory when that left it empty (a pool
// daemon, or the next keeper, makes it again).
func removePoolLeftovers(d Dir) {
	_ = os.Remove(PoolLockFile(d.stateDir(), d.pool))
	_ = unix.Rmdir(filepath.Dir(d.path)) // ENOTEMPTY: other VMs
}

// Pool reports whether d is a pool VM's directory (claimed or not).
func (d Dir) Pool() bool { return d.pool != "" }

// PoolID is the pool VM id of a pool directory, "" for a plain sandbox
// directory.
func (d Dir) PoolID() string { return d.pool }

// LinkPath is <state_dir>/<id>, the symlink that names a claimed pool
// directory by its sandbox id; "" for a plain or unclaimed directory.
func (d Dir) LinkPath() string { return d.link }

// stateDir is the state directory d is in.
func (d Dir) stateDir() string {
	if d.pool != "" {
		return filepath.Dir(filepath.Dir(d.path))
	}
	return filepath.Dir(d.path)
}

// linkTarget is what the link of sandbox running in d holds: the pool
// directory relative to the state directory.
func (d Dir) linkTarget() string { return PoolDirName + "/" + d.pool }

// Claimed returns the pool directory d named by sandbox id: ID is id,
// Path is unchanged (the VM keeps running there), and Remove removes the
// link <state_dir>/<id> too (Link makes it). Only a pool directory can be
// claimed, and only by one id.
func (d Dir) Claimed(id string) (Dir, error) {
	if d.pool == "" {
		return Dir{}, fmt.Errorf("claim %s for sandbox %s: not a pool VM directory: %w", d.path, id, errdefs.ErrInvalidArgument)
	}
	if err := api.ValidateID("sandbox id", id); err != nil {
		return Dir{}, err
	}
	if d.link != "" && d.id != id {
		return Dir{}, fmt.Errorf("claim %s for sandbox %s: sandbox %s claimed it already: %w", d.path, id, d.id, errdefs.ErrInvalidArgument)
	}
	d.id = id
	d.link = filepath.Join(d.stateDir(), id)
	return d, nil
}

// Link records that sandbox id runs in the pool directory d (of
// stateDir, and existing): it creates the symlink <stateDir>/<id> →
// .pool/<vmid> at once (symlink(2)), so Open finds the sandbox by id. A
// sandbox directory or link of that id already there is refused with
// errdefs.ErrAlreadyExists, as Create refuses it.
func Link(stateDir, id string, d Dir) error {
	if err := api.ValidateID("sandbox id", id); err != nil {
		return err
	}
	if !filepath.IsAbs(stateDir) {
		return fmt.Errorf("state_dir %q is not an absolute path: %w", stateDir, errdefs.ErrInvalidArgument)
	}
	stateDir = filepath.Clean(stateDir)
	if d.pool == "" || d.stateDir() != stateDir {
		return fmt.Errorf("link sandbox %s to %s: not a pool VM directory of state_dir %s: %w", id, d.path, stateDir, errdefs.ErrInvalidArgument)
	}
	if d.link != "" && d.id != id {
		return fmt.Errorf("link sandbox %s to %s: sandbox %s claimed it: %w", id, d.path, d.id, errdefs.ErrInvalidArgument)
	}
	switch kind, err := entryType(filepath.Dir(d.path), d.pool); {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("link sandbox %s to %s: no such pool VM directory: %w", id, d.path, errdefs.ErrNotFound)
	case err != nil:
		return fmt.Errorf("link sandbox %s to %s: %w", id, d.path, err)
	case kind != unix.S_IFDIR:
		return fmt.Errorf("link sandbox %s to %s: it is %s, not a directory: %w", id, d.path, typeName(kind), errdefs.ErrFailedPrecondition)
	}
	link := filepath.Join(stateDir, id)
	if err := unix.Symlink(d.linkTarget(), link); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("sandbox directory %s exists already: a sandbox %s runs, or a crashed one left it (`veil sandbox cleanup %s` removes it): %w",
				link, id, id, errdefs.ErrAlreadyExists)
		}
		return fmt.Errorf("link sandbox %s: symlink %s to %s: %w", id, link, d.linkTarget(), err)
	}
	return nil
}

// Open returns the directory of sandbox id under stateDir, as it is on
// disk now:
//
//   - <stateDir>/<id> is not a symlink (a directory, or nothing): New's
//     result, so that Exists and Remove work on it as always.
//   - It is a symlink whose target is exactly .pool/<vmid>, vmid a valid
//     id, and <stateDir>/.pool/<vmid> is a directory: that pool directory,
//     claimed by id (ID is id, Path the pool directory, LinkPath the
//     link).
//   - Such a link whose pool directory is gone (a crash between the
//     removal of the directory and of the link): the same Dir, for which
//     Exists reports false and Remove removes the link.
//
// Any other symlink (another target, a pool entry that is not a real
// directory, a .pool that is not one) is refused with an error naming the
// link, wrapping errdefs.ErrFailedPrecondition: nothing is ever resolved
// through it.
func Open(stateDir, id string) (Dir, error) {
	if err := api.ValidateID("sandbox id", id); err != nil {
		return Dir{}, err
	}
	if !filepath.IsAbs(stateDir) {
		return Dir{}, fmt.Errorf("state_dir %q is not an absolute path: %w", stateDir, errdefs.ErrInvalidArgument)
	}
	link := filepath.Join(filepath.Clean(stateDir), id)
	var st unix.Stat_t
	if err := unix.Lstat(link, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return New(stateDir, id)
	}
	target, err := os.Readlink(link)
	if err != nil {
		return Dir{}, fmt.Errorf("sandbox %s: read link %s: %w", id, link, err)
	}
	vmid, ok := strings.CutPrefix(target, PoolDirName+"/")
	if !ok || api.ValidateID("pool VM id", vmid) != nil {
		return Dir{}, fmt.Errorf("sandbox %s: %s is a symlink to %q, not to %s/<pool VM id>: refused: %w",
			id, link, target, PoolDirName, errdefs.ErrFailedPrecondition)
	}
	d, err := NewPool(stateDir, vmid)
	if err != nil {
		return Dir{}, fmt.Errorf("sandbox %s: link %s: %w", id, link, err)
	}
	switch kind, err := entryType(filepath.Dir(d.path), vmid); {
	case errors.Is(err, unix.ENOENT):
		// Dangling: Exists reports false, Remove removes the link.
	case err != nil:
		return Dir{}, fmt.Errorf("sandbox %s: link %s: %w: %w", id, link, err, errdefs.ErrFailedPrecondition)
	case kind != unix.S_IFDIR:
		return Dir{}, fmt.Errorf("sandbox %s: link %s names %s, which is %s, not a directory: refused: %w",
			id, link, d.path, typeName(kind), errdefs.ErrFailedPrecondition)
	}
	d.id, d.link = id, link
	return d, nil
}

// entryType is the file type (S_IFMT bits) of name in dir, without
// following a symlink in dir's last element or in name.
func entryType(dir, name string) (uint32, error) {
	f, err := openRoot(dir)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		var st unix.Stat_t
		if unix.Lstat(dir, &st) == nil {
			return 0, fmt.Errorf("%s is %s, not a directory", dir, typeName(st.Mode&unix.S_IFMT))
		}
	}
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	var st unix.Stat_t
	if err := unix.Fstatat(int(f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, &os.PathError{Op: "stat", Path: filepath.Join(dir, name), Err: err}
	}
	return st.Mode & unix.S_IFMT, nil
}

// typeName names a file type (S_IFMT bits) for errors.
func typeName(kind uint32) string {
	switch kind {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFREG:
		return "a regular file"
	}
	return fmt.Sprintf("a special file (mode %o)", kind)
}

// PoolVMs lists the ids of the pool VM directories in stateDir (the
// directories in <stateDir>/.pool whose names are valid ids), sorted. No
// .pool directory means none.
func PoolVMs(stateDir string) ([]string, error) {
	if !filepath.IsAbs(stateDir) {
		return nil, fmt.Errorf("state_dir %q is not an absolute path: %w", stateDir, errdefs.ErrInvalidArgument)
	}
	dir := filepath.Join(filepath.Clean(stateDir), PoolDirName)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pool VMs: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	f := os.NewFile(uintptr(fd), dir)
	defer func() { _ = f.Close() }()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("list pool VMs in %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && api.ValidateID("pool VM id", e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// RemoveLink removes the link Link made for the claimed pool directory
// d, if it is still a symlink to it, and leaves the directory: a claim
// that failed before the claimant got the VM.
func RemoveLink(ctx context.Context, d Dir) error {
	if d.link == "" {
		return nil
	}
	return removeLink(ctx, d)
}

// removeLink removes the link that names the claimed pool directory d,
// if it is still a symlink to it: a link that is gone, or that now names
// something else, is left alone.
func removeLink(ctx context.Context, d Dir) error {
	parent, err := openRoot(filepath.Dir(d.link))
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = parent.Close() }()
	name := filepath.Base(d.link)
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(parent.Fd()), name, buf)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EINVAL):
		log.G(ctx).WithField("sandbox", d.id).Warnf("%s is no longer a symlink: left in place", d.link)
		return nil
	case err != nil:
		return &os.PathError{Op: "readlink", Path: d.link, Err: err}
	case n >= len(buf) || string(buf[:n]) != d.linkTarget():
		log.G(ctx).WithField("sandbox", d.id).Warnf("%s no longer links to %s: left in place", d.link, d.linkTarget())
		return nil
	}
	if err := unix.Unlinkat(int(parent.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "unlink", Path: d.link, Err: err}
	}
	return nil
}
