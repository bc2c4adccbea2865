package bundle

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ShimState is what a bundle records for the `delete` action.
type ShimState struct {
	SandboxID string `json:"sandbox_id"`
	// ShimPid is the long-lived shim that served the container.
	ShimPid int `json:"shim_pid,omitempty"`
	// ShimStartTime is ShimPid's start time (/proc/<pid>/stat field 22,
	// clock ticks since boot): with it a reused pid is told apart.
	ShimStartTime uint64 `json:"shim_start_time,omitempty"`
	// ConfigPath is the container's runtime option ConfigPath, whose
	// state_dir holds the sandbox; empty for the shim's default config.
	ConfigPath string `json:"config_path,omitempty"`
}

// bootstrapFile is where containerd records the shim's bootstrap result
// (its socket address) in the bundle.
const bootstrapFile = "bootstrap.json"

// ShimAddress returns the socket address containerd recorded for the
// bundle's shim, or "" when there is none.
func ShimAddress(bundle string) string {
	b, err := os.ReadFile(filepath.Join(bundle, bootstrapFile))
	if err != nil {
		return ""
	}
	var r struct {
		Address string `json:"address"`
	}
	if json.Unmarshal(b, &r) != nil {
		return ""
	}
	return r.Address
}

// IsShimProcess reports whether pid is still the Veil shim that was
// recorded: it runs a Veil shim binary and, when startTime is known (not
// 0; older records lack it), started at startTime, so that a reused pid
// (maybe another pod's shim) is not mistaken for it.
func IsShimProcess(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	argv0, _, _ := strings.Cut(string(b), "\x00")
	if !strings.HasPrefix(filepath.Base(argv0), "containerd-shim-veil") {
		return false
	}
	return startTime == 0 || sameProcess(pid, startTime)
}

// sameProcess reports whether pid exists and started at startTime.
func sameProcess(pid int, startTime uint64) bool {
	got, err := ProcessStartTime(pid)
	return err == nil && got == startTime
}

// ProcessStartTime reads a process's start time: field 22 (starttime) of
// /proc/<pid>/stat.
func ProcessStartTime(pid int) (uint64, error) {
	path := filepath.Join("/proc", strconv.Itoa(pid), "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read process start time: %w", err)
	}
	t, err := parseStatStartTime(string(b))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return t, nil
}

// parseStatStartTime takes field 22 of a /proc/<pid>/stat line. The
// command (field 2) is in parentheses and may hold spaces and ')', so
// fields are counted after its last ')'.
func parseStatStartTime(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command field in %q", stat)
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	const idx = 22 - 3
	if len(fields) <= idx {
		return 0, fmt.Errorf("only %d fields after the command", len(fields))
	}
	t, err := strconv.ParseUint(fields[idx], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("starttime %q: %w", fields[idx], err)
	}
	return t, nil
}

// WriteShimState records st in the bundle, replacing the record at once.
func WriteShimState(bundle string, st ShimState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	path := filepath.Join(bundle, StateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write shim state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write shim state: %w", err)
	}
	return nil
}

// ReadShimState reads the record; a missing one is returned as an
// os.ErrNotExist error.
func ReadShimState(bundle string) (ShimState, error) {
	var st ShimState
	b, err := os.ReadFile(filepath.Join(bundle, StateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("parse shim state in %s: %w", bundle, err)
	}
	return st, nil
}
