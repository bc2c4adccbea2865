package inspect

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fakeHelper is a helper process of a fixture sandbox.
type fakeHelper struct {
	name  string
	pid   int
	alive bool // a /proc entry whose cmdline names the sandbox dir
}

// fixture is a fake state dir and /proc.
type fixture struct {
	stateDir, procRoot string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{stateDir: filepath.Join(root, "sandboxes"), procRoot: filepath.Join(root, "proc")}
	for _, d := range []string{f.stateDir, f.procRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) reader() *Reader { return &Reader{StateDir: f.stateDir, ProcRoot: f.procRoot} }

// sandbox creates sandbox id's directory with helpers, containers and,
// with sock, a listening vsock.sock (closed at the end of the test).
func (f *fixture) sandbox(t *testing.T, id string, helpers []fakeHelper, containers []string, sock bool) string {
	t.Helper()
	return f.sandboxAt(t, filepath.Join(f.stateDir, id), helpers, containers, sock)
}

// poolVM creates the directory of warm pool VM vmid, as sandbox does a
// sandbox's; with id, it links sandbox id to it as a claim does.
func (f *fixture) poolVM(t *testing.T, vmid, id string, helpers []fakeHelper, containers []string, sock bool) string {
	t.Helper()
	dir := f.sandboxAt(t, filepath.Join(f.stateDir, ".pool", vmid), helpers, containers, sock)
	if id != "" {
		must(t, os.Symlink(".pool/"+vmid, filepath.Join(f.stateDir, id)))
	}
	return dir
}

// sandboxAt makes a sandbox directory at dir (see sandbox).
func (f *fixture) sandboxAt(t *testing.T, dir string, helpers []fakeHelper, containers []string, sock bool) string {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "shared"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "console.log"), []byte("boot\nagent serving\n"), 0o640))
	for _, c := range containers {
		must(t, os.MkdirAll(filepath.Join(dir, "shared", c, "rootfs"), 0o755))
	}
	for _, h := range helpers {
		must(t, os.WriteFile(filepath.Join(dir, h.name+".pid"), []byte(strconv.Itoa(h.pid)+"\n"), 0o640))
		must(t, os.WriteFile(filepath.Join(dir, h.name+".log"), nil, 0o640))
		cmdline := "/usr/bin/" + h.name + "\x00--other\x00/elsewhere/x"
		if h.alive {
			cmdline = "/usr/bin/" + h.name + "\x00--socket\x00" + dir + "/x.sock"
		}
		f.proc(t, h.pid, cmdline)
	}
	if sock {
		l, err := net.Listen("unix", filepath.Join(dir, "vsock.sock"))
		must(t, err)
		t.Cleanup(func() { _ = l.Close() })
	}
	return dir
}

// proc writes a /proc/<pid> entry with cmdline, status and stat.
func (f *fixture) proc(t *testing.T, pid int, cmdline string) {
	t.Helper()
	d := filepath.Join(f.procRoot, strconv.Itoa(pid))
	must(t, os.MkdirAll(d, 0o755))
	must(t, os.WriteFile(filepath.Join(d, "cmdline"), []byte(cmdline), 0o644))
	must(t, os.WriteFile(filepath.Join(d, "status"), []byte(fmt.Sprintf("Name:\tx\nPid:\t%d\nVmRSS:\t   2048 kB\nThreads:\t3\n", pid)), 0o644))
	// utime 250 ticks, stime 50 ticks; the name holds a space and a ')'.
	must(t, os.WriteFile(filepath.Join(d, "stat"), []byte(fmt.Sprintf("%d (a b) c) S 1 1 1 0 -1 0 0 0 0 0 250 50 0 0 20 0 3 0\n", pid)), 0o644))
	// Three open descriptors.
	for _, fd := range []string{"0", "1", "2"} {
		must(t, os.MkdirAll(filepath.Join(d, "fd"), 0o755))
		must(t, os.WriteFile(filepath.Join(d, "fd", fd), nil, 0o644))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
