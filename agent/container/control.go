package container

import (
	"context"
	"fmt"
	"syscall"

	"github.com/containerd/errdefs"
)

// Wait blocks until the process exited and its output was delivered.
func (m *Manager) Wait(ctx context.Context, id, execID string) (Exit, error) {
	c, p, err := m.proc(id, execID)
	if err != nil {
		return Exit{}, err
	}
	e, err := p.waitDone(ctx)
	if err != nil || execID != "" {
		return e, err
	}
	e.OOMKilled = oomKilled(c.cgroupPath())
	return e, nil
}

// Signal delivers sig to a process, or with all to every process of the
// container.
func (m *Manager) Signal(ctx context.Context, id, execID string, sig syscall.Signal, all bool) error {
	c, p, err := m.proc(id, execID)
	if err != nil {
		return err
	}
	if all {
		return c.signalAll(sig)
	}
	if execID == "" && p.isStarted() && !p.isExited() {
		if err := c.box.signal(sig); err != nil {
			return fmt.Errorf("signal container %s with %v: %w", id, sig, err)
		}
		return nil
	}
	return p.signal(sig)
}

// CloseStdin closes a process's standard input.
func (m *Manager) CloseStdin(ctx context.Context, id, execID string) error {
	_, p, err := m.proc(id, execID)
	if err != nil {
		return err
	}
	p.io.closeStdin()
	return nil
}

// Resize sets the window size of a process's terminal.
func (m *Manager) Resize(ctx context.Context, id, execID string, width, height uint32) error {
	_, p, err := m.proc(id, execID)
	if err != nil {
		return err
	}
	if !p.io.terminal {
		return fmt.Errorf("%s has no terminal: %w", p.name, errdefs.ErrFailedPrecondition)
	}
	if !p.isStarted() {
		return fmt.Errorf("%s was not started: %w", p.name, errdefs.ErrFailedPrecondition)
	}
	if err := p.io.resize(width, height); err != nil {
		return fmt.Errorf("resize terminal of %s: %w", p.name, err)
	}
	return nil
}
