package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/integration"
)

// SandboxConfig skips t unless integration tests run (integration.Require
// with root and a way to run VMs), loads the
// Veil config ($VEIL_CONFIG, else the one make setup wrote) and points its
// state dir at a fresh, short temp dir (Unix socket paths are limited to
// 108 bytes). When t ends, the leak census (CheckLeaks) and an empty state
// dir are checked: every VM test that takes its config here gets the
// check.
func SandboxConfig(t testing.TB) *config.Config {
	t.Helper()
	integration.Require(t, integration.Root, integration.VM)
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
	cfg.StateDir = state
	// Registered first, so it runs last: after the test's own teardown,
	// the host must hold what it held before and the state dir be empty.
	CheckLeaks(t, CensusScope{StateDir: state})
	t.Cleanup(func() {
		// The start journal is the node's record, kept on purpose.
		for _, j := range []string{statedir.StartsFile, statedir.StartsFile + ".1"} {
			_ = os.Remove(filepath.Join(state, j))
		}
		if err := os.Remove(state); err != nil && !os.IsNotExist(err) {
			t.Errorf("state dir left behind: %v", err)
		}
	})
	return cfg
}

// WriteConfig writes cfg as a Veil config file dir/name, checks that it
// loads, and returns its path.
func WriteConfig(cfg *config.Config, dir, name string) (string, error) {
	b, err := toml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("encode veil config: %w", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", fmt.Errorf("write veil config: %w", err)
	}
	if _, err := config.Load(path); err != nil {
		return "", fmt.Errorf("veil config %s: %w", path, err)
	}
	return path, nil
}
