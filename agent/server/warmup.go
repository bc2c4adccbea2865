package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
)

// networkWarmer is a Network that can run its setup code without a pod.
type networkWarmer interface {
	WarmUp(ctx context.Context) error
}

// WarmUp starts a throwaway pod and runs the network's setup code once,
// before this VM has a sandbox; the lock keeps CreateSandbox out
// meanwhile.
func (s *Service) WarmUp(ctx context.Context, _ *api.Empty) (*api.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sandboxID != "" {
		return nil, toStatus(fmt.Errorf("warm up: sandbox %s exists; a warm-up is for a VM before its pod: %w", s.sandboxID, errdefs.ErrFailedPrecondition))
	}
	start := time.Now()
	var errs []error
	if s.warmUp != nil {
		errs = append(errs, s.warmUp(ctx))
	}
	if w, ok := s.network.(networkWarmer); ok {
		errs = append(errs, w.WarmUp(ctx))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, toStatus(fmt.Errorf("warm up: %w", err))
	}
	log.G(ctx).WithField("took", time.Since(start).Round(time.Millisecond)).Info("guest warmed up")
	return &api.Empty{}, nil
}
