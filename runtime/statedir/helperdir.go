package statedir

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// CreateHelperDir makes HelperDir, owned by the jail's uid and gid (0 when
// the helpers run as root), mode 0700: the only place a sandbox's jailed
// helpers may create files.
func CreateHelperDir(d Dir, uid, gid uint32) (string, error) {
	p := d.File(HelperDir)
	if err := os.Mkdir(p, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", p, err)
	}
	if err := os.Chown(p, int(uid), int(gid)); err != nil {
		return "", fmt.Errorf("give %s to uid %d: %w", p, uid, err)
	}
	return p, nil
}

// ListenUnix listens on a new Unix socket at path, then gives the
// socket file to uid and gid so that a jailed helper may connect to it.
func ListenUnix(path string, uid, gid uint32) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Lchown(path, int(uid), int(gid)); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("give socket %s to uid %d: %w", path, uid, err)
	}
	return ln, nil
}

// DialUnix connects to the Unix socket at path without following a
// symlink in its last element: a jailed helper owns the directory of its
// sockets and could put a link to another socket there. The directories
// above it are the host's.
func DialUnix(ctx context.Context, path string) (*net.UnixConn, error) {
	dir, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	defer func() { _ = unix.Close(dir) }()
	fd, err := unix.Openat(dir, filepath.Base(path), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer func() { _ = unix.Close(fd) }()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%s is not a socket (mode %o): refused", path, st.Mode)
	}
	// Connecting through the fd's /proc link reaches the inode just
	// checked, whatever the name points at now.
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	return c.(*net.UnixConn), nil
}
