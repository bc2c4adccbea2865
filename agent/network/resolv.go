package network

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/veil-runtime/veil/agent/api"
)

// resolvConf renders a resolv.conf(5).
func resolvConf(d *api.DNS) string {
	var b strings.Builder
	b.WriteString("# written by veil-agent from the pod's DNS settings\n")
	for _, s := range d.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(d.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.GetSearches(), " "))
	}
	if len(d.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.GetOptions(), " "))
	}
	return b.String()
}

// writeResolvConf replaces path atomically, so that no reader sees half
// a file.
func writeResolvConf(path string, d *api.DNS) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("resolv.conf: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".resolv.conf-*")
	if err != nil {
		return fmt.Errorf("resolv.conf: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.WriteString(resolvConf(d)); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
