package proc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartStop(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	p, err := Start(ctx, Spec{Name: "sleeper", Dir: dir, Path: "/bin/sh", Args: []string{"-c", "echo started; exec sleep 100"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "sleeper.pid"))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(p.Pid()) {
		t.Fatalf("pid file = %q, %v; want %d", b, err, p.Pid())
	}
	if err := p.Stop(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(ctx, 5*time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sleeper.pid")); !os.IsNotExist(err) {
		t.Fatalf("pid file left: %v", err)
	}
	if err := syscall.Kill(p.Pid(), 0); err == nil {
		t.Fatalf("pid %d still exists", p.Pid())
	}
}

func TestExitErrorHasLogTail(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(context.Background(), Spec{Name: "crasher", Dir: dir, Path: "/bin/sh", Args: []string{"-c", "echo line1; echo boom >&2; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	msg := p.ExitError().Error()
	for _, want := range []string{"crasher", "exit status 3", "line1", "boom"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ExitError %q lacks %q", msg, want)
		}
	}
}

func TestTail(t *testing.T) {
	cases := []struct {
		name, content string
		n             int
		want          string
	}{
		{name: "fewer lines than n", content: "a\nb\n", n: 5, want: "a\nb"},
		{name: "last n lines", content: "a\nb\nc\nd\n", n: 2, want: "c\nd"},
		{name: "no trailing newline", content: "a\nb", n: 1, want: "b"},
		{name: "empty", content: "", n: 3, want: "(log empty)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.log")
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := Tail(p, tc.n); got != tc.want {
				t.Fatalf("Tail = %q, want %q", got, tc.want)
			}
		})
	}
}

// marked is a process started outside proc.Process, like a helper left by
// a dead runtime. One goroutine waits for it; exited is closed after.
type marked struct {
	pid    int
	exited chan struct{}
}

// startMarked starts a process whose command line contains marker ($0 of
// the shell), in its own process group. Cleanup kills the group and waits
// for the single waiter.
func startMarked(t *testing.T, marker string) *marked {
	t.Helper()
	// "; :" keeps sh from exec'ing sleep, so the marker stays in argv.
	cmd := exec.Command("/bin/sh", "-c", "sleep 100; :", marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &marked{pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-m.pid, syscall.SIGKILL)
		<-m.exited
	})
	// Start returns once the exec began (the child's close-on-exec pipe
	// closed), but the kernel sets up the new argv a moment later: until
	// then /proc/<pid>/cmdline reads empty. Seen under load.
	deadline := time.Now().Add(10 * time.Second)
	for !Matches(m.pid, marker) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never showed its command line", m.pid)
		}
		runtime.Gosched()
	}
	return m
}

