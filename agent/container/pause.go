package container

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
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
	if err := c.box.pause(); err != nil {
		return fmt.Errorf("pause container %s: %w", id, err)
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
	if err := c.box.resume(); err != nil {
		return fmt.Errorf("resume container %s: %w", id, err)
	}
	log.G(ctx).WithField("container", id).Info("container resumed")
	return nil
}

// paused reports whether the container's cgroup is frozen. Called with
// c.mu held.
func (c *container) paused() bool { return c.box.paused() }
