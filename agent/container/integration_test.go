package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/stream"
	"github.com/veil-runtime/veil/test/integration"
)

// TestMain lets libcontainer re-execute this test binary as `init` inside
// the containers the integration test creates, and the manager as a pod
// holder.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
		return
	}
	if IsHolder() {
		RunHolder()
	}
	if os.Getenv(filterProbeEnv) != "" {
		os.Exit(filterProbe())
	}
	os.Exit(m.Run())
}

const busybox = "/bin/busybox"

// needHost gates a test on the integration gate (see test/integration):
// root and busybox-static.
func needHost(t *testing.T) {
	t.Helper()
	integration.Require(t, integration.Root, integration.File(busybox, "apt-get install busybox-static"))
}

// fixture is a Manager over a temporary shared dir and state root, with
// the streams fed from socket pairs.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	m      *Manager
	reg    *stream.Registry
	shared string
}

func newFixture(t *testing.T) *fixture {
	needHost(t)
	shared := t.TempDir()
	reg := stream.NewRegistry(time.Minute)
	t.Cleanup(reg.Close)
	m := NewManager(Config{StateRoot: t.TempDir(), SharedDir: shared, StreamTimeout: 5 * time.Second}, reg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, m: m, reg: reg, shared: shared}
	t.Cleanup(func() {
		// f.m: a test may have replaced the manager.
		if err := f.m.RemoveAll(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return f
}

// rootfs builds a busybox root filesystem for container id.
func (f *fixture) rootfs(id string) string {
	f.t.Helper()
	root := filepath.Join(f.shared, id, "rootfs")
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			f.t.Fatal(err)
		}
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		f.t.Fatal(err)
	}
	for _, a := range []string{"sh", "echo", "cat", "sleep", "tty", "stty", "head", "wc", "true"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			f.t.Fatal(err)
		}
	}
	return root
}

// spec returns runc's default spec running args.
func spec(t *testing.T, args ...string) []byte {
	s := specconv.Example()
	s.Process.Args = args
	s.Process.Env = []string{"PATH=/bin", "TERM=xterm"}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostEnds are the host side of a process's streams.
type hostEnds struct {
	stdin, stdout, stderr *net.UnixConn
}

// connect registers one socket pair per stream of sio and returns the
// host ends.
func (f *fixture) connect(id, execID string, sio Stdio) hostEnds {
	f.t.Helper()
	var h hostEnds
	add := func(s api.Stream) *net.UnixConn {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			f.t.Fatal(err)
		}
		conns := make([]*net.UnixConn, 2)
		for i, fd := range fds {
			file := os.NewFile(uintptr(fd), "stream")
			c, err := net.FileConn(file)
			_ = file.Close()
			if err != nil {
				f.t.Fatal(err)
			}
			conns[i] = c.(*net.UnixConn)
		}
		f.t.Cleanup(func() { _ = conns[0].Close(); _ = conns[1].Close() })
		if err := f.reg.Add(stream.Key{ContainerID: id, ExecID: execID, Stream: s}, conns[1]); err != nil {
			f.t.Fatal(err)
		}
		return conns[0]
	}
	if sio.Stdin {
		h.stdin = add(api.StreamStdin)
	}
	if sio.Stdout {
		h.stdout = add(api.StreamStdout)
	}
	if sio.Stderr {
		h.stderr = add(api.StreamStderr)
	}
	return h
}

// readAll collects a stream in the background.
func readAll(c net.Conn) <-chan string {
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(c)
		out <- string(b)
	}()
	return out
}

func (f *fixture) run(id string, sio Stdio, specJSON []byte) (hostEnds, int) {
	f.t.Helper()
	h := f.connect(id, "", sio)
	if err := f.m.Create(f.ctx, id, specJSON, CreateOptions{Rootfs: f.rootfs(id), Stdio: sio}); err != nil {
		f.t.Fatalf("create: %v", err)
	}
	pid, err := f.m.Start(f.ctx, id)
	if err != nil {
		f.t.Fatalf("start: %v", err)
	}
	if pid <= 0 {
		f.t.Fatalf("pid %d", pid)
	}
	return h, pid
}

func (f *fixture) wait(id, execID string) uint32 {
	f.t.Helper()
	e, err := f.m.Wait(f.ctx, id, execID)
	if err != nil {
		f.t.Fatalf("wait %s/%s: %v", id, execID, err)
	}
	if e.At.IsZero() {
		f.t.Fatal("no exit time")
	}
	return e.Status
}

