package harness

import (
	"os"
	"testing"

	"github.com/veil-runtime/veil/runtime/config"
)

// SandboxConfig skips t unless integration tests run (see Skip), loads the
// Veil config ($VEIL_CONFIG, else the one make setup wrote) and points its
// state dir at a fresh, short temp dir (Unix socket paths are limited to
// 108 bytes).
func SandboxConfig(t testing.TB) *config.Config {
	t.Helper()
	Skip(t)
	path := os.Getenv(config.EnvPath)
	if path == "" {
		path = ConfigPath()
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("%v (run make setup guest)", err)
	}
	state, err := os.MkdirTemp("", "veil-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(state) })
	cfg.StateDir = state
	return cfg
}
