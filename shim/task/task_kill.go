package task

import (
	"context"
	"errors"
	"fmt"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
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
		// A SIGKILL must work on a paused task, as with runc: the
		// container is resumed first (on a cgroup v1 freezer a frozen
		// task does not die), and no Pause may come in between.
		s.pauseMu.Lock()
		defer s.pauseMu.Unlock()
		if err := s.thawLocked(ctx, r.ID, fmt.Sprintf("SIGKILL to %s", p.name())); err != nil {
			// An agent that does not answer gets its VM ended: the
			// SIGKILL must not fail. Any other answer still lets the
			// signal try.
			sb, verr := s.sandbox()
			if verr != nil {
				return errProcessFinished
			}
			if errdefs.IsDeadlineExceeded(err) || errdefs.IsUnavailable(err) {
				return s.killUnresponsive(ctx, sb, err)
			}
			log.G(ctx).WithError(err).Warn("SIGKILL to a paused container that did not resume; signalling it anyway")
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
