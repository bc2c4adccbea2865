package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillFromPidFile kills the process recorded in pidPath, for cleaning up
// after a runtime that crashed. The pid is trusted only if the process's
// command line contains marker (the sandbox directory, which every helper
// names in its arguments), so a recycled pid is never killed. It kills the
// process group, waits (bounded by ctx) for the process to go away, and
// removes the pid file. A missing pid file or a dead process is not an
// error.
func KillFromPidFile(ctx context.Context, pidPath, marker string) error {
	b, err := os.ReadFile(pidPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		// A corrupt pid file names nothing we may kill.
		return os.Remove(pidPath)
	}
	if Matches(pid, marker) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if err := waitGone(ctx, pid, marker); err != nil {
			return fmt.Errorf("kill pid %d from %s: %w", pid, pidPath, err)
		}
	}
	if err := os.Remove(pidPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Matches reports whether pid is alive and its command line contains
// marker. A zombie (empty command line) does not match.
func Matches(pid int, marker string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return false
	}
	return bytes.Contains(bytes.ReplaceAll(b, []byte{0}, []byte{' '}), []byte(marker))
}

// waitGone polls until pid no longer runs the marked program. The process
// is not our child, so there is nothing to wait(2) on; /proc is the only
// signal. A zombie counts as gone.
func waitGone(ctx context.Context, pid int, marker string) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for Matches(pid, marker) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
