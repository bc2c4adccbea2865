package proc

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// orphan is a process that is not the test's child, like a helper that
// the warm pool's keeper started, seen from the shim: its parent shell
// exited, so it was reparented. It waits for a line on its stdin and
// writes "goodbye" to its log when it gets one (or EOF).
type orphan struct {
	pid int
	// release is its stdin: closing it lets the orphan exit.
	release *os.File
}

// startOrphan starts an orphan whose command line contains marker, with
// its pid in s.PidPath() and its output in s.LogPath(). With ignoreTerm
// it ignores SIGTERM. It returns once the orphan runs its script (its
// command line is in place). Cleanup lets it exit.
func startOrphan(t *testing.T, s Spec, marker string, ignoreTerm bool) *orphan {
	t.Helper()
	stdin, release, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ready.Close() }()
	t.Cleanup(func() { _ = release.Close() })
	trap := ""
	if ignoreTerm {
		trap = `trap "" TERM; `
	}
	// The orphan (inner shell) gets the pipes as fds 3 and 4 and names
	// marker as its $0; the outer shell records its pid and exits. read
	// is a builtin: the orphan is one process.
	inner := trap + `echo ready >&4; exec 4>&-; read x; echo goodbye`
	outer := `/bin/sh -c '` + inner + `' "$1" <&3 3<&- >>"$3" 2>&1 & echo $! >"$2"`
	cmd := exec.Command("/bin/sh", "-c", outer, "outer", marker, s.PidPath(), s.LogPath())
	cmd.ExtraFiles = []*os.File{stdin, readyW}
	err = cmd.Run()
	_ = stdin.Close()
	_ = readyW.Close()
	if err != nil {
		t.Fatalf("start orphan: %v", err)
	}
	if line, err := bufio.NewReader(ready).ReadString('\n'); line != "ready\n" {
		t.Fatalf("orphan: %q, %v", line, err)
	}
	b, err := os.ReadFile(s.PidPath())
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return &orphan{pid: pid, release: release}
}

// waitDone waits for p's Done, failing the test when ctx ends first.
func waitDone(ctx context.Context, t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatalf("Done not closed: %v", ctx.Err())
	}
}

func TestAdopt(t *testing.T) {
	cases := []struct {
		name       string
		ignoreTerm bool
		// end ends the adopted process.
		end func(ctx context.Context, p *Process, o *orphan) error
		// wantPidFile: the pid file stays (only Stop removes it).
		wantPidFile bool
		// wantLog is in ExitError when the orphan exited by itself.
		wantLog string
	}{
		{
			name: "stopped",
			end:  func(ctx context.Context, p *Process, _ *orphan) error { return p.Stop(ctx, 10*time.Second) },
		},
		{
			name:       "stopped, ignores SIGTERM",
			ignoreTerm: true,
			end:        func(ctx context.Context, p *Process, _ *orphan) error { return p.Stop(ctx, 50*time.Millisecond) },
		},
		{
			name:        "killed",
			end:         func(ctx context.Context, p *Process, _ *orphan) error { return p.Kill(ctx) },
			wantPidFile: true,
		},
		{
			name:        "exits by itself",
			end:         func(_ context.Context, _ *Process, o *orphan) error { return o.release.Close() },
			wantPidFile: true,
			wantLog:     "goodbye",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s := Spec{Name: "x", Dir: dir}
			o := startOrphan(t, s, filepath.Join(dir, "x"), tc.ignoreTerm)
			p, err := Adopt(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if p.Pid() != o.pid {
				t.Fatalf("Pid = %d, want %d", p.Pid(), o.pid)
			}
			select {
			case <-p.Done():
				t.Fatal("Done closed while the process runs")
			default:
			}
			ns, err := p.OpenNamespace("net")
			if err != nil {
				t.Fatalf("OpenNamespace while running: %v", err)
			}
			_ = ns.Close()

			if err := tc.end(ctx, p, o); err != nil {
				t.Fatal(err)
			}
			waitDone(ctx, t, p)
			if Matches(o.pid, dir) {
				t.Fatalf("pid %d still runs after Done", o.pid)
			}
			if _, err := os.Stat(s.PidPath()); (err == nil) != tc.wantPidFile {
				t.Errorf("pid file: %v, want it present: %v", err, tc.wantPidFile)
			}
			if err := p.Err(); err != nil {
				t.Errorf("Err = %v, want nil (status unknown)", err)
			}
			msg := p.ExitError().Error()
			for _, want := range []string{"x (pid " + strconv.Itoa(o.pid) + ")", "status unknown", tc.wantLog} {
				if !strings.Contains(msg, want) {
					t.Errorf("ExitError %q lacks %q", msg, want)
				}
			}
			if _, err := p.OpenNamespace("net"); !errors.Is(err, ErrExited) {
				t.Errorf("OpenNamespace after exit: %v, want ErrExited", err)
			}
			if err := p.Stop(ctx, time.Second); err != nil {
				t.Errorf("Stop after exit: %v", err)
			}
			if _, err := os.Stat(s.PidPath()); !os.IsNotExist(err) {
				t.Errorf("pid file left after Stop: %v", err)
			}
		})
	}
}

