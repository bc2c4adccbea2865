package task

import (
	"context"
	"fmt"
	"os"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cleanup"
	"github.com/veil-runtime/veil/shim/bundle"
)

// Create creates a container: it starts the sandbox VM for the first
// container, mounts the rootfs into the shared directory, connects the
// stdio streams and asks the agent to create the container.
func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	resp, err := s.create(ctx, r)
	if err != nil {
		log.G(ctx).WithError(err).WithField("container", r.ID).Error("create")
	}
	return resp, toService(err)
}

// pendingCreate is what the first, serialised half of Create prepared.
type pendingCreate struct {
	sb PodVM
	bs *bundle.Spec
	// submounts are the guest paths of host mounts below the volumes.
	submounts []string
}

// create runs in two halves. The first, under the lifecycle lock, joins
// or starts the sandbox, mounts the rootfs and reserves the id (a
// reservation keeps Delete from stopping the sandbox under it). The second
// dials the streams and calls the agent without the lock, each step with
// its own time limit, so a deaf guest cannot block other Creates and
// Deletes.
func (s *service) create(ctx context.Context, r *taskAPI.CreateTaskRequest) (_ *taskAPI.CreateTaskResponse, retErr error) {
	if err := validateID("container id", r.ID); err != nil {
		return nil, err
	}
	if r.Checkpoint != "" {
		// Not Unimplemented: containerd takes that answer to Create for
		// an older task API and retries with it.
		return nil, fmt.Errorf("checkpoint restore is not supported: %w", errdefs.ErrFailedPrecondition)
	}
	pc, err := s.prepareCreate(ctx, r)
	if err != nil {
		return nil, err
	}
	undo := cleanup.Stack{Timeout: stopTimeout}
	defer undo.OnError(ctx, &retErr)
	undo.Push("prepared create of "+r.ID, func(ctx context.Context) error {
		s.abandonCreate(ctx, r.ID, pc.sb.Share())
		return nil
	})
	sb := pc.sb

	spec, err := bundle.GuestSpec(pc.bs.Spec)
	if err != nil {
		return nil, err
	}
	if l := pc.bs.Spec.Linux; l != nil && l.Resources != nil {
		if err := sb.FitResources(ctx, l.Resources); err != nil {
			return nil, err
		}
	}
	paths := stdioPaths{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	p := newProcess(r.ID, "", paths, nil)
	st, stdio, err := openStreams(ctx, s.ctx, sb, sb.Config().Timeouts.AgentRequest.Duration, r.ID, "", paths)
	if err != nil {
		return nil, err
	}
	st.counts = s.tele
	_, err = sb.Agent().CreateContainer(ctx, &api.CreateContainerRequest{
		ContainerId:    r.ID,
		Spec:           spec,
		Rootfs:         guestRootfsPath(r.ID),
		Stdio:          stdio,
		PodContainerId: s.podContainerFor(r.ID, pc.bs),
		Submounts:      pc.submounts,
		PodHolder:      pc.bs.IsCRISandbox(),
	})
	if err != nil {
		st.abort()
		// The agent may have created it before the call failed.
		s.removeGuestContainer(ctx, sb, r.ID)
		return nil, fromAgent(err, "sandbox %s", sb.ID())
	}
	st.start(s.ctx)
	p.setStreams(st)
	p.setPid(uint32(sb.VMMPid()))

	c := newContainer(r.ID, r.Bundle, sb.Share(), p)
	s.mu.Lock()
	delete(s.creating, r.ID)
	s.containers[r.ID] = c
	s.mu.Unlock()

	pid := p.status().Pid
	s.send(&eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Pid:         pid,
	})
	log.G(ctx).WithFields(log.Fields{"container": r.ID, "sandbox": sb.ID()}).Info("container created")
	return &taskAPI.CreateTaskResponse{Pid: pid}, nil
}

