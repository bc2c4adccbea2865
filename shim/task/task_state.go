package task

import (
	"context"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/task"

	"github.com/veil-runtime/veil/agent/api"
)

// State reports a process's state.
func (s *service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, toService(err)
	}
	ps := p.status()
	status := ps.State.taskStatus()
	if ps.State == stateRunning && s.isPaused(r.ID) {
		// Execs too, as with runc: the container as a whole is paused.
		status = task.Status_PAUSED
	}
	resp := &taskAPI.StateResponse{
		ID:         r.ID,
		Bundle:     c.bundle,
		Pid:        ps.Pid,
		Status:     status,
		Stdin:      p.stdio.Stdin,
		Stdout:     p.stdio.Stdout,
		Stderr:     p.stdio.Stderr,
		Terminal:   p.stdio.Terminal,
		ExitStatus: ps.ExitStatus,
		ExecID:     r.ExecID,
	}
	if ps.State == stateStopped {
		resp.ExitedAt = timestamp(ps.ExitedAt)
	}
	return resp, nil
}

// Pids lists the guest pids of a container's processes.
func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	if _, err := s.getContainer(r.ID); err != nil {
		return nil, toService(err)
	}
	sb, err := s.sandbox()
	if err != nil {
		return nil, toService(err)
	}
	resp, err := sb.Agent().ListPids(ctx, &api.ContainerRequest{ContainerId: r.ID})
	if err != nil {
		return nil, toService(fromAgent(err, "list pids of %s", r.ID))
	}
	out := &taskAPI.PidsResponse{}
	for _, pid := range resp.Pids {
		out.Processes = append(out.Processes, &task.ProcessInfo{Pid: pid})
	}
	return out, nil
}