func TestAdoptRefused(t *testing.T) {
	cases := []struct {
		name string
		// setup prepares dir for Spec{Name: "x", Dir: dir}.
		setup   func(t *testing.T, s Spec) (pid int)
		wantErr []string
		// notExist: the error wraps os.ErrNotExist.
		notExist bool
	}{
		{
			name:     "no pid file",
			setup:    func(*testing.T, Spec) int { return 0 },
			wantErr:  []string{"x.pid"},
			notExist: true,
		},
		{
			name: "garbage pid file",
			setup: func(t *testing.T, s Spec) int {
				if err := os.WriteFile(s.PidPath(), []byte("not-a-pid\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return 0
			},
			wantErr: []string{"x.pid", "holds no pid"},
		},
		{
			name: "process of another sandbox",
			setup: func(t *testing.T, s Spec) int {
				return startOrphan(t, s, "/some/other/sandbox/x", false).pid
			},
			wantErr: []string{"not a running helper"},
		},
		{
			name: "dead pid",
			setup: func(t *testing.T, s Spec) int {
				cmd := exec.Command("/bin/sh", "-c", ":", filepath.Join(s.Dir, "x"))
				if err := cmd.Run(); err != nil {
					t.Fatal(err)
				}
				pid := cmd.Process.Pid
				if err := os.WriteFile(s.PidPath(), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return pid
			},
			wantErr: []string{"not a running helper"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Spec{Name: "x", Dir: t.TempDir()}
			pid := tc.setup(t, s)
			p, err := Adopt(context.Background(), s)
			if err == nil {
				t.Fatalf("Adopt = pid %d, want an error", p.Pid())
			}
			want := tc.wantErr
			if pid != 0 {
				want = append(want, "pid "+strconv.Itoa(pid), s.Dir)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if errors.Is(err, os.ErrNotExist) != tc.notExist {
				t.Errorf("error %q: wraps os.ErrNotExist = %v, want %v", err, !tc.notExist, tc.notExist)
			}
		})
	}
}

// TestAdoptRelease checks that a released process is left running and
// its pidfd closed.
func TestAdoptRelease(t *testing.T) {
	dir := t.TempDir()
	s := Spec{Name: "x", Dir: dir}
	o := startOrphan(t, s, filepath.Join(dir, "x"), false)
	p, err := Adopt(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
	p.Release()
	if !Matches(o.pid, dir) {
		t.Fatalf("released pid %d no longer runs", o.pid)
	}
	if fd := p.pidfd.Fd(); fd != ^uintptr(0) {
		t.Fatalf("pidfd %d still open after Release", fd)
	}
	if _, err := os.Stat(s.PidPath()); err != nil {
		t.Fatalf("pid file: %v", err)
	}
}
