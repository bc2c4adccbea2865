package task

import (
	"context"
	"errors"
	"fmt"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/veil-runtime/veil/agent/api"
)

// Kill signals a process (with All, every process of the container).
func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	return empty, toService(s.kill(ctx, r))
}

func (s *service) kill(ctx context.Context, r *taskAPI.KillRequest) error {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return err
	}
	if p.status().State == stateStopped {
		return errProcessFinished
	}
	if r.Signal == uint32(unix.SIGKILL) {
		// A SIGKILL must work on a paused task, as with runc.
		if err := s.thaw(ctx, r.ID, fmt.Sprintf("SIGKILL to %s", p.name())); err != nil {
			// A VM that cannot be thawed is ended: the SIGKILL must
			// not fail.
			sb, verr := s.sandbox()
			if verr != nil {
				return err
			}
			return s.killUnresponsive(ctx, sb, err)
		}
	}
	sb, err := s.sandbox()
	if err != nil {
		if s.vmDied() {
			// Its processes died with it; their exits (255) are on
			// their way (watchVM), as runc's are for a killed task.
			return errProcessFinished
		}
		return fmt.Errorf("signal %s: %w", p.name(), err)
	}
	_, err = sb.Agent().SignalProcess(ctx, &api.SignalRequest{
		ContainerId: r.ID,
		ExecId:      r.ExecID,
		Signal:      r.Signal,
		All:         r.All,
	})
	if err != nil && vmGone(sb) {
		// The VM died under the request: not an error of the signal.
		return errProcessFinished
	}
	err = fromAgent(err, "signal %d to %s", r.Signal, p.name())
	if err != nil && r.Signal == uint32(unix.SIGKILL) && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return s.killUnresponsive(ctx, sb, err)
	}
	return err
}

// killUnresponsive ends the VM of an agent that did not answer a SIGKILL
// (timeouts.agent_request): a SIGKILL must not fail, and a pod whose guest
// is frozen must still stop and be removed. Every process of the sandbox
// then exits with vmDeathExitStatus (watchVM).
func (s *service) killUnresponsive(ctx context.Context, sb PodVM, cause error) error {
	k, ok := sb.(vmKiller)
	if !ok {
		return cause
	}
	log.G(ctx).WithError(cause).Error("the agent did not answer a SIGKILL: ending the VM; every process of the sandbox exits with status 255")
	if err := k.KillVM(ctx); err != nil {
		return errors.Join(cause, err)
	}
	return nil
}

// vmDied reports a sandbox whose VM died (not one stopped on purpose,
// nor none at all).
func (s *service) vmDied() bool {
	s.mu.Lock()
	sb := s.sb
	s.mu.Unlock()
	return sb != nil && vmGone(sb)
}
