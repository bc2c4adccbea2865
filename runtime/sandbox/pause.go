package sandbox

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
)

// pausableVM is a VM whose guest's vCPUs can be stopped and restarted
// while the VMM keeps running (hypervisor.Pauser).
type pausableVM interface {
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
}

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

func (s *Sandbox) pausable(what string) (pausableVM, error) {
	p, ok := s.vm.(pausableVM)
	if !ok {
		return nil, fmt.Errorf("sandbox %s: hypervisor %s cannot %s the VM: %w", s.id, s.vmm, what, errdefs.ErrNotImplemented)
	}
	return p, nil
}
