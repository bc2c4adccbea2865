package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveBeneath is how every path below a directory fd is resolved: never
// above it, never through a symlink (or a /proc magic link), never onto
// another mount.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// checkRel refuses a relative path that is empty, absolute or holds "."
// or ".." elements; openat2 would refuse what escapes, but a clear error
// names the path.
func checkRel(rel string) error {
	if rel == "" || filepath.IsAbs(rel) {
		return fmt.Errorf("path %q is not relative", rel)
	}
	for _, el := range strings.Split(rel, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("path %q has an empty, '.' or '..' element", rel)
		}
	}
	return nil
}

// openBeneath opens rel below dir with openat2 and resolveBeneath. flags
// are open flags (O_CLOEXEC is added). A symlink, even as the last
// element, is refused with ELOOP (RESOLVE_NO_SYMLINKS; O_NOFOLLOW is left
// out since with O_PATH it would open the link itself).
func openBeneath(dir *os.File, rel string, flags int) (*os.File, error) {
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveBeneath}
	var fd int
	var err error
	for {
		fd, err = unix.Openat2(int(dir.Fd()), rel, &how)
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: filepath.Join(dir.Name(), rel), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), rel)), nil
}

// openDirBeneath opens the directory rel below dir (O_PATH is enough for
// *at calls and fchdir).
func openDirBeneath(dir *os.File, rel string) (*os.File, error) {
	return openBeneath(dir, rel, unix.O_PATH|unix.O_DIRECTORY)
}

// mkdirBeneath creates the directory name in dir (a single element) and
// opens it. An existing entry is an error: the caller decides whether it
// may be there.
func mkdirBeneath(dir *os.File, name string, mode uint32) (*os.File, error) {
	if strings.Contains(name, "/") {
		return nil, fmt.Errorf("mkdir %q: not a single path element", name)
	}
	if err := checkRel(name); err != nil {
		return nil, err
	}
	if err := unix.Mkdirat(int(dir.Fd()), name, mode); err != nil {
		return nil, &os.PathError{Op: "mkdirat", Path: filepath.Join(dir.Name(), name), Err: err}
	}
	return openDirBeneath(dir, name)
}

// createFileBeneath creates the empty regular file name in dir (O_EXCL:
// nothing may be there yet).
func createFileBeneath(dir *os.File, name string, mode uint32) error {
	if strings.Contains(name, "/") {
		return fmt.Errorf("create %q: not a single path element", name)
	}
	f, err := openBeneath(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY)
	if err != nil {
		return err
	}
	_ = unix.Fchmod(int(f.Fd()), mode)
	return f.Close()
}

// openRoot opens an absolute directory the host made itself (the state
// directory and its fixed children) as the base of beneath-resolution.
// The path must not lead through a symlink.
func openRoot(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
