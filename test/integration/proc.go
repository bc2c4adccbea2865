package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ShimPid finds the containerd shim (Veil's or runc's) serving sandbox
// or task id, by its command line (containerd-shim-* ... -id <id>); 0
// when there is none.
func ShimPid(id string) int {
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim-") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-id" && args[i+1] == id {
				return pid
			}
		}
	}
	return 0
}

// Eventually polls check every 100 ms until it returns nil, and fails t
// with what and check's last error when d passes first. Use it only where
// there is no event to wait on (the host's state, a log file).
func Eventually(t testing.TB, what string, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		<-tick.C
	}
}
