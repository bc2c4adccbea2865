package sandbox

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// Pause freezes the whole sandbox: the VM's vCPUs stop, so every
// container and the agent with them. It fails with NotImplemented when
// the hypervisor cannot pause.
func (s *Sandbox) Pause(ctx context.Context) error {
	p, err := s.pausable("pause")
	if err != nil {
		return err
	}
	if err := p.Pause(ctx); err != nil {
		return fmt.Errorf("sandbox %s: pause the VM: %w", s.id, err)
	}
	logger(ctx, s.id).Info("VM paused")
	return nil
}

// Resume restarts the vCPUs of a sandbox that Pause froze. It fails with
// NotImplemented when the hypervisor cannot resume.
func (s *Sandbox) Resume(ctx context.Context) error {
	p, err := s.pausable("resume")
	if err != nil {
		return err
	}
	if err := p.Resume(ctx); err != nil {
		return fmt.Errorf("sandbox %s: resume the VM: %w", s.id, err)
	}
	logger(ctx, s.id).Info("VM resumed")
	return nil
}

func (s *Sandbox) pausable(what string) (hypervisor.Pauser, error) {
	p, ok := s.vm.(hypervisor.Pauser)
	if !ok {
		return nil, fmt.Errorf("sandbox %s: hypervisor %s cannot %s the VM: %w", s.id, s.vmm, what, errdefs.ErrNotImplemented)
	}
	return p, nil
}
