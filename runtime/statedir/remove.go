package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxRemoveDepth bounds the recursion of removeTree; a deeper tree is
// left and reported.
const maxRemoveDepth = 64

// removeTree removes name in dir and everything below it without
// following a symlink and without crossing onto another filesystem or
// mount: what lies on another device (a mount point that is still
// mounted) is left in place and reported, never descended into. It
// returns the paths it could not remove; only an error on dir itself is
// returned as an error. A missing name is not an error.
func removeTree(dir *os.File, name string) (left []string, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dir.Name(), err)
	}
	return removeEntry(dir, name, st.Dev, 0), nil
}

func removeEntry(dir *os.File, name string, dev uint64, depth int) []string {
	path := filepath.Join(dir.Name(), name)
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return []string{fmt.Sprintf("%s (stat: %v)", path, err)}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return []string{fmt.Sprintf("%s (%v)", path, err)}
		}
		return nil
	}
	if st.Dev != dev {
		return []string{fmt.Sprintf("%s (another filesystem is mounted there)", path)}
	}
	if depth >= maxRemoveDepth {
		return []string{fmt.Sprintf("%s (deeper than %d levels)", path, maxRemoveDepth)}
	}
	var left []string
	// O_RDONLY (not O_PATH) to read the entries; resolveBeneath keeps the
	// open from following a symlink swapped in since the fstatat.
	sub, err := openBeneath(dir, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return []string{fmt.Sprintf("%s (%v)", path, err)}
	}
	names, err := sub.Readdirnames(-1)
	if err != nil {
		left = append(left, fmt.Sprintf("%s (read: %v)", path, err))
	}
	for _, n := range names {
		left = append(left, removeEntry(sub, n, dev, depth+1)...)
	}
	_ = sub.Close()
	if err := unix.Unlinkat(int(dir.Fd()), name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		if len(left) == 0 {
			left = append(left, fmt.Sprintf("%s (%v)", path, err))
		}
	}
	return left
}