func TestIntegrationProcesses(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		stdin      string
		sio        Stdio
		wantOut    string
		wantErr    string
		wantStatus uint32
	}{
		{name: "echo", args: []string{"echo", "hello"}, sio: Stdio{Stdout: true}, wantOut: "hello\n"},
		{name: "exit code 7 with stderr", args: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}, sio: Stdio{Stdout: true, Stderr: true}, wantOut: "out\n", wantErr: "err\n", wantStatus: 7},
		{name: "stdin echoed through cat", args: []string{"cat"}, stdin: "ping\nline two\n", sio: Stdio{Stdin: true, Stdout: true}, wantOut: "ping\nline two\n"},
		{name: "no streams", args: []string{"true"}},
		{name: "large output", args: []string{"head", "-c", "3000000", "/dev/zero"}, sio: Stdio{Stdout: true}, wantOut: strings.Repeat("\x00", 3000000)},
	}
	f := newFixture(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.t = t
			id := "proc" + string(rune('a'+i))
			h, _ := f.run(id, tc.sio, spec(t, tc.args...))
			var out, errOut <-chan string
			if h.stdout != nil {
				out = readAll(h.stdout)
			}
			if h.stderr != nil {
				errOut = readAll(h.stderr)
			}
			if h.stdin != nil {
				if _, err := h.stdin.Write([]byte(tc.stdin)); err != nil {
					t.Fatal(err)
				}
				if err := h.stdin.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			if st := f.wait(id, ""); st != tc.wantStatus {
				t.Fatalf("status %d, want %d", st, tc.wantStatus)
			}
			// Wait answered, so the output streams are complete.
			if out != nil {
				if got := <-out; got != tc.wantOut {
					t.Fatalf("stdout %q (%d bytes), want %q", trunc(got), len(got), trunc(tc.wantOut))
				}
			}
			if errOut != nil {
				if got := <-errOut; got != tc.wantErr {
					t.Fatalf("stderr %q, want %q", got, tc.wantErr)
				}
			}
			if err := f.m.Remove(f.ctx, id, false); err != nil {
				t.Fatalf("remove: %v", err)
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// TestIntegrationSeccomp checks that a seccomp profile is applied when the
// build supports it (-tags seccomp, as `make build` does) and dropped, not
// fatal, otherwise.
func TestIntegrationSeccomp(t *testing.T) {
	f := newFixture(t)
	s := specconv.Example()
	s.Process.Args = []string{"sh", "-c", "mkdir /dev/x"}
	s.Process.Env = []string{"PATH=/bin"}
	s.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	sio := Stdio{Stderr: true}
	h, _ := f.run("sc", sio, b)
	errOut := readAll(h.stderr)
	st := f.wait("sc", "")
	msg := <-errOut
	want := uint32(0)
	if seccomp.Enabled {
		want = 1
	}
	if st != want {
		t.Fatalf("mkdir status %d (stderr %q), want %d (seccomp enabled: %v)", st, msg, want, seccomp.Enabled)
	}
}

func TestIntegrationNoSuchCommand(t *testing.T) {
	f := newFixture(t)
	sio := Stdio{Stdout: true}
	f.connect("nocmd", "", sio)
	if err := f.m.Create(f.ctx, "nocmd", spec(t, "nosuchcmd"), CreateOptions{Rootfs: f.rootfs("nocmd"), Stdio: sio}); err != nil {
		t.Fatalf("create: %v", err)
	}
	_, err := f.m.Start(f.ctx, "nocmd")
	if err == nil || !strings.Contains(err.Error(), `"nosuchcmd"`) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("start error %v, want one naming nosuchcmd and saying not found", err)
	}
	t.Logf("start error: %v", err)
	if err := f.m.Remove(f.ctx, "nocmd", false); err != nil {
		t.Fatalf("remove: %v", err)
	}
}

func TestIntegrationMissingStream(t *testing.T) {
	f := newFixture(t)
	f.m.cfg.StreamTimeout = 200 * time.Millisecond
	err := f.m.Create(f.ctx, "nostream", spec(t, "true"), CreateOptions{Rootfs: f.rootfs("nostream"), Stdio: Stdio{Stdout: true}})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "stdout stream of container nostream") {
		t.Fatalf("create error %v, want FailedPrecondition naming the stdout stream", err)
	}
	// The failed create left nothing behind: the id is free again.
	f.m.cfg.StreamTimeout = 5 * time.Second
	f.connect("nostream", "", Stdio{Stdout: true})
	if err := f.m.Create(f.ctx, "nostream", spec(t, "true"), CreateOptions{Rootfs: f.rootfs("nostream2"), Stdio: Stdio{Stdout: true}}); err != nil {
		t.Fatalf("create again: %v", err)
	}
}

func TestIntegrationTerminal(t *testing.T) {
	f := newFixture(t)
	sio := Stdio{Stdin: true, Stdout: true, Terminal: true}
	h, _ := f.run("tty", sio, spec(t, "sh", "-c", "tty; read x; stty size"))
	out := readAll(h.stdout)
	// The shell blocks in read until we send a line; resize first.
	if err := f.m.Resize(f.ctx, "tty", "", 123, 45); err != nil {
		t.Fatalf("resize: %v", err)
	}
	if _, err := h.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if st := f.wait("tty", ""); st != 0 {
		t.Fatalf("status %d", st)
	}
	got := <-out
	if !strings.Contains(got, "/dev/pts/0") || !strings.Contains(got, "45 123") {
		t.Fatalf("terminal output %q, want /dev/pts/0 and size 45 123", got)
	}
	if err := f.m.Resize(f.ctx, "nonexistent", "", 1, 1); !errdefs.IsNotFound(err) {
		t.Fatalf("resize of unknown container: %v", err)
	}
}

func TestIntegrationExec(t *testing.T) {
	f := newFixture(t)
	_, initPid := f.run("ex", Stdio{}, spec(t, "sleep", "1000"))

	proc := func(args ...string) []byte {
		b, err := json.Marshal(specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sio := Stdio{Stdin: true, Stdout: true}
	h := f.connect("ex", "e1", sio)
	pid, err := f.m.Exec(f.ctx, "ex", "e1", proc("sh", "-c", "cat; echo from-exec; exit 3"), sio)
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	out := readAll(h.stdout)
	pids, err := f.m.Pids(f.ctx, "ex")
	if err != nil {
		t.Fatal(err)
	}
	if !contains(pids, initPid) || !contains(pids, pid) {
		t.Fatalf("pids %v lack init %d or exec %d", pids, initPid, pid)
	}
	if _, err := h.stdin.Write([]byte("in\n")); err != nil {
		t.Fatal(err)
	}
	if err := h.stdin.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if st := f.wait("ex", "e1"); st != 3 {
		t.Fatalf("exec status %d", st)
	}
	if got := <-out; got != "in\nfrom-exec\n" {
		t.Fatalf("exec output %q", got)
	}

	// CloseStdin ends a reader although the host never half-closed.
	h = f.connect("ex", "cat", sio)
	if _, err := f.m.Exec(f.ctx, "ex", "cat", proc("cat"), sio); err != nil {
		t.Fatalf("exec cat: %v", err)
	}
	out = readAll(h.stdout)
	if err := f.m.CloseStdin(f.ctx, "ex", "cat"); err != nil {
		t.Fatal(err)
	}
	if st := f.wait("ex", "cat"); st != 0 {
		t.Fatalf("cat status %d", st)
	}
	if got := <-out; got != "" {
		t.Fatalf("cat output %q", got)
	}

	// An exec with a terminal gets its own pty.
	tsio := Stdio{Stdout: true, Terminal: true}
	h = f.connect("ex", "tty", tsio)
	if _, err := f.m.Exec(f.ctx, "ex", "tty", proc("tty"), tsio); err != nil {
		t.Fatalf("exec tty: %v", err)
	}
	out = readAll(h.stdout)
	if st := f.wait("ex", "tty"); st != 0 {
		t.Fatalf("tty exec status %d", st)
	}
	if got := <-out; !strings.HasPrefix(got, "/dev/pts/") {
		t.Fatalf("tty exec output %q", got)
	}

	// A signalled exec reports 128+signal.
	if _, err := f.m.Exec(f.ctx, "ex", "sleeper", proc("sleep", "1000"), Stdio{}); err != nil {
		t.Fatalf("exec sleep: %v", err)
	}
	if err := f.m.Signal(f.ctx, "ex", "sleeper", syscall.SIGKILL, false); err != nil {
		t.Fatalf("signal exec: %v", err)
	}
	if st := f.wait("ex", "sleeper"); st != 137 {
		t.Fatalf("sleeper status %d, want 137", st)
	}

	// Errors callers rely on.
	if _, err := f.m.Exec(f.ctx, "ex", "e2", proc("nosuchcmd"), Stdio{}); err == nil || !strings.Contains(err.Error(), "nosuchcmd") {
		t.Fatalf("exec of a missing command: %v", err)
	}
	if _, err := f.m.Exec(f.ctx, "ex", "e3", []byte("{"), Stdio{}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("exec with bad JSON: %v", err)
	}
	if err := f.m.Remove(f.ctx, "ex", false); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("remove of a running container: %v", err)
	}

	// Concurrent waiters all see the kill.
	results := make(chan uint32, 2)
	for range 2 {
		go func() {
			e, err := f.m.Wait(f.ctx, "ex", "")
			if err != nil {
				t.Error(err)
			}
			results <- e.Status
		}()
	}
	if err := f.m.Signal(f.ctx, "ex", "", syscall.SIGKILL, true); err != nil {
		t.Fatalf("signal all: %v", err)
	}
	for range 2 {
		if st := <-results; st != 137 {
			t.Fatalf("init status %d, want 137", st)
		}
	}
	if err := f.m.Signal(f.ctx, "ex", "", syscall.SIGTERM, false); !errdefs.IsNotFound(err) {
		t.Fatalf("signal of exited init: %v", err)
	}
	if err := f.m.Remove(f.ctx, "ex", false); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := f.m.Pids(f.ctx, "ex"); !errdefs.IsNotFound(err) {
		t.Fatalf("pids after remove: %v", err)
	}
}

func TestIntegrationForceRemove(t *testing.T) {
	f := newFixture(t)
	h, _ := f.run("force", Stdio{Stdout: true}, spec(t, "sh", "-c", "echo up; exec sleep 1000"))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(h.stdout, buf); err != nil || !bytes.Equal(buf, []byte("up\n")) {
		t.Fatalf("read %q: %v", buf, err)
	}
	if err := f.m.Remove(f.ctx, "force", true); err != nil {
		t.Fatalf("force remove: %v", err)
	}
	if rest, err := io.ReadAll(h.stdout); err != nil || len(rest) != 0 {
		t.Fatalf("stdout after remove: %q %v", rest, err)
	}
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// announcingStreams reports every Take before delegating it.
type announcingStreams struct {
	StreamSource
	taking chan stream.Key
}

func (a announcingStreams) Take(ctx context.Context, key stream.Key) (net.Conn, error) {
	a.taking <- key
	return a.StreamSource.Take(ctx, key)
}

func execProc(t *testing.T, args ...string) []byte {
	b, err := json.Marshal(specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIntegrationExecRacesRemove removes a container while an exec waits
// for its streams: the exec must then run nothing.
func TestIntegrationExecRacesRemove(t *testing.T) {
	f := newFixture(t)
	taking := make(chan stream.Key, 1)
	f.m = NewManager(f.m.cfg, announcingStreams{StreamSource: f.reg, taking: taking})
	f.run("race", Stdio{}, spec(t, "sleep", "1000"))
	sio := Stdio{Stdout: true}
	errc := make(chan error, 1)
	go func() {
		_, err := f.m.Exec(f.ctx, "race", "e1", execProc(t, "sleep", "1000"), sio)
		errc <- err
	}()
	<-taking
	if err := f.m.Remove(f.ctx, "race", true); err != nil {
		t.Fatalf("force remove during exec: %v", err)
	}
	h := f.connect("race", "e1", sio)
	if err := <-errc; !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("exec after remove = %v, want FailedPrecondition saying the container was removed", err)
	}
	if rest, err := io.ReadAll(h.stdout); err != nil || len(rest) != 0 {
		t.Fatalf("exec stdout %q, %v; want closed without output", rest, err)
	}
}

// TestIntegrationExecRetryAndRemoveProcess retries a failed exec under the
// same id (its new connection must win) and removes exec records.
func TestIntegrationExecRetryAndRemoveProcess(t *testing.T) {
	f := newFixture(t)
	f.run("retry", Stdio{}, spec(t, "sleep", "1000"))
	sio := Stdio{Stdout: true}

	// A failed exec closes the connection the host opened for it.
	h := f.connect("retry", "e1", sio)
	if _, err := f.m.Exec(f.ctx, "retry", "e1", []byte("{"), sio); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("exec with bad JSON: %v", err)
	}
	if rest, err := io.ReadAll(h.stdout); err != nil || len(rest) != 0 {
		t.Fatalf("stdout of the failed exec %q, %v; want closed", rest, err)
	}
	// A connection left over from a failed request (here: never claimed)
	// loses to the retry's.
	f.connect("retry", "e1", sio)
	h = f.connect("retry", "e1", sio)
	if _, err := f.m.Exec(f.ctx, "retry", "e1", execProc(t, "echo", "retried"), sio); err != nil {
		t.Fatalf("retried exec: %v", err)
	}
	out := readAll(h.stdout)
	if st := f.wait("retry", "e1"); st != 0 {
		t.Fatalf("retried exec status %d", st)
	}
	if got := <-out; got != "retried\n" {
		t.Fatalf("retried exec output %q", got)
	}

	if _, err := f.m.Exec(f.ctx, "retry", "sleeper", execProc(t, "sleep", "1000"), Stdio{}); err != nil {
		t.Fatalf("exec sleep: %v", err)
	}
	cases := []struct {
		name   string
		execID string
		want   func(error) bool
	}{
		{name: "running exec refused", execID: "sleeper", want: errdefs.IsFailedPrecondition},
		{name: "init refused", execID: "", want: errdefs.IsInvalidArgument},
		{name: "unknown exec", execID: "nope", want: errdefs.IsNotFound},
		{name: "exited exec removed", execID: "e1", want: func(err error) bool { return err == nil }},
		{name: "removed exec is gone", execID: "e1", want: errdefs.IsNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.m.RemoveProcess(f.ctx, "retry", tc.execID); !tc.want(err) {
				t.Fatalf("RemoveProcess(%q) = %v", tc.execID, err)
			}
		})
	}
	if _, err := f.m.Wait(f.ctx, "retry", "e1"); !errdefs.IsNotFound(err) {
		t.Fatalf("wait of a removed exec: %v", err)
	}
}

// wantFrozen checks what the kernel says of pid's cgroup: frozen (v2's
// cgroup.events "frozen 1", v1's freezer.state FROZEN) or not.
func wantFrozen(pid int, want bool) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return err
	}
	var file, frozen string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case cgroups.IsCgroup2UnifiedMode() && parts[0] == "0":
			file, frozen = filepath.Join("/sys/fs/cgroup", parts[2], "cgroup.events"), "frozen 1"
		case !cgroups.IsCgroup2UnifiedMode() && slices.Contains(strings.Split(parts[1], ","), "freezer"):
			file, frozen = filepath.Join("/sys/fs/cgroup/freezer", parts[2], "freezer.state"), "FROZEN"
		}
	}
	if file == "" {
		return fmt.Errorf("no freezer cgroup for pid %d in %q", pid, b)
	}
	st, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if got := slices.Contains(strings.Split(strings.TrimSpace(string(st)), "\n"), frozen); got != want {
		return fmt.Errorf("pid %d: %s says %q, want frozen=%v", pid, file, st, want)
	}
	return nil
}

