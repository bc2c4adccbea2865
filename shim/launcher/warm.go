package launcher

import (
	"context"
	"errors"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/cleanup"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/network"
	"github.com/veil-runtime/veil/runtime/pool"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// startWarm claims a VM from the warm pool for sandbox id and adopts
// it; nil means "start cold": the pool is off, has no VM for this
// configuration, or the claimed VM failed (it is then removed, and
// nothing of it is left under the sandbox id; failed says why).
func startWarm(ctx context.Context, id string, cfg *config.Config, opts sandbox.Options) (_ *sandbox.Sandbox, failed error) {
	if cfg.Pool.Size <= 0 {
		return nil, nil
	}
	lg := log.G(ctx).WithField("sandbox", id)
	began := time.Now()
	nics := 0
	if opts.NetNSPath != "" {
		n, err := network.PodInterfaces(opts.NetNSPath)
		if err != nil {
			lg.WithError(err).Info("warm pool: cold start")
			return nil, nil
		}
		nics = n
	}
	c, err := pool.Claim(ctx, cfg, id, nics)
	if errors.Is(err, pool.ErrUnavailable) {
		lg.WithError(err).Info("warm pool: cold start")
		return nil, nil
	}
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		// Not the pool's: the cold start says what holds the id.
		return nil, nil
	}
	if err != nil {
		lg.WithError(err).Warn("warm pool: claim failed; cold start")
		removeFailedClaim(ctx, cfg, id)
		return nil, &sandbox.StartError{ID: id, Step: "claim", Err: err}
	}
	claimed := time.Since(began)
	sb, err := sandbox.Adopt(ctx, c.Dir, cfg, opts, c.Keeper)
	if err != nil {
		lg.WithError(err).Warn("warm pool: the claimed VM failed; cold start")
		return nil, err
	}
	lg.WithFields(log.Fields{"pool_vm": c.Dir.PoolID(), "claim": claimed.Round(time.Millisecond), "total": time.Since(began).Round(time.Millisecond)}).Info("sandbox started warm")
	return sb, nil
}

// removeFailedClaim removes the VM a failed claim may have linked to the
// sandbox id: only a link into the pool (the daemon made it for this
// claim; an id is one shim's), never a sandbox directory.
func removeFailedClaim(ctx context.Context, cfg *config.Config, id string) {
	dir, err := statedir.Open(cfg.StateDir, id)
	if err != nil || !dir.Pool() {
		return
	}
	cctx, cancel := cleanup.Context(ctx, 0)
	defer cancel()
	if err := sandbox.CleanupDir(cctx, cfg, dir); err != nil {
		log.G(ctx).WithError(err).WithField("sandbox", id).Warn("warm pool: remove the failed claim")
	}
}
