package container

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// container is one container with its processes.
type container struct {
	id string
	// creating is set while the Create that reserved the id runs; guarded
	// by Manager.mu.
	creating bool

	// box holds the processes; nil until created.
	box box

	mu    sync.Mutex
	init  *process
	execs map[string]*process // nil value: reserved by an in-flight Exec
	// removed is set once the container was destroyed: an in-flight Exec
	// must not run a process in it.
	removed bool
}

// Remove destroys a container. A running one is refused unless force,
// which kills its processes first.
func (m *Manager) Remove(ctx context.Context, id string, force bool) error {
	c, err := m.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	running := c.init.isStarted() && !c.init.isExited()
	if running && !force {
		return fmt.Errorf("container %s is running: %w", id, errdefs.ErrFailedPrecondition)
	}
	if running || force {
		if err := c.kill(ctx); err != nil {
			return err
		}
	}
	if err := c.box.destroy(); err != nil {
		return fmt.Errorf("destroy container %s: %w", id, err)
	}
	// Execs still waiting for their streams see this under c.mu before
	// they run anything (see Exec).
	c.removed = true
	c.init.discard()
	m.streams.Discard(id, "", true)
	m.mu.Lock()
	delete(m.containers, id)
	m.mu.Unlock()
	log.G(ctx).WithField("container", id).Info("container removed")
	return nil
}

// RemoveAll force-removes every container.
func (m *Manager) RemoveAll(ctx context.Context) error {
	m.mu.Lock()
	ids := make([]string, 0, len(m.containers))
	for id := range m.containers {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := m.Remove(ctx, id, true); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// signalAll signals every process in the container's cgroup.
func (c *container) signalAll(sig syscall.Signal) error {
	pids, err := c.box.processes()
	if err != nil {
		return fmt.Errorf("list processes of container %s: %w", c.id, err)
	}
	if len(pids) == 0 {
		return fmt.Errorf("container %s has no processes: %w", c.id, errdefs.ErrNotFound)
	}
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("signal pid %d of container %s: %w", pid, c.id, err))
		}
	}
	return errors.Join(errs...)
}

// kill SIGKILLs every process of the container and waits (bounded) until
// the init and all execs were reaped. Called with c.mu held.
func (c *container) kill(ctx context.Context) error {
	if c.paused() {
		_ = c.box.resume()
	}
	if err := c.signalAll(syscall.SIGKILL); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		log.G(ctx).WithError(err).WithField("container", c.id).Warn("kill processes")
	}
	ctx, cancel := context.WithTimeout(ctx, killTimeout)
	defer cancel()
	procs := []*process{c.init}
	for _, p := range c.execs {
		if p != nil {
			procs = append(procs, p)
		}
	}
	for _, p := range procs {
		if !p.isStarted() {
			continue
		}
		select {
		case <-p.exited:
		case <-ctx.Done():
			return fmt.Errorf("container %s: %s (pid %d) did not die within %s after SIGKILL: %w", c.id, p.name, p.pid, killTimeout, errdefs.ErrUnavailable)
		}
	}
	return nil
}
