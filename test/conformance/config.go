package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/harness"
)

// writeVeilConfig writes the Veil config the veil handler runs with: the
// one `make setup` wrote ($VEIL_CONFIG when set), whose
// volumes.allowed_host_paths also allows the temporary directory, where
// critest makes the host paths of its volume specs (os.MkdirTemp). On a
// node that would be the kubelet's directories.
func writeVeilConfig(dir string) (string, error) {
	src := os.Getenv(config.EnvPath)
	if src == "" {
		src = harness.ConfigPath()
	}
	cfg, err := config.Load(src)
	if err != nil {
		return "", fmt.Errorf("veil config: %w (run make setup)", err)
	}
	cfg.Volumes.AllowedHostPaths = append(cfg.Volumes.AllowedHostPaths, filepath.Clean(os.TempDir()))
	b, err := toml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("encode veil config: %w", err)
	}
	path := filepath.Join(dir, "veil-config.toml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", fmt.Errorf("write veil config: %w", err)
	}
	if _, err := config.Load(path); err != nil {
		return "", fmt.Errorf("veil config %s: %w", path, err)
	}
	return path, nil
}
