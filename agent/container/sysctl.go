package container

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// applySysctls writes net.* sysctls to the guest's own network namespace,
// which is the pod's network: the VM is the pod's alone, so what would be
// a per-pod namespace setting on a host is a guest-wide one here. Keys
// are checked so that a key cannot name a path outside procSys/net.
func applySysctls(ctx context.Context, procSys string, sysctls map[string]string) error {
	keys := make([]string, 0, len(sysctls))
	for k := range sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !strings.HasPrefix(k, "net.") || strings.Contains(k, "/") || strings.Contains(k, "..") {
			return fmt.Errorf("sysctl %q: only net.* keys are applied to the guest: %w", k, errdefs.ErrInvalidArgument)
		}
		rel := strings.ReplaceAll(k, ".", "/")
		p := filepath.Join(procSys, rel)
		if !within(p, filepath.Join(procSys, "net")) {
			return fmt.Errorf("sysctl %q: not a network sysctl: %w", k, errdefs.ErrInvalidArgument)
		}
		if err := os.WriteFile(p, []byte(sysctls[k]), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, sysctls[k], err)
		}
		log.G(ctx).WithField("sysctl", k+"="+sysctls[k]).Info("guest network sysctl set")
	}
	return nil
}
