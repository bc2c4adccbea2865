package harness

import (
	"os"
	"os/exec"
	"testing"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/integration"
)

// TestSetupConfig checks that what `make setup` wrote is a valid Veil
// config whose binaries run and whose files exist.
func TestSetupConfig(t *testing.T) {
	integration.Require(t, integration.Root)
	cfg, err := config.Load(ConfigPath())
	if err != nil {
		t.Fatalf("%v (run make setup)", err)
	}
	tests := []struct {
		name string
		path string
		args []string // run with these when set; else only stat
	}{
		{"qemu", cfg.Hypervisor.QEMUPath, []string{"--version"}},
		{"vhost-device-vsock", cfg.Hypervisor.VhostVsockPath, []string{"--version"}},
		{"virtiofsd", cfg.Virtiofs.Path, []string{"--version"}},
		{"kernel", cfg.Guest.Kernel, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil {
				t.Fatal(err)
			}
			if tc.args == nil {
				return
			}
			if out, err := exec.Command(tc.path, tc.args...).CombinedOutput(); err != nil {
				t.Fatalf("%s %v: %v: %s", tc.path, tc.args, err, out)
			}
		})
	}
}
