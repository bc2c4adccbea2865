package inspect

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the kernel's USER_HZ, the unit of /proc/<pid>/stat's CPU
// times (100 on every architecture Veil runs on).
const clockTick = 100

// ProcUsage is a host process's resource use.
type ProcUsage struct {
	// RSSBytes is VmRSS from /proc/<pid>/status.
	RSSBytes uint64 `json:"rss_bytes"`
	// UserTime and SystemTime are utime and stime from /proc/<pid>/stat.
	UserTime   time.Duration `json:"user_time_ns"`
	SystemTime time.Duration `json:"system_time_ns"`
	// Threads is Threads from /proc/<pid>/status.
	Threads int `json:"threads"`
	// OpenFDs counts /proc/<pid>/fd's entries.
	OpenFDs int `json:"open_fds"`
}

// Usage reads pid's resource use from ProcRoot.
func (r *Reader) Usage(pid int) (ProcUsage, error) {
	var u ProcUsage
	dir := filepath.Join(r.ProcRoot, strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return u, fmt.Errorf("pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		switch key {
		case "VmRSS":
			kb, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return u, fmt.Errorf("pid %d: status VmRSS %q: %w", pid, f[0], err)
			}
			u.RSSBytes = kb * 1024
		case "Threads":
			u.Threads, _ = strconv.Atoi(f[0])
		}
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return u, fmt.Errorf("pid %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing parenthesis.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return u, fmt.Errorf("pid %d: malformed stat %q", pid, stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return u, fmt.Errorf("pid %d: stat has %d fields after the name", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return u, fmt.Errorf("pid %d: stat utime/stime %q %q", pid, f[11], f[12])
	}
	u.UserTime = time.Duration(ut) * time.Second / clockTick
	u.SystemTime = time.Duration(st) * time.Second / clockTick
	if u.OpenFDs, err = countEntries(filepath.Join(dir, "fd")); err != nil {
		return u, fmt.Errorf("pid %d: %w", pid, err)
	}
	return u, nil
}

// countEntries counts a directory's entries in batches: a process may
// hold tens of thousands of descriptors (virtiofsd, for a guest that
// pins files), and listing them at once would cost megabytes.
func countEntries(dir string) (int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	n := 0
	for {
		names, err := f.Readdirnames(1024)
		n += len(names)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("count %s: %w", dir, err)
		}
	}
}
