package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// destroyTimeout bounds the best-effort DestroySandbox call on Stop.
const destroyTimeout = 2 * time.Second

// Stop tears the sandbox down: DestroySandbox through the agent (best
// effort), the VM, the taps in the pod's network namespace, virtiofsd
// (whose mount namespace holds every container mount, so they go with
// it), the share and the state directory. It is idempotent; later calls
// return the first call's result.
func (s *Sandbox) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Sandbox) stop(ctx context.Context) error {
	close(s.stopping)
	lg := logger(ctx, s.id)
	select {
	case <-s.vm.Done():
	default:
		dctx, cancel := context.WithTimeout(ctx, destroyTimeout)
		if _, err := s.agent.DestroySandbox(dctx, &api.DestroySandboxRequest{SandboxId: s.id}); err != nil {
			lg.WithError(err).Warn("DestroySandbox failed; stopping the VM anyway")
		}
		cancel()
	}
	var errs []error
	_ = s.agent.Close()
	if err := s.vm.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop VM: %w", err))
	}
	if err := s.net.Detach(ctx); err != nil {
		errs = append(errs, fmt.Errorf("detach network: %w", err))
	}
	if err := s.fsd.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop virtiofsd: %w", err))
	}
	_ = s.share.Close()
	if s.cons != nil {
		if err := s.cons.Close(); err != nil {
			errs = append(errs, fmt.Errorf("console: %w", err))
		}
	}
	if s.keeper != nil {
		if err := s.keeper.Release(ctx); err != nil {
			errs = append(errs, fmt.Errorf("pool keeper: %w", err))
		}
		// The keeper held the jail uid; a keeper that was killed could
		// not give it back.
		if err := releaseStaleLease(s.cfg.StateDir, s.dir); err != nil {
			errs = append(errs, fmt.Errorf("jail uid: %w", err))
		}
	}
	if s.cg != nil {
		if err := s.cg.Delete(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sandbox cgroup: %w", err))
		}
	}
	if s.dir.Pool() {
		// The pool's parent cgroup goes with its last VM.
		RemovePoolCgroup(s.cfg)
	}
	if err := s.lease.Release(); err != nil {
		errs = append(errs, fmt.Errorf("jail uid: %w", err))
	}
	// With a helper that did not stop, keep the directory: its pid files
	// are what the fallback cleanup kills by, and virtiofsd's namespace
	// still holds the container mounts.
	if len(errs) == 0 {
		if err := statedir.Remove(ctx, s.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox %s: stop: %w", s.id, errors.Join(errs...))
	}
	lg.Info("sandbox stopped")
	return nil
}

// Cleanup removes what a crashed runtime left of sandbox id: it kills the
// processes named by the pid files (only if their command line still
// names the sandbox directory; virtiofsd's death takes every container
// mount with it), removes the taps from the pod's network namespace
// recorded there, and removes the directory with the share's host-side
// mounts. Nothing there is not an error.
//
// A sandbox claimed from the warm pool is found through its link
// (statedir.Open), and its pool directory goes with the link.
func Cleanup(ctx context.Context, cfg *config.Config, id string) error {
	dir, err := statedir.Open(cfg.StateDir, id)
	if err != nil {
		return err
	}
	return CleanupDir(ctx, cfg, dir)
}

// CleanupDir is Cleanup of the sandbox or pool VM directory dir.
func CleanupDir(ctx context.Context, cfg *config.Config, dir statedir.Dir) error {
	id := dir.ID()
	if !statedir.Exists(dir) {
		// A dangling link is all that is left.
		return statedir.Remove(ctx, dir)
	}
	pidFiles, err := filepath.Glob(dir.PidFile("*"))
	if err != nil {
		return err
	}
	var errs []error
	// Every helper names a path inside the directory in its arguments; the
	// trailing slash keeps "sb1" from matching "sb10".
	owner := proc.OwnerOf(dir.Path(), "")
	for _, p := range pidFiles {
		if err := proc.KillOwned(ctx, p, owner); err != nil {
			errs = append(errs, err)
		}
	}
	if err := cleanupConfinement(ctx, cfg.StateDir, dir); err != nil {
		errs = append(errs, err)
	}
	if err := cleanupPoolCgroup(ctx, cfg, dir); err != nil {
		errs = append(errs, err)
	}
	if err := cleanupNetwork(ctx, dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := statedir.Remove(ctx, dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox %s: cleanup: %w", id, errors.Join(errs...))
	}
	logger(ctx, id).Info("sandbox cleaned up")
	return nil
}

// KillVM ends the VM at once, without asking the guest (which no longer
// answers): Done closes and every process of the sandbox is gone. The
// rest of the sandbox (network, virtiofsd, share, state) stays for Stop.
func (s *Sandbox) KillVM(ctx context.Context) error {
	logger(ctx, s.id).Warn("ending the VM: its agent does not answer")
	if err := s.vm.Stop(ctx); err != nil {
		return fmt.Errorf("kill VM of sandbox %s: %w", s.id, err)
	}
	return nil
}
