package inspect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// busybox is the host's static busybox (busybox-static).
const busybox = "/bin/busybox"

// installBusybox copies the host's static busybox into a tools directory
// with links for the commands the test runs, shows it to the guest
// through the share as the root filesystem of a pseudo container
// "tools", and returns its guest path.
func installBusybox(ctx context.Context, t *testing.T, share *statedir.Share) string {
	t.Helper()
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"uname", "sh", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := share.AddContainer(ctx, "tools", statedir.ContainerFS{BundleRootfs: dir}); err != nil {
		t.Fatal(err)
	}
	return statedir.GuestRootfs("tools")
}

// bootTimeout bounds sandbox.Start beyond the config's own timeouts.
const bootTimeout = 90 * time.Second

// TestRunningSandbox boots one sandbox VM and inspects it the way the
// veil CLI does: list, DebugExec (`veil sandbox exec ID -- uname -r`),
// Stats (`veil sandbox metrics`), VM info, and several agent connections
// besides the sandbox's own.
func TestRunningSandbox(t *testing.T) {
	integration.Require(t, integration.File(busybox, "apt-get install busybox-static"))
	cfg := harness.SandboxConfig(t)

	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	const id = "inspect-test"
	s, err := sandbox.Start(ctx, id, cfg, sandbox.Options{Hostname: "inspect-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := s.Stop(sctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	h, err := s.Agent().Health(ctx, &api.HealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	r := &Reader{StateDir: cfg.StateDir, ProcRoot: "/proc"}

	t.Run("list", func(t *testing.T) {
		sbs, err := r.List()
		if err != nil || len(sbs) != 1 {
			t.Fatalf("%+v, %v", sbs, err)
		}
		sb := sbs[0]
		if sb.ID != id || sb.State != StateRunning || sb.VMMPid != s.Pids()[sb.Hypervisor] {
			t.Fatalf("%+v, sandbox pids %v", sb, s.Pids())
		}
		for _, hp := range sb.Helpers {
			if !hp.Alive {
				t.Errorf("helper %s (pid %d) not alive", hp.Name, hp.Pid)
			}
		}
	})
	t.Run("several agent connections", func(t *testing.T) {
		var agents []Agent
		defer func() {
			for _, a := range agents {
				_ = a.Close()
			}
		}()
		for range 2 {
			a, err := DialAgent(ctx, s.Dir())
			if err != nil {
				t.Fatal(err)
			}
			agents = append(agents, a)
		}
		for i, a := range agents {
			if _, err := a.Stats(ctx, &api.StatsRequest{}); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		}
		if _, err := s.Agent().Health(ctx, &api.HealthRequest{}); err != nil {
			t.Fatalf("the sandbox's own connection after ours: %v", err)
		}
	})

	// Put a static busybox into the share and on the debug process's
	// PATH.
	tools := installBusybox(ctx, t, s.Share())
	cases := []struct {
		name   string
		opts   ExecOptions
		status uint32
		out    string
		errOut string
	}{
		{name: "uname -r", opts: ExecOptions{Argv: []string{"uname", "-r"}, Env: []string{"PATH=" + tools}}, out: h.KernelRelease + "\n"},
		{name: "exit status and stderr", opts: ExecOptions{Argv: []string{"sh", "-c", "echo oops >&2; exit 3"}, Env: []string{"PATH=" + tools}}, status: 3, errOut: "oops\n"},
		{name: "outside any container", opts: ExecOptions{Argv: []string{"cat", "/proc/1/cmdline"}, Env: []string{"PATH=" + tools}}, out: "/init"},
	}
	for _, tc := range cases {
		t.Run("exec "+tc.name, func(t *testing.T) {
			tc.opts.Timeout = 10 * time.Second
			resp, err := r.Exec(ctx, id, DialAgent, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%q: status %d stdout %q stderr %q", tc.opts.Argv, resp.ExitStatus, resp.Stdout, resp.Stderr)
			if resp.ExitStatus != tc.status || !strings.HasPrefix(string(resp.Stdout), tc.out) || string(resp.Stderr) != tc.errOut {
				t.Fatalf("want status %d stdout %q stderr %q", tc.status, tc.out, tc.errOut)
			}
		})
	}
	t.Run("metrics", func(t *testing.T) {
		m, err := r.Metrics(ctx, id, DialAgent)
		if err != nil {
			t.Fatal(err)
		}
		if m.Guest == nil {
			t.Fatalf("no guest stats: %s", m.GuestError)
		}
		g := m.Guest
		t.Logf("guest: mem %d/%d cpu %+v load %.2f uptime %.1fs; counters: %s", g.MemoryAvailableBytes, g.MemoryTotalBytes, g.Cpu, g.Load1, g.UptimeSeconds, m.CountersError)
		if g.MemoryTotalBytes == 0 || g.MemoryTotalBytes > uint64(cfg.Guest.MemoryMiB)<<20 || g.UptimeSeconds <= 0 || g.Cpu.Online != cfg.Guest.VCPUs {
			t.Errorf("guest stats %+v", g)
		}
		for _, hu := range m.Host {
			if hu.Usage == nil || hu.Usage.RSSBytes == 0 {
				t.Errorf("host %s: %+v %s", hu.Name, hu.Usage, hu.Error)
			}
		}
	})
	t.Run("vm info", func(t *testing.T) {
		info, err := r.VMInfo(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if info.State != "running" && info.State != "Running" {
			t.Fatalf("%+v", info)
		}
	})
}
