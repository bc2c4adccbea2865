package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/veil-runtime/veil/runtime/statedir"
)

// Owner identifies the helper processes of one sandbox, so that a pid
// read from a file is trusted only while it still runs one of them (a
// recycled pid is never touched): a helper's command line contains
// Marker (the sandbox directory, which unjailed helpers name in their
// arguments), or it runs as UID, the sandbox's jail uid, leased to that
// sandbox alone while it lives (jailed helpers name no host path).
type Owner struct {
	Marker string
	// UID is the jail uid; 0 when the sandbox has none.
	UID uint32
	// ProcRoot is the host's /proc; empty means /proc.
	ProcRoot string
}

// OwnerOf is the Owner of the helpers of the sandbox directory dir: its
// path, and the jail uid it records.
func OwnerOf(dir, procRoot string) Owner {
	o := Owner{Marker: dir + "/", ProcRoot: procRoot}
	if b, err := os.ReadFile(filepath.Join(dir, statedir.JailUIDFile)); err == nil {
		if uid, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			o.UID = uint32(uid)
		}
	}
	return o
}

// Owns reports whether pid is alive and one of the sandbox's helpers. A
// zombie (empty command line) is not.
func (o Owner) Owns(pid int) bool {
	root := o.ProcRoot
	if root == "" {
		root = "/proc"
	}
	dir := filepath.Join(root, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil || len(b) == 0 {
		return false
	}
	if o.Marker != "" && bytes.Contains(bytes.ReplaceAll(b, []byte{0}, []byte{' '}), []byte(o.Marker)) {
		return true
	}
	if o.UID == 0 {
		return false
	}
	st, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			f := strings.Fields(v)
			return len(f) > 0 && f[0] == strconv.FormatUint(uint64(o.UID), 10)
		}
	}
	return false
}

// KillFromPidFile kills the process recorded in pidPath when its command
// line contains marker; see KillOwned.
func KillFromPidFile(ctx context.Context, pidPath, marker string) error {
	return KillOwned(ctx, pidPath, Owner{Marker: marker})
}

// KillOwned kills the process recorded in pidPath, for cleaning up after
// a runtime that crashed, if o owns it. It kills the process group, waits
// (bounded by ctx) for the process to go away, and removes the pid file.
// A missing pid file or a dead process is not an error.
func KillOwned(ctx context.Context, pidPath string, o Owner) error {
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
	if o.Owns(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if err := waitGone(ctx, pid, o); err != nil {
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
func Matches(pid int, marker string) bool { return Owner{Marker: marker}.Owns(pid) }

// waitGone polls until pid no longer runs the marked program. The process
// is not our child, so there is nothing to wait(2) on; /proc is the only
// signal. A zombie counts as gone.
func waitGone(ctx context.Context, pid int, o Owner) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for o.Owns(pid) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
