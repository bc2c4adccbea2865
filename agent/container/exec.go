package container

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cleanup"
)

// Exec starts an extra process in a running container and returns its
// guest pid. On failure the process's pending stream connections are
// closed, unless another in-flight Exec reserved the same exec id.
func (m *Manager) Exec(ctx context.Context, id, execID string, procJSON []byte, sio Stdio) (_ int, retErr error) {
	if execID == "" {
		// No discard: (id, "") names the init's streams.
		return 0, fmt.Errorf("exec in container %s: empty exec id: %w", id, errdefs.ErrInvalidArgument)
	}
	defer m.discardStreamsOnError(&retErr, id, execID)
	if err := api.ValidateID("exec id", execID); err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", id, err)
	}
	if sio.Terminal && sio.Stderr {
		return 0, fmt.Errorf("exec %s: a terminal has no stderr stream: %w", execID, errdefs.ErrInvalidArgument)
	}
	spec, err := ParseProcess(procJSON)
	if err != nil {
		return 0, fmt.Errorf("exec %s in container %s: %w", execID, id, err)
	}
	spec.Terminal = sio.Terminal
	lp, err := toLibcontainer(spec, false)
	if err != nil {
		return 0, fmt.Errorf("exec %s in container %s: %w", execID, id, err)
	}
	c, err := m.get(id)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.removed || !c.init.isStarted() || c.init.isExited() {
		c.mu.Unlock()
		return 0, fmt.Errorf("exec %s: container %s is not running: %w", execID, id, errdefs.ErrFailedPrecondition)
	}
	if old, ok := c.execs[execID]; ok && (old == nil || !old.isExited()) {
		c.mu.Unlock()
		return 0, fmt.Errorf("exec %s in container %s: %w", execID, id, errdefs.ErrAlreadyExists)
	}
	c.execs[execID] = nil // reserved
	c.mu.Unlock()
	var undo cleanup.Stack
	defer undo.OnError(ctx, &retErr)
	undo.Push("reserve exec id "+execID, func(context.Context) error {
		c.mu.Lock()
		delete(c.execs, execID)
		c.mu.Unlock()
		return nil
	})

	// The wait for the streams runs unlocked; the container may be
	// removed or its init may exit meanwhile, so look again under the
	// lock and keep it while the process starts: a concurrent Remove
	// either runs first (and this exec is refused) or after (and its kill
	// sees this process).
	conns, err := m.takeStreams(ctx, id, execID, sio)
	if err != nil {
		return 0, fmt.Errorf("exec %s in container %s: %w", execID, id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		conns.closeAll()
		return 0, fmt.Errorf("exec %s: container %s was removed while the exec waited for its streams: %w", execID, id, errdefs.ErrFailedPrecondition)
	}
	if c.init.isExited() {
		conns.closeAll()
		return 0, fmt.Errorf("exec %s: container %s stopped while the exec waited for its streams: %w", execID, id, errdefs.ErrFailedPrecondition)
	}
	if c.paused() {
		// Its process would join the frozen cgroup and never run.
		conns.closeAll()
		return 0, fmt.Errorf("exec %s: container %s is paused: %w", execID, id, errdefs.ErrFailedPrecondition)
	}
	ex, ok := c.box.(execer)
	if !ok {
		conns.closeAll()
		return 0, fmt.Errorf("exec %s: container %s is a pod's sandbox container, which runs no image: %w", execID, id, errdefs.ErrFailedPrecondition)
	}
	name := fmt.Sprintf("exec %s in container %s", execID, id)
	p := newProcess(name, lp, newStdio(name, conns, sio.Terminal))
	if err := p.start(context.WithoutCancel(ctx), ex.exec); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	c.execs[execID] = p
	log.G(ctx).WithFields(log.Fields{"container": id, "exec": execID, "pid": p.pid}).Info("exec started")
	return p.pid, nil
}

// RemoveProcess forgets an exited exec process, freeing its exec id. It
// fails with FailedPrecondition while the process runs (or is being
// started), NotFound for an unknown container or exec, and
// InvalidArgument for the init process (empty execID), which goes with
// its container (Remove).
func (m *Manager) RemoveProcess(ctx context.Context, id, execID string) error {
	if execID == "" {
		return fmt.Errorf("remove process of container %s: the init process is removed with its container (RemoveContainer): %w", id, errdefs.ErrInvalidArgument)
	}
	c, err := m.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[execID]
	switch {
	case !ok:
		return fmt.Errorf("exec %s in container %s: %w", execID, id, errdefs.ErrNotFound)
	case p == nil:
		return fmt.Errorf("remove exec %s in container %s: it is being started: %w", execID, id, errdefs.ErrFailedPrecondition)
	case !p.isExited():
		return fmt.Errorf("remove %s: it still runs (pid %d): %w", p.name, p.pid, errdefs.ErrFailedPrecondition)
	}
	delete(c.execs, execID)
	// No Exec holds a reservation for the id, so anything pending under it
	// is stray.
	m.streams.Discard(id, execID, false)
	log.G(ctx).WithFields(log.Fields{"container": id, "exec": execID}).Info("exec removed")
	return nil
}
