package task

import (
	"context"
	"fmt"
	"slices"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Pausing. Every container of a pod lives in the one VM, and the VM is
// what can be frozen (the hypervisor's pause: QEMU stop, Cloud Hypervisor
// vm.pause), so:
//
//   - Pause of a running task marks it paused (State reports PAUSED for its
//     init and its execs, as runc does, and TaskPaused is published) and
//     freezes the VM if it is not frozen yet. Other containers of the pod
//     freeze with it but keep their own state (RUNNING).
//   - Resume of a paused task unmarks it (TaskResumed) and thaws the VM
//     when no task of the pod is paused any more.
//   - While the VM is frozen, calls that need the guest agent (Create,
//     Start, Exec, ResizePty, Pids, Stats, Update, signals other than
//     SIGKILL, deleting an exec) fail with FailedPrecondition instead of
//     waiting for a guest that cannot answer.
//   - SIGKILL and Delete of a container thaw the VM first (every paused
//     task is resumed, with TaskResumed), so that killing and removing
//     never hang; with runc, SIGKILL of a paused container works too. A VM
//     that does not thaw is ended on SIGKILL (as for a deaf agent).
//
// A hypervisor that cannot pause answers NotImplemented, and nothing
// changes.

// Pause pauses a container (the sandbox's VM with it).
func (s *service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	err := s.pause(ctx, r.ID)
	if err != nil {
		log.G(ctx).WithError(err).WithField("container", r.ID).Error("pause")
	}
	return empty, toService(err)
}

func (s *service) pause(ctx context.Context, id string) error {
	c, err := s.getContainer(id)
	if err != nil {
		return err
	}
	if st := c.init.status().State; st != stateRunning {
		return fmt.Errorf("pause %s: container is %s: %w", id, st, errdefs.ErrFailedPrecondition)
	}
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	s.mu.Lock()
	already, frozen := s.paused[id], len(s.paused) > 0
	s.mu.Unlock()
	if already {
		return fmt.Errorf("pause %s: container is already paused: %w", id, errdefs.ErrFailedPrecondition)
	}
	if !frozen {
		sb, err := s.vm()
		if err != nil {
			return fmt.Errorf("pause %s: %w", id, err)
		}
		if err := sb.Pause(ctx); err != nil {
			return fmt.Errorf("pause %s: %w", id, err)
		}
		log.G(ctx).WithFields(log.Fields{"sandbox": sb.ID(), "container": id}).Info("sandbox VM paused")
	}
	s.mu.Lock()
	s.paused[id] = true
	s.mu.Unlock()
	s.send(&eventstypes.TaskPaused{ContainerID: id})
	return nil
}

// Resume resumes a paused container; the VM runs again once no container
// of it is paused.
func (s *service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	err := s.resume(ctx, r.ID)
	if err != nil {
		log.G(ctx).WithError(err).WithField("container", r.ID).Error("resume")
	}
	return empty, toService(err)
}

func (s *service) resume(ctx context.Context, id string) error {
	if _, err := s.getContainer(id); err != nil {
		return err
	}
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	s.mu.Lock()
	paused, last := s.paused[id], len(s.paused) == 1
	s.mu.Unlock()
	if !paused {
		return fmt.Errorf("resume %s: container is not paused: %w", id, errdefs.ErrFailedPrecondition)
	}
	if last {
		sb, err := s.vm()
		if err != nil {
			return fmt.Errorf("resume %s: %w", id, err)
		}
		if err := sb.Resume(ctx); err != nil {
			return fmt.Errorf("resume %s: %w", id, err)
		}
		log.G(ctx).WithFields(log.Fields{"sandbox": sb.ID(), "container": id}).Info("sandbox VM resumed")
	}
	s.mu.Lock()
	delete(s.paused, id)
	s.mu.Unlock()
	s.send(&eventstypes.TaskResumed{ContainerID: id})
	return nil
}

// thaw resumes a paused sandbox before what (a SIGKILL, a Delete), which
// needs the guest: every paused task runs again (TaskResumed). A VM that
// died needs no thawing; its paused marks are dropped.
func (s *service) thaw(ctx context.Context, what string) error {
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	s.mu.Lock()
	ids := make([]string, 0, len(s.paused))
	for id := range s.paused {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	sb, err := s.vm()
	if err == nil {
		if err := sb.Resume(ctx); err != nil {
			return fmt.Errorf("resume paused sandbox %s before %s: %w", sb.ID(), what, err)
		}
		log.G(ctx).WithFields(log.Fields{"sandbox": sb.ID(), "paused": ids, "before": what}).Info("sandbox VM resumed")
	}
	s.mu.Lock()
	clear(s.paused)
	s.mu.Unlock()
	if err != nil {
		return nil
	}
	for _, id := range ids {
		s.send(&eventstypes.TaskResumed{ContainerID: id})
	}
	return nil
}

// isPaused reports whether container id is paused.
func (s *service) isPaused(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused[id]
}

// frozen reports whether the sandbox's VM is paused.
func (s *service) frozen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.paused) > 0
}
