package cgroup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// Delete kills whatever is still in the cgroup (SIGKILL), waits until it
// is empty in every hierarchy (bounded by ctx), and removes its
// directories. A cgroup that is already gone is no error.
func (c *Cgroup) Delete(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	c.cgroupKill()
	wait := 2 * time.Millisecond
	for {
		pids, err := c.Pids()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			break
		}
		if err := c.kill(pids); err != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("delete cgroup %s: %d processes still inside after SIGKILL (%v): %w", c.path, len(pids), pids, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
	if err := cgroups.RemovePaths(maps.Clone(c.dirs)); err != nil {
		return fmt.Errorf("delete cgroup %s: %w", c.path, err)
	}
	return nil
}

// cgroupKill writes cgroup.kill (Linux 5.14) in the cgroup2 directory, if
// there is one (v2, or a hybrid host's unified tree): it kills everything
// in the subtree, forks racing it included. The library has no call for
// it, hence the direct write. Best effort: kill's loop is what Delete
// relies on, and the only way on plain v1.
func (c *Cgroup) cgroupKill() {
	if d := c.dirs[""]; d != "" {
		_ = os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0)
	}
}

// kill sends SIGKILL to the processes pids that are still in the cgroup.
// A pid is signalled through a pidfd opened before the cgroup is read
// again: if the pid is still listed then, the pidfd's process is the one
// listed (a live process's pid is not reused), so a pid recycled by an
// outside process in the meantime is never hit.
func (c *Cgroup) kill(pids []int) error {
	fds := make(map[int]int, len(pids))
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == nil:
			fds[pid] = fd
		case errors.Is(err, unix.ESRCH):
			// Gone already.
		default:
			return fmt.Errorf("cgroup %s: pidfd_open %d: %w", c.path, pid, err)
		}
	}
	if len(fds) == 0 {
		return nil
	}
	still, err := c.Pids()
	if err != nil {
		return err
	}
	for _, pid := range still {
		fd, ok := fds[pid]
		if !ok {
			continue // new since the first read: the next round has it
		}
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("cgroup %s: kill %d: %w", c.path, pid, err)
		}
	}
	return nil
}