func TestKillFromPidFile(t *testing.T) {
	cases := []struct {
		name       string
		pidFile    func(t *testing.T, marker string) (content string, victim *marked)
		wantKilled bool
	}{
		{
			name: "matching process is killed",
			pidFile: func(t *testing.T, marker string) (string, *marked) {
				c := startMarked(t, marker)
				return strconv.Itoa(c.pid), c
			},
			wantKilled: true,
		},
		{
			name: "recycled pid of another program is spared",
			pidFile: func(t *testing.T, marker string) (string, *marked) {
				c := startMarked(t, "/some/other/sandbox")
				return strconv.Itoa(c.pid), c
			},
		},
		{
			name:    "dead pid is fine",
			pidFile: func(t *testing.T, marker string) (string, *marked) { return "999999999", nil },
		},
		{
			name:    "garbage pid file is removed",
			pidFile: func(t *testing.T, marker string) (string, *marked) { return "not-a-pid", nil },
		},
		{
			name:    "pid 1 is never killed",
			pidFile: func(t *testing.T, marker string) (string, *marked) { return "1", nil },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			content, victim := tc.pidFile(t, dir)
			pidPath := filepath.Join(dir, "x.pid")
			if err := os.WriteFile(pidPath, []byte(content+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := KillFromPidFile(ctx, pidPath, dir); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(pidPath); !os.IsNotExist(err) {
				t.Errorf("pid file left: %v", err)
			}
			if victim == nil {
				return
			}
			if tc.wantKilled {
				select {
				case <-victim.exited:
				case <-ctx.Done():
					t.Fatal("matching process still runs")
				}
				return
			}
			if err := syscall.Kill(victim.pid, 0); err != nil {
				t.Fatalf("spared process is gone: %v", err)
			}
		})
	}
	if err := KillFromPidFile(context.Background(), filepath.Join(t.TempDir(), "absent.pid"), "x"); err != nil {
		t.Fatalf("missing pid file: %v", err)
	}
}

// TestStrayChildrenKilledWithLeader checks that what the helper left in
// its process group dies when the helper's exit is seen, before the reap.
func TestStrayChildrenKilledWithLeader(t *testing.T) {
	cases := []struct {
		name string
		// then is what the leader does after it started its child.
		then string
		// stop ends the leader, if it does not exit by itself.
		stop func(ctx context.Context, p *Process) error
	}{
		{name: "leader exits by itself", then: "exit 0"},
		{
			name: "leader stopped, child ignores SIGTERM",
			then: "exec sleep 100",
			stop: func(ctx context.Context, p *Process) error { return p.Stop(ctx, 10*time.Second) },
		},
		{
			name: "leader killed",
			then: "exec sleep 100",
			stop: func(ctx context.Context, p *Process) error { return p.Kill(ctx) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = r.Close() }()
			// The child ignores SIGTERM and names dir in its argv; the leader
			// reports the child's pid on fd 3.
			script := fmt.Sprintf(`/bin/sh -c 'trap "" TERM; sleep 100; :' %s 3>&- & echo $! >&3; exec 3>&-; %s`, dir, tc.then)
			p, err := Start(ctx, Spec{Name: "leader", Dir: dir, Path: "/bin/sh", Args: []string{"-c", script}, ExtraFiles: []*os.File{w}})
			_ = w.Close()
			if err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(r).ReadString('\n')
			if err != nil {
				t.Fatalf("read child pid: %v", err)
			}
			child, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if Matches(child, dir) {
					_ = syscall.Kill(child, syscall.SIGKILL)
				}
			})
			if tc.stop != nil {
				if err := tc.stop(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-p.Done():
			case <-ctx.Done():
				t.Fatal("leader did not exit")
			}
			// The child is no child of ours: /proc is all there is to watch.
			if err := waitGone(ctx, child, Owner{Marker: dir}); err != nil {
				t.Fatalf("stray child %d survived its leader: %v", child, err)
			}
		})
	}
}

// witness is a process in its own group that answers "alive" on its
// pipe to every SIGUSR1, so a test can tell without timing whether it was
// signalled: a killed witness closes the pipe instead.
type witness struct {
	pid     int
	answers *bufio.Reader
}

func startWitness(t *testing.T) *witness {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	// Only the shell holds fd 3: its sleeps get 3>&-.
	script := `trap 'echo alive >&3' USR1; echo ready >&3; while :; do sleep 100 3>&- & wait; done`
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	wt := &witness{pid: cmd.Process.Pid, answers: bufio.NewReader(r)}
	if line, err := wt.answers.ReadString('\n'); line != "ready\n" {
		t.Fatalf("witness: %q, %v", line, err)
	}
	return wt
}

// alive reports whether the witness still answers; any signal that ended
// it was sent before this call's SIGUSR1, and SIGKILL or SIGTERM win over
// it, so the answer is exact.
func (w *witness) alive(t *testing.T) bool {
	t.Helper()
	if err := syscall.Kill(w.pid, syscall.SIGUSR1); err != nil {
		return false
	}
	line, err := w.answers.ReadString('\n')
	return err == nil && line == "alive\n"
}

// TestReapedProcessIsNotSignalled checks that a Process whose leader was
// reaped never signals its former group id: that number may now be the
// group of an unrelated process (here: victim, standing for another
// sandbox's helper that got the recycled pid).
func TestReapedProcessIsNotSignalled(t *testing.T) {
	cases := []struct {
		name string
		op   func(ctx context.Context, p *Process) error
	}{
		{name: "Kill", op: func(ctx context.Context, p *Process) error { return p.Kill(ctx) }},
		{name: "Stop", op: func(ctx context.Context, p *Process) error { return p.Stop(ctx, time.Second) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := startWitness(t)
			if !victim.alive(t) {
				t.Fatal("witness does not answer")
			}
			done := make(chan struct{})
			close(done)
			p := &Process{spec: Spec{Name: "reaped", Dir: dir}, pid: victim.pid, done: done, reaped: true}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tc.op(ctx, p); err != nil {
				t.Fatal(err)
			}
			if !victim.alive(t) {
				t.Fatalf("%s signalled the recycled group %d", tc.name, victim.pid)
			}
		})
	}
}
