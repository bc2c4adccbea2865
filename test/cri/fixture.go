package cri

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/criimage"
	"github.com/veil-runtime/veil/test/harness"
)

// Fixture is a private containerd in CRI mode (ctr reaches the same
// daemon) with a CRI client, busybox pulled, and a Veil config of the
// test's own. It is the one CRI fixture of the CRI and torture suites.
type Fixture struct {
	// Ctx is cancelled when the test ends.
	Ctx    context.Context
	C      *harness.Containerd
	Client *Client
	// Config is the Veil config the veil handler runs with, written to
	// ConfigPath; StateDir is its state_dir.
	Config     *config.Config
	ConfigPath string
	StateDir   string
	// Logs is the pods' log directory.
	Logs string
	// Pool is the warm pool's daemon when the config turns the pool on
	// (WarmPool), nil otherwise.
	Pool *harness.Pool
}

// WarmPool turns the warm pool on with size VMs of one NIC (a CRI pod's
// eth0), its socket beside the state dir; NewFixture then runs its
// daemon.
func WarmPool(size int) func(*config.Config) {
	return func(cfg *config.Config) {
		cfg.Pool.Size, cfg.Pool.NICs, cfg.Pool.Socket = size, 1, cfg.StateDir+"-pool.sock"
	}
}

// startPool runs the pool daemon from after containerd's leak census to
// before its last one, and waits until the pool is full.
func (f *Fixture) startPool(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.Ctx, 2*time.Minute)
	defer cancel()
	p, err := harness.StartPool(ctx, f.ConfigPath, filepath.Join(filepath.Dir(f.ConfigPath), "pool.log"))
	if err != nil {
		t.Fatal(err)
	}
	f.Pool = p
	// Registered after containerd's stop, so it runs first; a test may
	// have replaced the daemon (f.Pool).
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(f.Ctx), time.Minute)
		defer cancel()
		if err := f.Pool.Stop(sctx); err != nil {
			t.Errorf("stop the pool: %v", err)
		}
		if left := harness.PoolDirs(f.StateDir); len(left) > 0 {
			t.Errorf("pool VMs left after the daemon stopped: %q", left)
		}
	})
	if err := p.Wait(ctx, f.Config.Pool.Size); err != nil {
		t.Fatal(err)
	}
}

// WaitPoolFull waits, when the pool is on, until it holds pool.size
// ready VMs.
func (f *Fixture) WaitPoolFull(t testing.TB) {
	t.Helper()
	if f.Pool == nil {
		return
	}
	ctx, cancel := context.WithTimeout(f.Ctx, 2*time.Minute)
	defer cancel()
	if err := f.Pool.Wait(ctx, f.Config.Pool.Size); err != nil {
		t.Fatal(err)
	}
}

// CheckWarm fails t when the pool is on and sandbox id did not start
// from it.
func (f *Fixture) CheckWarm(t testing.TB, id string) {
	t.Helper()
	if f.Pool == nil {
		return
	}
	if warm, err := harness.IsWarm(f.StateDir, id); err != nil || !warm {
		t.Fatalf("sandbox %s started cold with the warm pool on (%v)", id, err)
	}
}

// NewFixture starts the containerd; Cleanup stops it (the harness's own
// leak census runs there) and, when t failed, logs what logOnFailure says
// of containerd's log (nil: nothing). tune adjusts the Veil config. It
// skips unless integration tests run (harness.SandboxConfig).
func NewFixture(t testing.TB, logOnFailure func(logPath string) string, tune ...func(*config.Config)) *Fixture {
	t.Helper()
	cfg := harness.SandboxConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	base := t.TempDir()
	f := &Fixture{Ctx: ctx, Config: cfg, Logs: filepath.Join(base, "logs")}
	if err := os.MkdirAll(f.Logs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, fn := range tune {
		fn(cfg)
	}
	f.StateDir = cfg.StateDir
	var err error
	if f.ConfigPath, err = harness.WriteConfig(cfg, base, "veil.toml"); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	defer scancel()
	c, err := harness.Start(sctx, harness.Options{
		CRI:      &harness.CRIOptions{VeilConfig: f.ConfigPath},
		Env:      []string{config.EnvPath + "=" + f.ConfigPath},
		StateDir: cfg.StateDir,
	})
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	f.C = c
	t.Cleanup(func() {
		if t.Failed() && logOnFailure != nil {
			t.Logf("containerd log %s:\n%s", c.LogPath, logOnFailure(c.LogPath))
		}
		if err := c.Stop(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	if cfg.Pool.Size > 0 {
		f.startPool(t)
	}
	if f.Client, err = New(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Client.Close() })
	pctx, pcancel := context.WithTimeout(ctx, time.Minute)
	defer pcancel()
	if _, err := f.Client.Pull(pctx, criimage.Busybox, nil); err != nil {
		t.Fatal(err)
	}
	return f
}
