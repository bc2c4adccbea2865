package main

import (
	"fmt"
	"os"
	"path/filepath"

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
	return harness.WriteConfig(cfg, dir, "veil-config.toml")
}
