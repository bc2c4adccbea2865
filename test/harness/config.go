package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pelletier/go-toml/v2"

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
	t.Cleanup(func() { _ = os.Remove(state) })
	cfg.StateDir = state
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
