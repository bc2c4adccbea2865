package container

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/runc/libcontainer"
)

// Pause freezes every process of a running container through its
// cgroup's freezer, as runc pause does; the agent and the other
// containers run on. A container that is not running, or already
// paused, is refused with FailedPrecondition.
func (m *Manager) Pause(ctx context.Context, id string) error {
	c, err := m.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.init.isStarted() || c.init.isExited() {
		return fmt.Errorf("pause container %s: it is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	if c.paused() {
		return fmt.Errorf("pause container %s: it is paused already: %w", id, errdefs.ErrFailedPrecondition)
	}
	if err := c.lc.Pause(); err != nil {
		return fmt.Errorf("pause container %s: %w", id, asPrecondition(err))
	}
	log.G(ctx).WithField("container", id).Info("container paused")
	return nil
}

// Resume thaws a container Pause froze; one that is not paused is
// refused with FailedPrecondition.
func (m *Manager) Resume(ctx context.Context, id string) error {
	c, err := m.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paused() {
		return fmt.Errorf("resume container %s: it is not paused: %w", id, errdefs.ErrFailedPrecondition)
	}
	if err := c.lc.Resume(); err != nil {
		return fmt.Errorf("resume container %s: %w", id, asPrecondition(err))
	}
	log.G(ctx).WithField("container", id).Info("container resumed")
	return nil
}

// paused reports whether the container's cgroup is frozen. Called with
// c.mu held.
func (c *container) paused() bool {
	st, err := c.lc.Status()
	return err == nil && st == libcontainer.Paused
}

// asPrecondition marks libcontainer's state refusals (an init that exited
// but is not reaped yet, a container no longer paused) FailedPrecondition.
func asPrecondition(err error) error {
	if errors.Is(err, libcontainer.ErrNotRunning) || errors.Is(err, libcontainer.ErrNotPaused) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	return err
}
