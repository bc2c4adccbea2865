package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
)

// Create makes the sandbox directory (0700) and its parent, the state
// directory (0711); for a pool directory (NewPool), .pool (0711) as well.
// A directory left by a sandbox of the same id is refused with an error
// that says how to remove it, and so is a state_dir (or .pool) whose path
// leads through a symlink (mountinfo, and so the cleanup, knows mounts by
// their real paths only).
func Create(d Dir) error {
	stateDir, parent := d.stateDir(), filepath.Dir(d.path)
	if err := os.MkdirAll(parent, 0o711); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	if real, err := filepath.EvalSymlinks(stateDir); err != nil || real != stateDir {
		return fmt.Errorf("state_dir %s must not lead through a symlink (it is %s; set state_dir to that): %w", stateDir, real, errdefs.ErrInvalidArgument)
	}
	if real, err := filepath.EvalSymlinks(parent); parent != stateDir && (err != nil || real != parent) {
		return fmt.Errorf("%s must be a directory, not a symlink (to %s): %w", parent, real, errdefs.ErrInvalidArgument)
	}
	if err := os.Mkdir(d.path, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) && d.pool != "" {
			return fmt.Errorf("pool VM directory %s exists already: a pool VM %s runs, or a crashed one left it: %w",
				d.path, d.pool, errdefs.ErrAlreadyExists)
		}
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("sandbox directory %s exists already: a sandbox %s runs, or a crashed one left it (`veil sandbox cleanup %s` removes it): %w",
				d.path, d.id, d.id, errdefs.ErrAlreadyExists)
		}
		return fmt.Errorf("create sandbox dir: %w", err)
	}
	return nil
}

// mountsUnder lists the host's mount points at or below dir, parents
// before children.
func mountsUnder(dir string) ([]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("list mounts below %s: %w", dir, err)
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out, nil
}

// HostMounts lists the host's mount points at or below the sandbox
// directory: after Remove, or for a running sandbox, only Veil's own.
func HostMounts(d Dir) ([]string, error) { return mountsUnder(d.path) }