// prepareCreate is the serialised half of Create: on success the id is
// reserved in s.creating and the rootfs mounted; on failure everything it
// did is undone.
func (s *service) prepareCreate(ctx context.Context, r *taskAPI.CreateTaskRequest) (_ *pendingCreate, retErr error) {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.mu.Lock()
	_, exists := s.containers[r.ID]
	creating := s.creating[r.ID]
	s.mu.Unlock()
	if exists || creating {
		return nil, fmt.Errorf("container %q: %w", r.ID, errdefs.ErrAlreadyExists)
	}
	bs, err := bundle.ReadSpec(r.Bundle)
	if err != nil {
		return nil, err
	}
	if err := bundle.CheckPodNamespaces(bs); err != nil {
		return nil, err
	}
	if err := bundle.CheckNetNS(bs.HostNetNS()); err != nil {
		return nil, err
	}
	configPath, err := configPathOption(r.Options)
	if err != nil {
		return nil, err
	}
	// The undo steps log their own failures, as they always did.
	undo := cleanup.Stack{Timeout: stopTimeout}
	defer undo.OnError(ctx, &retErr)

	sb, err := s.joinOrStartSandbox(ctx, r.ID, bs, configPath)
	if err != nil {
		return nil, err
	}
	if sb.started {
		undo.Push("start of sandbox "+sb.ID(), func(ctx context.Context) error {
			if err := s.stopSandbox(ctx, "its first container failed to create"); err != nil {
				log.G(ctx).WithError(err).Error("rollback: stop sandbox")
			}
			return nil
		})
	}

	policy := bundle.NewVolumePolicy(sb.Config(), sb.ID(), r.ID)
	plan := bundle.PlanVolumes(bs.Spec.Mounts, policy, r.ID)
	root := ""
	if bs.Spec.Root != nil {
		root = bs.Spec.Root.Path
	}
	fs, closeSources, err := bundle.ContainerFS(r.Rootfs, r.Bundle, root, plan, policy)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", r.ID, err)
	}
	submounts, err := sb.Share().AddContainer(ctx, r.ID, fs)
	closeSources()
	if err != nil {
		return nil, err
	}
	undo.Push("share of container "+r.ID, func(ctx context.Context) error {
		if err := removeFromShare(ctx, sb.Share(), r.ID); err != nil {
			log.G(ctx).WithError(err).Warn("rollback: remove container from the share")
		}
		return nil
	})
	bs.Spec.Mounts = plan.Mounts
	startTime, err := bundle.ProcessStartTime(os.Getpid())
	if err != nil {
		return nil, err
	}
	if err := bundle.WriteShimState(r.Bundle, bundle.ShimState{SandboxID: sb.ID(), ShimPid: os.Getpid(), ShimStartTime: startTime, ConfigPath: configPath}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.creating[r.ID] = true
	s.mu.Unlock()
	return &pendingCreate{sb: sb.PodVM, bs: bs, submounts: submounts}, nil
}

// abandonCreate undoes a prepared Create that failed later: it takes
// the container out of the share, drops the reservation and stops the
// sandbox when nothing is left in it.
func (s *service) abandonCreate(ctx context.Context, id string, share ContainerShare) {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if err := removeFromShare(ctx, share, id); err != nil {
		log.G(ctx).WithError(err).Warn("rollback: remove container from the share")
	}
	s.mu.Lock()
	delete(s.creating, id)
	empty := len(s.containers) == 0 && len(s.creating) == 0
	s.mu.Unlock()
	if empty {
		if err := s.stopSandbox(ctx, "its only container failed to create"); err != nil {
			log.G(ctx).WithError(err).Error("rollback: stop sandbox")
		}
	}
}

// podContainerFor returns the pod's sandbox container whose namespaces
// container id joins in the guest (bundle.Spec.PodContainer), or "" when
// this shim has no such container.
func (s *service) podContainerFor(id string, bs *bundle.Spec) string {
	pod := bs.PodContainer(id)
	if pod == "" {
		return ""
	}
	s.mu.Lock()
	_, ok := s.containers[pod]
	s.mu.Unlock()
	if !ok {
		return ""
	}
	return pod
}
