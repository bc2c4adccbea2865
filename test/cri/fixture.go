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
