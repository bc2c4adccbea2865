package task

import (
	"context"
	"fmt"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cleanup"
)

// Delete deletes an exec, or a container (its rootfs, and the sandbox
// with its last container).
func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	resp, err := s.delete(ctx, r)
	if err != nil {
		log.G(ctx).WithError(err).WithFields(log.Fields{"container": r.ID, "exec": r.ExecID}).Error("delete")
	}
	return resp, toService(err)
}

// checkDeletable waits until an exit being published is visible and
// refuses a process that is starting or running.
func checkDeletable(ctx context.Context, p *process) (processStatus, error) {
	if err := p.settle(ctx); err != nil {
		return processStatus{}, err
	}
	ps := p.status()
	if ps.State == stateStarting || ps.State == stateRunning {
		return ps, fmt.Errorf("process %s is %s: %w", p.name(), ps.State, errdefs.ErrFailedPrecondition)
	}
	return ps, nil
}

func (s *service) delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, err := s.getContainer(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		return s.deleteExec(ctx, c, r.ExecID)
	}

	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if _, err := checkDeletable(ctx, c.init); err != nil {
		return nil, err
	}
	// The guest must answer for the container to go.
	if err := s.thaw(ctx, c.id, "deleting container "+c.id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	last := len(s.containers) == 1 && len(s.creating) == 0
	s.mu.Unlock()
	if sb, err := s.sandbox(); err == nil {
		// Always forced: the host removes the container whatever the
		// guest thinks of it, and must not unmount the rootfs under a
		// process the host believed stopped.
		_, err := sb.Agent().RemoveContainer(ctx, &api.RemoveContainerRequest{ContainerId: c.id, Force: true})
		if err = fromAgent(err, "remove container %s from sandbox %s", c.id, sb.ID()); err != nil && !errdefs.IsNotFound(err) {
			if !last {
				return nil, err
			}
			log.G(ctx).WithError(err).Warn("guest kept the container; its sandbox is stopped now")
		}
	}
	c.init.markExited(128+uint32(unix.SIGKILL), time.Now(), nil)
	for _, p := range c.all() {
		if st := p.getStreams(); st != nil {
			st.abort()
		}
	}
	if err := removeFromShare(ctx, c.share, c.id); err != nil {
		// The sandbox's stop below (with its last container) or its
		// cleanup removes what is left; a container is never kept
		// because of what the guest did to the share.
		log.G(ctx).WithError(err).WithField("container", c.id).Warn("remove container from the share")
	}

	s.mu.Lock()
	delete(s.containers, c.id)
	s.deleting++
	last = len(s.containers) == 0 && len(s.creating) == 0
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.deleting--
		s.mu.Unlock()
	}()
	if last {
		if err := s.stopSandbox(ctx, "its last container was deleted"); err != nil {
			return nil, err
		}
	}

	ps := c.init.status()
	s.send(&eventstypes.TaskDelete{
		ContainerID: c.id,
		Pid:         ps.Pid,
		ExitStatus:  ps.ExitStatus,
		ExitedAt:    timestamp(ps.ExitedAt),
	})
	return &taskAPI.DeleteResponse{Pid: ps.Pid, ExitStatus: ps.ExitStatus, ExitedAt: timestamp(ps.ExitedAt)}, nil
}

// deleteExec forgets an exec that is not running, on the host and in the
// guest (CRI's ExecSync uses a new exec id each time, so the guest's
// records would otherwise grow without bound).
func (s *service) deleteExec(ctx context.Context, c *container, execID string) (*taskAPI.DeleteResponse, error) {
	p, err := c.process(execID)
	if err != nil {
		return nil, err
	}
	ps, err := checkDeletable(ctx, p)
	if err != nil {
		return nil, err
	}
	if ps.State != stateCreated {
		if sb, err := s.sandbox(); err == nil {
			if err := s.removeGuestExec(ctx, sb, p); err != nil {
				return nil, err
			}
		}
	}
	if p, err = c.removeExec(execID); err != nil {
		return nil, err
	}
	if st := p.getStreams(); st != nil {
		st.abort()
	}
	ps = p.status()
	return &taskAPI.DeleteResponse{Pid: ps.Pid, ExitStatus: ps.ExitStatus, ExitedAt: timestamp(ps.ExitedAt)}, nil
}

// removeGuestExec has the agent forget an exec the host considers
// stopped; NotFound counts as done. When the guest still runs it (the
// host's wait failed, or its start failed after the agent started it),
// the process is killed and waited for (bounded) before the record goes.
func (s *service) removeGuestExec(ctx context.Context, sb PodVM, p *process) error {
	req := &api.ProcessRequest{ContainerId: p.containerID, ExecId: p.execID}
	remove := func() error {
		_, err := sb.Agent().RemoveProcess(ctx, req)
		if err = fromAgent(err, "remove exec %s from sandbox %s", p.name(), sb.ID()); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		return nil
	}
	err := remove()
	if !errdefs.IsFailedPrecondition(err) {
		return err
	}
	log.G(ctx).WithError(err).Warn("guest still runs the exec; killing it")
	_, kerr := sb.Agent().SignalProcess(ctx, &api.SignalRequest{ContainerId: p.containerID, ExecId: p.execID, Signal: uint32(unix.SIGKILL)})
	if kerr = fromAgent(kerr, "kill exec %s", p.name()); kerr != nil && !errdefs.IsNotFound(kerr) {
		return kerr
	}
	wctx, cancel := context.WithTimeout(ctx, sb.Config().Timeouts.AgentRequest.Duration)
	defer cancel()
	if _, werr := sb.Agent().WaitProcess(wctx, req); werr != nil {
		if werr = fromAgent(werr, "wait for killed exec %s", p.name()); !errdefs.IsNotFound(werr) {
			return werr
		}
	}
	return remove()
}

// removeGuestContainer force-removes a container the agent may have
// created although its CreateContainer call failed; errors are logged.
func (s *service) removeGuestContainer(ctx context.Context, sb PodVM, id string) {
	if vmGone(sb) {
		return
	}
	// Not cancelled with the failed request; bounded as every agent
	// request is (timeouts.agent_request).
	cctx, cancel := cleanup.Context(ctx, sb.Config().Timeouts.AgentRequest.Duration)
	defer cancel()
	_, err := sb.Agent().RemoveContainer(cctx, &api.RemoveContainerRequest{ContainerId: id, Force: true})
	if err = fromAgent(err, "remove container %s after its failed create", id); err != nil && !errdefs.IsNotFound(err) {
		log.G(ctx).WithError(err).Warn("rollback: remove container in the guest")
	}
}

// vmGone reports whether sb's VM died or was stopped.
func vmGone(sb PodVM) bool {
	select {
	case <-sb.Done():
		return true
	default:
		return false
	}
}