// TestIntegrationPause freezes a running container (the kernel reports
// its cgroup frozen): a second Pause and an exec are refused while it is
// paused, Resume thaws it (once; the cgroup is thawed), and a
// paused container can still be force-removed.
func TestIntegrationPause(t *testing.T) {
	f := newFixture(t)
	h, pid := f.run("frozen", Stdio{Stdout: true}, spec(t, "sh", "-c", "echo up; exec sleep 1000"))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(h.stdout, buf); err != nil || !bytes.Equal(buf, []byte("up\n")) {
		t.Fatalf("read %q: %v", buf, err)
	}
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{name: "resume of a running container", do: func() error { return f.m.Resume(f.ctx, "frozen") }, want: errdefs.ErrFailedPrecondition},
		{name: "pause", do: func() error { return f.m.Pause(f.ctx, "frozen") }},
		{name: "its processes frozen", do: func() error { return wantFrozen(pid, true) }},
		{name: "pause again", do: func() error { return f.m.Pause(f.ctx, "frozen") }, want: errdefs.ErrFailedPrecondition},
		{name: "exec while paused", do: func() error {
			_, err := f.m.Exec(f.ctx, "frozen", "x1", execProc(t, "/bin/true"), Stdio{})
			return err
		}, want: errdefs.ErrFailedPrecondition},
		{name: "resume", do: func() error { return f.m.Resume(f.ctx, "frozen") }},
		{name: "its processes thawed", do: func() error { return wantFrozen(pid, false) }},
		{name: "pause for the removal", do: func() error { return f.m.Pause(f.ctx, "frozen") }},
		{name: "force remove of a paused container", do: func() error { return f.m.Remove(f.ctx, "frozen", true) }},
		{name: "pause of a removed container", do: func() error { return f.m.Pause(f.ctx, "frozen") }, want: errdefs.ErrNotFound},
	}
	for _, s := range steps {
		err := s.do()
		if (s.want == nil && err != nil) || (s.want != nil && !errors.Is(err, s.want)) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
	}
}
