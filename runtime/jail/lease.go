package jail

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/statedir"
)

// Lease holds one uid (and the gid of the same number) of the jail range
// for a running sandbox: an flock on statedir.UIDLeaseFile, held by the
// shim for the sandbox's life and dropped by the kernel if the shim dies.
type Lease struct {
	UID  uint32
	f    *os.File
	path string
}

// ErrRangeExhausted reports that every uid of the range is leased.
var ErrRangeExhausted = errors.New("every uid of the jail range is in use")

// Acquire leases the first free uid of [base, base+count), probing from
// a point derived from id so that concurrent starts rarely contend.
func Acquire(stateDir string, base, count uint32, id string) (*Lease, error) {
	if count == 0 {
		return nil, fmt.Errorf("jail: empty uid range at %d", base)
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	start := h.Sum32() % count
	for i := uint32(0); i < count; i++ {
		uid := base + (start+i)%count
		l, err := tryLease(stateDir, uid)
		if err != nil {
			return nil, err
		}
		if l != nil {
			return l, nil
		}
	}
	return nil, fmt.Errorf("jail: uids %d..%d (jail.uid_base, jail.uid_count): %w", base, base+count-1, ErrRangeExhausted)
}

// tryLease takes uid if no one holds it: nil, nil when someone does.
func tryLease(stateDir string, uid uint32) (*Lease, error) {
	path := statedir.UIDLeaseFile(stateDir, uid)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("jail: lease uid %d: %w", uid, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("jail: lock %s: %w", path, err)
	}
	// A holder that released meanwhile unlinked the file we opened: the
	// lock is on a dead inode, and the uid may be someone else's now.
	var fst, pst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		_ = f.Close()
		return nil, err
	}
	err = unix.Lstat(path, &pst)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		_ = f.Close()
		return nil, fmt.Errorf("jail: lease uid %d: %w", uid, err)
	}
	if errors.Is(err, unix.ENOENT) || pst.Ino != fst.Ino || pst.Dev != fst.Dev {
		_ = f.Close()
		return nil, nil
	}
	return &Lease{UID: uid, f: f, path: path}, nil
}

// Release gives the uid back: the file goes first, then the lock.
func (l *Lease) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return err
}

// ReleaseStale removes the lease file of uid when no running sandbox
// holds it (after a shim crashed).
func ReleaseStale(stateDir string, uid uint32) error {
	l, err := tryLease(stateDir, uid)
	if err != nil || l == nil {
		return err
	}
	return l.Release()
}
