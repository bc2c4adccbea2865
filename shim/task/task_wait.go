package task

import (
	"context"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/log"
)

// waitProcess waits for a running process to exit, for its output to be
// copied to the host, and then records the exit and publishes TaskExit.
// The VM's death ends the wait with vmDeathExitStatus.
func (s *service) waitProcess(sb PodVM, p *process) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() {
		select {
		case <-sb.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	logger := log.G(s.ctx).WithField("process", p.name())
	status, exitedAt := uint32(vmDeathExitStatus), time.Now()
	resp, err := sb.Agent().WaitProcess(ctx, &waitRequest{ContainerId: p.containerID, ExecId: p.execID})
	if err != nil {
		logger.WithError(err).Warn("wait for process failed; reporting exit status 255")
	} else {
		status = resp.ExitStatus
		if resp.ExitedAtUnixNano > 0 {
			exitedAt = time.Unix(0, resp.ExitedAtUnixNano)
		}
		if resp.OomKilled {
			// Before TaskExit, so that CRI reports the exit as OOMKilled.
			logger.Info("the container's cgroup saw an OOM kill")
			s.send(&eventstypes.TaskOOM{ContainerID: p.containerID})
		}
	}
	if st := p.getStreams(); st != nil {
		abort := ctx.Done()
		if err != nil {
			st.abort()
		}
		st.waitOutput(abort)
	}
	// TaskExit is queued before Wait returns or Delete proceeds, so it
	// precedes TaskDelete.
	p.markExited(status, exitedAt, func(ps processStatus) {
		logger.WithField("exit_status", status).Debug("process exited")
		s.send(&eventstypes.TaskExit{
			ContainerID: p.containerID,
			ID:          processEventID(p),
			Pid:         ps.Pid,
			ExitStatus:  ps.ExitStatus,
			ExitedAt:    timestamp(ps.ExitedAt),
		})
	})
}

// processEventID is the id containerd expects in process events: the exec
// id, or the container id for init.
func processEventID(p *process) string {
	if p.execID == "" {
		return p.containerID
	}
	return p.execID
}

// Wait blocks until a process exited (and its output reached the host).
func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, toService(err)
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		return nil, toService(ctx.Err())
	}
	ps := p.status()
	return &taskAPI.WaitResponse{ExitStatus: ps.ExitStatus, ExitedAt: timestamp(ps.ExitedAt)}, nil
}
