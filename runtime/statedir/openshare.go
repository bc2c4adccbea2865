package statedir

import (
	"context"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// OpenShare opens the share CreateShare made in d, for a process that
// takes over a running sandbox from the one that created it (a warm
// pool VM claimed by a shim). share/ must still be the share's tmpfs
// and shared/ a mount point, else the directory is not one Veil
// prepared and nothing is opened. The caller sets the server.
func OpenShare(_ context.Context, d Dir) (_ *Share, retErr error) {
	s := &Share{}
	var err error
	if s.root, err = openRoot(d.shareDir()); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = s.root.Close()
		}
	}()
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(s.root.Fd()), &fs); err != nil {
		return nil, fmt.Errorf("statfs the share's root %s: %w", s.root.Name(), err)
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return nil, fmt.Errorf("the share's root %s is not its tmpfs (filesystem type %#x): not a share Veil made", s.root.Name(), fs.Type)
	}
	mps, err := mountsUnder(d.SharedDir())
	if err != nil {
		return nil, err
	}
	if !slices.Contains(mps, d.SharedDir()) {
		return nil, fmt.Errorf("%s is not mounted: not a share Veil made", d.SharedDir())
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(s.root.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat the share's root %s: %w", s.root.Name(), err)
	}
	s.rootDev, s.rootIno = st.Dev, st.Ino
	if s.staging, err = openRoot(d.stagingDir()); err != nil {
		return nil, err
	}
	return s, nil
}
