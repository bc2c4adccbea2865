package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/moby/sys/mountinfo"
	"github.com/moby/sys/reexec"
)

// Main is the TestMain of test binaries that use a sandbox's share
// (runtime/statedir): the binary serves as the share's mount namespace
// helper when it is re-executed as one, and runs the tests otherwise.
func Main(m *testing.M) {
	if reexec.Init() {
		return
	}
	os.Exit(m.Run())
}

// WriteFile writes data to p, making its directories, or fails t.
func WriteFile(t testing.TB, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// MountsOf lists the mounts of process pid's mount namespace, as
// /proc/<pid>/mountinfo shows them (mount points relative to its root),
// or fails t.
func MountsOf(t testing.TB, pid int) []*mountinfo.Info {
	t.Helper()
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	ms, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}
