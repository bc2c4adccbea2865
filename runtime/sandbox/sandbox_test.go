package sandbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// leftover starts a process whose command line names path, like a helper
// left behind by a crashed runtime.
func leftover(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	// "; :" keeps sh from exec'ing sleep, so path stays in the command line.
	cmd := exec.Command("/bin/sh", "-c", "sleep 100; :", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

func TestCleanup(t *testing.T) {
	cases := []struct {
		name string
		// setup fills the state dir; it returns the processes that must die
		// and those that must survive.
		setup       func(t *testing.T, cfg *config.Config) (die, live []*exec.Cmd)
		wantDirGone bool
	}{
		{
			name:        "nothing there",
			setup:       func(t *testing.T, cfg *config.Config) (die, live []*exec.Cmd) { return nil, nil },
			wantDirGone: true,
		},
		{
			name: "kills helpers and removes dir",
			setup: func(t *testing.T, cfg *config.Config) (die, live []*exec.Cmd) {
				dir := filepath.Join(cfg.StateDir, "sb1")
				mustMkdir(t, filepath.Join(dir, "shared", "c1", "rootfs"))
				for _, name := range []string{"qemu", "virtiofsd"} {
					c := leftover(t, filepath.Join(dir, name+".sock"))
					writePid(t, filepath.Join(dir, name+".pid"), c.Process.Pid)
					die = append(die, c)
				}
				return die, nil
			},
			wantDirGone: true,
		},
		{
			name: "recorded network namespace already gone",
			setup: func(t *testing.T, cfg *config.Config) (die, live []*exec.Cmd) {
				dir := filepath.Join(cfg.StateDir, "sb1")
				mustMkdir(t, dir)
				if err := os.WriteFile(filepath.Join(dir, statedir.NetNSFile), []byte("/run/netns/veil-no-such-ns\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return nil, nil
			},
			wantDirGone: true,
		},
		{
			name: "share left mounted by a crash",
			setup: func(t *testing.T, cfg *config.Config) (die, live []*exec.Cmd) {
				if os.Geteuid() != 0 {
					t.Skip("needs root (mounts)")
				}
				d, err := statedir.New(cfg.StateDir, "sb1")
				if err != nil {
					t.Fatal(err)
				}
				if err := statedir.Create(d); err != nil {
					t.Fatal(err)
				}
				sh, err := statedir.CreateShare(context.Background(), d)
				if err != nil {
					t.Fatal(err)
				}
				_ = sh.Close()
				if m, _ := statedir.HostMounts(d); len(m) < 3 {
					t.Fatalf("share mounts: %q", m)
				}
				t.Cleanup(func() {
					if m, _ := statedir.HostMounts(d); len(m) > 0 {
						t.Errorf("mounts left: %q", m)
					}
				})
				return nil, nil
			},
			wantDirGone: true,
		},
		{
			name: "spares a recycled pid of another sandbox with a prefix id",
			setup: func(t *testing.T, cfg *config.Config) (die, live []*exec.Cmd) {
				dir := filepath.Join(cfg.StateDir, "sb1")
				mustMkdir(t, dir)
				c := leftover(t, filepath.Join(cfg.StateDir, "sb10", "qmp.sock"))
				writePid(t, filepath.Join(dir, "qemu.pid"), c.Process.Pid)
				return nil, []*exec.Cmd{c}
			},
			wantDirGone: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.StateDir = t.TempDir()
			die, live := tc.setup(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := Cleanup(ctx, cfg, "sb1"); err != nil {
				t.Fatal(err)
			}
			for _, c := range die {
				exited := make(chan struct{})
				go func() { _ = c.Wait(); close(exited) }()
				select {
				case <-exited:
				case <-ctx.Done():
					t.Fatalf("pid %d survived Cleanup", c.Process.Pid)
				}
			}
			for _, c := range live {
				if err := syscall.Kill(c.Process.Pid, 0); err != nil {
					t.Fatalf("pid %d of another sandbox was killed", c.Process.Pid)
				}
			}
			if _, err := os.Stat(filepath.Join(cfg.StateDir, "sb1")); tc.wantDirGone && !os.IsNotExist(err) {
				t.Fatalf("state dir left: %v", err)
			}
			// Idempotent.
			if err := Cleanup(ctx, cfg, "sb1"); err != nil {
				t.Fatalf("second Cleanup: %v", err)
			}
		})
	}
}

func TestCleanupRejectsBadID(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	if err := Cleanup(context.Background(), cfg, "../etc"); err == nil {
		t.Fatal("want error for id escaping the state dir")
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writePid(t *testing.T, p string, pid int) {
	t.Helper()
	if err := os.WriteFile(p, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
