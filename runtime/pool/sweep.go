package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// Sweep removes what dead keepers left under <state_dir>/.pool: every VM
// directory whose keeper is gone and that no sandbox links to (a linked
// one is a claimed sandbox's, which its own cleanup removes), and lock
// files without a keeper.
func Sweep(ctx context.Context, cfg *config.Config) error {
	root := filepath.Join(cfg.StateDir, statedir.PoolDirName)
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pool sweep: %w", err)
	}
	linked, err := linkedVMs(cfg.StateDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		vmid, isLock := strings.CutSuffix(name, ".lock")
		if keeperAlive(cfg.StateDir, vmid) {
			continue
		}
		if isLock {
			if _, err := os.Lstat(filepath.Join(root, vmid)); errors.Is(err, os.ErrNotExist) {
				_ = os.Remove(filepath.Join(root, name))
			}
			continue
		}
		if !e.IsDir() || linked[vmid] {
			continue
		}
		dir, err := statedir.NewPool(cfg.StateDir, vmid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		log.G(ctx).WithField("pool_vm", vmid).Warn("pool: removing a VM whose keeper is gone")
		if err := sandbox.CleanupDir(ctx, cfg, dir); err != nil {
			errs = append(errs, err)
			continue
		}
		_ = os.Remove(lockPath(cfg.StateDir, vmid))
	}
	return errors.Join(errs...)
}

// linkedVMs are the pool VMs a sandbox link in stateDir names.
func linkedVMs(stateDir string) (map[string]bool, error) {
	ents, err := os.ReadDir(stateDir)
	if err != nil {
		return nil, fmt.Errorf("pool sweep: %w", err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		t, err := os.Readlink(filepath.Join(stateDir, e.Name()))
		if err != nil {
			continue
		}
		if vmid, ok := strings.CutPrefix(t, statedir.PoolDirName+"/"); ok {
			out[vmid] = true
		}
	}
	return out, nil
}
