package task

import (
	"context"
	"fmt"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/veil-runtime/veil/agent/api"
)

// Pausing, as runc and Kata do it: the guest agent freezes the paused
// container's cgroup, and the VM, its agent and the pod's other
// containers run on. So:
//
//   - Pause of a running task has the agent freeze its container and
//     marks it paused (State reports PAUSED for its init and its execs,
//     as runc does, and TaskPaused is published); Resume thaws it
//     (TaskResumed).
//   - An exec into a paused container is refused (FailedPrecondition),
//     as with runc; everything else still reaches the agent.
//   - SIGKILL and Delete of a paused container thaw it first, so that
//     killing and removing never hang; with runc, SIGKILL of a paused
//     container works too.
//
// The VM is never frozen for a pause: with QEMU, a host connection to
// the hybrid vsock socket while the VM is stopped left vhost-device-vsock
// wedged for good after the VM ran again (every stream of the sandbox
// stalled), and the node's metrics exporter connects to every sandbox.

// Pause pauses a container.
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
	if s.isPaused(id) {
		return fmt.Errorf("pause %s: container is already paused: %w", id, errdefs.ErrFailedPrecondition)
	}
	sb, err := s.sandbox()
	if err != nil {
		return fmt.Errorf("pause %s: %w", id, err)
	}
	_, err = sb.Agent().PauseContainer(ctx, &api.ContainerRequest{ContainerId: id})
	if err = fromAgent(err, "pause container %s in sandbox %s", id, sb.ID()); err != nil {
		return err
	}
	s.mu.Lock()
	s.paused[id] = true
	s.mu.Unlock()
	s.send(&eventstypes.TaskPaused{ContainerID: id})
	return nil
}

// Resume resumes a paused container.
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
	if !s.isPaused(id) {
		return fmt.Errorf("resume %s: container is not paused: %w", id, errdefs.ErrFailedPrecondition)
	}
	return s.resumeLocked(ctx, id)
}

// resumeLocked has the agent thaw container id and unmarks it
// (TaskResumed). A container the agent no longer has, or no longer has
// paused (a SIGKILL thaws it in the guest), counts as resumed. Called
// with pauseMu held.
func (s *service) resumeLocked(ctx context.Context, id string) error {
	sb, err := s.sandbox()
	if err != nil {
		return fmt.Errorf("resume %s: %w", id, err)
	}
	_, err = sb.Agent().ResumeContainer(ctx, &api.ContainerRequest{ContainerId: id})
	err = fromAgent(err, "resume container %s in sandbox %s", id, sb.ID())
	if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsFailedPrecondition(err) {
		return err
	}
	if err != nil {
		log.G(ctx).WithError(err).WithField("container", id).Info("container was not paused in the guest any more")
	}
	s.unmarkPaused(id)
	return nil
}

// unmarkPaused forgets that container id is paused (TaskResumed).
func (s *service) unmarkPaused(id string) {
	s.mu.Lock()
	delete(s.paused, id)
	s.mu.Unlock()
	s.send(&eventstypes.TaskResumed{ContainerID: id})
}

// thaw resumes container id, if it is paused, before what (a Delete),
// which must not hang on frozen processes.
func (s *service) thaw(ctx context.Context, id, what string) error {
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	return s.thawLocked(ctx, id, what)
}

// thawLocked is thaw with pauseMu held. A container whose VM died is no
// longer paused: its mark is dropped.
func (s *service) thawLocked(ctx context.Context, id, what string) error {
	if !s.isPaused(id) {
		return nil
	}
	if s.sandboxGone() {
		s.unmarkPaused(id)
		return nil
	}
	if err := s.resumeLocked(ctx, id); err != nil {
		return fmt.Errorf("before %s: %w", what, err)
	}
	log.G(ctx).WithFields(log.Fields{"container": id, "before": what}).Info("paused container resumed")
	return nil
}

// isPaused reports whether container id is paused.
func (s *service) isPaused(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused[id]
}

// sandboxGone reports whether there is no running sandbox (none, or its
// VM died or was stopped).
func (s *service) sandboxGone() bool {
	_, err := s.sandbox()
	return err != nil
}
