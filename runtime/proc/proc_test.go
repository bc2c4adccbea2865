package proc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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

// startMarked starts a process whose command line contains marker ($0 of
// the shell), not as a proc.Process, like a helper left by a dead runtime.
func startMarked(t *testing.T, marker string) *exec.Cmd {
	t.Helper()
	// "; :" keeps sh from exec'ing sleep, so the marker stays in argv.
	cmd := exec.Command("/bin/sh", "-c", "sleep 100; :", marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

func TestKillFromPidFile(t *testing.T) {
	cases := []struct {
		name       string
		pidFile    func(t *testing.T, marker string) (content string, victim *exec.Cmd)
		wantKilled bool
	}{
		{
			name: "matching process is killed",
			pidFile: func(t *testing.T, marker string) (string, *exec.Cmd) {
				c := startMarked(t, marker)
				return strconv.Itoa(c.Process.Pid), c
			},
			wantKilled: true,
		},
		{
			name: "recycled pid of another program is spared",
			pidFile: func(t *testing.T, marker string) (string, *exec.Cmd) {
				c := startMarked(t, "/some/other/sandbox")
				return strconv.Itoa(c.Process.Pid), c
			},
		},
		{
			name:    "dead pid is fine",
			pidFile: func(t *testing.T, marker string) (string, *exec.Cmd) { return "999999999", nil },
		},
		{
			name:    "garbage pid file is removed",
			pidFile: func(t *testing.T, marker string) (string, *exec.Cmd) { return "not-a-pid", nil },
		},
		{
			name:    "pid 1 is never killed",
			pidFile: func(t *testing.T, marker string) (string, *exec.Cmd) { return "1", nil },
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
			exited := make(chan struct{})
			go func() { victim.Wait(); close(exited) }()
			if tc.wantKilled {
				select {
				case <-exited:
				case <-ctx.Done():
					t.Fatal("matching process still runs")
				}
				return
			}
			if err := syscall.Kill(victim.Process.Pid, 0); err != nil {
				t.Fatalf("spared process is gone: %v", err)
			}
		})
	}
	if err := KillFromPidFile(context.Background(), filepath.Join(t.TempDir(), "absent.pid"), "x"); err != nil {
		t.Fatalf("missing pid file: %v", err)
	}
}
