package task

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/veil-runtime/veil/runtime/cleanup"
	"github.com/veil-runtime/veil/shim/bundle"
)

// oomScoreAdjuster is a sandbox whose host helpers take the
// oom_score_adj of the pod's containers (optional ability).
type oomScoreAdjuster interface {
	RaiseOOMScoreAdj(adj int) error
}

// raiseOOMScoreAdj makes the VM's helpers as killable as the most
// killable container of the pod: the VM holds the containers' memory.
func raiseOOMScoreAdj(ctx context.Context, sb PodVM, bs *bundle.Spec) {
	a, ok := sb.(oomScoreAdjuster)
	if !ok || bs.Spec.Process == nil || bs.Spec.Process.OOMScoreAdj == nil {
		return
	}
	if err := a.RaiseOOMScoreAdj(*bs.Spec.Process.OOMScoreAdj); err != nil {
		log.G(ctx).WithError(err).Warn("raise the sandbox helpers' oom_score_adj")
	}
}

// joinedSandbox is the sandbox a container goes into, and whether this
// Create started it.
type joinedSandbox struct {
	PodVM
	started bool
}

// joinOrStartSandbox returns the shim's sandbox, starting it for the first
// container (with the config file configPath when not empty, and the
// container's io.veil.config.* annotations). A container of another pod is
// refused.
func (s *service) joinOrStartSandbox(ctx context.Context, containerID string, bs *bundle.Spec, configPath string) (joinedSandbox, error) {
	want, err := bundle.SandboxIDFor(containerID, bs.Spec.Annotations)
	if err != nil {
		return joinedSandbox{}, err
	}
	s.mu.Lock()
	sb := s.sb
	s.mu.Unlock()
	if sb != nil {
		if sb.ID() != want {
			return joinedSandbox{}, fmt.Errorf("container %s belongs to sandbox %s but this shim serves %s: %w", containerID, want, sb.ID(), errdefs.ErrInvalidArgument)
		}
		if _, err := s.sandbox(); err != nil {
			return joinedSandbox{}, err
		}
		raiseOOMScoreAdj(ctx, sb, bs)
		return joinedSandbox{PodVM: sb}, nil
	}
	shm, err := bs.PodShmSize(want)
	if err != nil {
		return joinedSandbox{}, err
	}
	opts := SandboxOptions{
		NetNSPath:    bs.HostNetNS(),
		Hostname:     bs.Spec.Hostname,
		ConfigPath:   configPath,
		Annotations:  bs.Spec.Annotations,
		ShmSizeBytes: shm,
		DNS:          bs.DNS(want),
		CRI:          bs.IsCRISandbox(),
	}
	if bs.Spec.Linux != nil {
		opts.CgroupsPath = bs.Spec.Linux.CgroupsPath
	}
	if bs.Spec.Process != nil {
		opts.OOMScoreAdj = bs.Spec.Process.OOMScoreAdj
	}
	opts.AgentObserver = s.tele.ObserveRPC
	start := time.Now()
	// The VM outlives this request: it is bound to the shim's context;
	// the sandbox bounds its own start with the configured timeouts.
	sb, err = s.launcher.Start(s.ctx, want, opts)
	if err != nil {
		return joinedSandbox{}, fmt.Errorf("start sandbox %s: %w", want, err)
	}
	log.G(ctx).WithFields(log.Fields{"sandbox": want, "took": time.Since(start)}).Info("sandbox started")
	stopping := make(chan struct{})
	s.mu.Lock()
	s.sb = sb
	s.sbConfigPath = configPath
	s.sbStopping = stopping
	s.mu.Unlock()
	go s.watchVM(sb, stopping)
	s.serveTelemetry(sb, stopping)
	return joinedSandbox{PodVM: sb, started: true}, nil
}

// stopSandbox stops the sandbox on purpose (its last container is gone).
// When Stop fails it falls back to the launcher's Cleanup, which removes
// what a crashed shim would have left; only when that fails too is the
// sandbox reported as leaked.
func (s *service) stopSandbox(ctx context.Context, why string) error {
	s.mu.Lock()
	sb, stopping, configPath := s.sb, s.sbStopping, s.sbConfigPath
	s.sb, s.sbStopping, s.sbConfigPath = nil, nil, ""
	s.mu.Unlock()
	if sb == nil {
		return nil
	}
	close(stopping)
	logger := log.G(ctx).WithFields(log.Fields{"sandbox": sb.ID(), "why": why})
	sctx, cancel := cleanup.Context(ctx, stopTimeout)
	defer cancel()
	stopErr := sb.Stop(sctx)
	if stopErr == nil {
		logger.Info("sandbox stopped")
		return nil
	}
	logger.WithError(stopErr).Error("stop sandbox failed; cleaning up what is left of it")
	cctx, ccancel := cleanup.Context(ctx, stopTimeout)
	defer ccancel()
	l, err := launcherFor(s.launcher, configPath)
	if err == nil {
		err = l.Cleanup(cctx, sb.ID())
	}
	if err != nil {
		return fmt.Errorf("stop sandbox %s: %w; then clean it up: %w", sb.ID(), stopErr, err)
	}
	logger.Warn("sandbox removed by cleanup after its stop failed")
	return nil
}

// sandbox returns the running sandbox, or an error when there is none
// or its VM died.
func (s *service) sandbox() (PodVM, error) {
	s.mu.Lock()
	sb := s.sb
	s.mu.Unlock()
	if sb == nil {
		return nil, fmt.Errorf("no sandbox: %w", errdefs.ErrFailedPrecondition)
	}
	select {
	case <-sb.Done():
		return nil, fmt.Errorf("sandbox %s: VM is not running: %w", sb.ID(), errdefs.ErrUnavailable)
	default:
		return sb, nil
	}
}

// watchVM handles the death of the sandbox's VM: processes never started
// are marked exited; running ones are finished by their waiters, whose
// agent calls the VM's death cancels.
func (s *service) watchVM(sb PodVM, stopping <-chan struct{}) {
	select {
	case <-sb.Done():
	case <-stopping:
		return
	}
	select {
	case <-stopping:
		return
	default:
	}
	log.G(s.ctx).WithField("sandbox", sb.ID()).Error("sandbox VM died; every process of it exits with status 255")
	s.mu.Lock()
	var cs []*container
	for _, c := range s.containers {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	now := time.Now()
	for _, c := range cs {
		for _, p := range c.all() {
			if p.status().State == stateCreated {
				p.markExited(vmDeathExitStatus, now, nil)
				if st := p.getStreams(); st != nil {
					st.abort()
				}
			}
		}
	}
}
