package virtiofs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PrepareSharedDir creates dir and makes it a bind mount of itself with
// shared propagation. virtiofsd's sandbox gets a copy of the host's mount
// tree; only a shared mount keeps propagating what the runtime mounts
// under dir afterwards (container root filesystems) into that copy.
func PrepareSharedDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("shared dir: %w", err)
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("shared dir: bind mount %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		return fmt.Errorf("shared dir: make %s shared: %w", dir, err)
	}
	return nil
}

// UnmountAll unmounts every mount at or below dir, deepest and newest
// first, detaching (lazily) what is busy. It is a no-op when nothing is
// mounted there.
func UnmountAll(dir string) error {
	dir = filepath.Clean(dir)
	// A stacked mount hides the one below it: go round until none is left.
	for range 64 {
		mounts, err := MountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		var errs []error
		// mountinfo lists parents before children and older before newer
		// mounts: walking it backwards unmounts children first.
		for i := len(mounts) - 1; i >= 0; i-- {
			m := mounts[i]
			if err := unix.Unmount(m, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				if derr := unix.Unmount(m, unix.MNT_DETACH); derr != nil && !errors.Is(derr, unix.EINVAL) {
					errs = append(errs, fmt.Errorf("unmount %s: %w", m, derr))
				}
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	return fmt.Errorf("unmount under %s: mounts keep reappearing", dir)
}

// MountsUnder lists the mount points at or below dir in
// /proc/self/mountinfo order.
func MountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return mountsUnder(f, filepath.Clean(dir))
}

func mountsUnder(r io.Reader, dir string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescape(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescape decodes mountinfo's octal escapes (\040 for a space, ...).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
