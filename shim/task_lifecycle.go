package shim

import (
	"context"
	"fmt"
	"os"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veil-runtime/veil/agent/api"
)

type waitRequest = api.ProcessRequest

func timestamp(t time.Time) *timestamppb.Timestamp { return protobuf.ToTimestamp(t) }

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
	bs *bundleSpec
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
	defer func() {
		if retErr != nil {
			s.abandonCreate(ctx, r.ID, pc.sb.Share())
		}
	}()
	sb := pc.sb

	spec, err := guestSpec(pc.bs.Spec)
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
	_, err = sb.Agent().CreateContainer(ctx, &api.CreateContainerRequest{
		ContainerId:    r.ID,
		Spec:           spec,
		Rootfs:         guestRootfsPath(r.ID),
		Stdio:          stdio,
		PodContainerId: s.podContainerFor(r.ID, pc.bs),
		Submounts:      pc.submounts,
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
	bs, err := readSpec(r.Bundle)
	if err != nil {
		return nil, err
	}
	if err := checkPodNamespaces(bs); err != nil {
		return nil, err
	}
	if err := checkNetNS(bs.hostNetNS()); err != nil {
		return nil, err
	}
	configPath, err := configPathOption(r.Options)
	if err != nil {
		return nil, err
	}
	var rollback []func()
	defer func() {
		if retErr != nil {
			for i := len(rollback) - 1; i >= 0; i-- {
				rollback[i]()
			}
		}
	}()

	sb, err := s.joinOrStartSandbox(ctx, r.ID, bs, configPath)
	if err != nil {
		return nil, err
	}
	if sb.started {
		rollback = append(rollback, func() {
			if err := s.stopSandbox(ctx, "its first container failed to create"); err != nil {
				log.G(ctx).WithError(err).Error("rollback: stop sandbox")
			}
		})
	}

	policy := newVolumePolicy(sb.Config(), sb.ID(), r.ID)
	plan := planVolumes(bs.Spec.Mounts, policy, r.ID)
	root := ""
	if bs.Spec.Root != nil {
		root = bs.Spec.Root.Path
	}
	fs, closeSources, err := containerFS(r.Rootfs, r.Bundle, root, plan, policy)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", r.ID, err)
	}
	submounts, err := sb.Share().AddContainer(ctx, r.ID, fs)
	closeSources()
	if err != nil {
		return nil, err
	}
	rollback = append(rollback, func() {
		if err := removeFromShare(ctx, sb.Share(), r.ID); err != nil {
			log.G(ctx).WithError(err).Warn("rollback: remove container from the share")
		}
	})
	bs.Spec.Mounts = plan.Mounts
	startTime, err := processStartTime(os.Getpid())
	if err != nil {
		return nil, err
	}
	if err := writeShimState(r.Bundle, shimState{SandboxID: sb.ID(), ShimPid: os.Getpid(), ShimStartTime: startTime, ConfigPath: configPath}); err != nil {
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
func (s *service) abandonCreate(ctx context.Context, id string, share containerShare) {
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

// oomScoreAdjuster is a sandbox whose host helpers take the
// oom_score_adj of the pod's containers (optional ability).
type oomScoreAdjuster interface {
	RaiseOOMScoreAdj(adj int) error
}

// raiseOOMScoreAdj makes the VM's helpers as killable as the most
// killable container of the pod: the VM holds the containers' memory.
func raiseOOMScoreAdj(ctx context.Context, sb PodVM, bs *bundleSpec) {
	a, ok := sb.(oomScoreAdjuster)
	if !ok || bs.Spec.Process == nil || bs.Spec.Process.OOMScoreAdj == nil {
		return
	}
	if err := a.RaiseOOMScoreAdj(*bs.Spec.Process.OOMScoreAdj); err != nil {
		log.G(ctx).WithError(err).Warn("raise the sandbox helpers' oom_score_adj")
	}
}

// joinedSandbox is the sandbox a container goes into, and whether this
// Create started it.
type joinedSandbox struct {
	PodVM
	started bool
}

// joinOrStartSandbox returns the shim's sandbox, starting it for the first
// container (with the config file configPath when not empty, and the
// container's io.veil.config.* annotations). A container of another pod is
// refused.
func (s *service) joinOrStartSandbox(ctx context.Context, containerID string, bs *bundleSpec, configPath string) (joinedSandbox, error) {
	want, err := sandboxIDFor(containerID, bs.Spec.Annotations)
	if err != nil {
		return joinedSandbox{}, err
	}
	s.mu.Lock()
	sb := s.sb
	s.mu.Unlock()
	if sb != nil {
		if sb.ID() != want {
			return joinedSandbox{}, fmt.Errorf("container %s belongs to sandbox %s but this shim serves %s: %w", containerID, want, sb.ID(), errdefs.ErrInvalidArgument)
		}
		if _, err := s.sandbox(); err != nil {
			return joinedSandbox{}, err
		}
		raiseOOMScoreAdj(ctx, sb, bs)
		return joinedSandbox{PodVM: sb}, nil
	}
	shm, err := podShmSize(bs.Spec.Mounts, volumePolicy{podID: want})
	if err != nil {
		return joinedSandbox{}, err
	}
	opts := SandboxOptions{
		NetNSPath:    bs.hostNetNS(),
		Hostname:     bs.Spec.Hostname,
		ConfigPath:   configPath,
		Annotations:  bs.Spec.Annotations,
		ShmSizeBytes: shm,
		DNS:          bs.dns(want),
		CRI:          bs.Spec.Annotations[annotationContainerType] == containerTypeSandbox,
	}
	if bs.Spec.Linux != nil {
		opts.CgroupsPath = bs.Spec.Linux.CgroupsPath
	}
	if bs.Spec.Process != nil {
		opts.OOMScoreAdj = bs.Spec.Process.OOMScoreAdj
	}
	start := time.Now()
	// The VM outlives this request: it is bound to the shim's context;
	// the sandbox bounds its own start with the configured timeouts.
	sb, err = s.launcher.Start(s.ctx, want, opts)
	if err != nil {
		return joinedSandbox{}, fmt.Errorf("start sandbox %s: %w", want, err)
	}
	log.G(ctx).WithFields(log.Fields{"sandbox": want, "took": time.Since(start)}).Info("sandbox started")
	stopping := make(chan struct{})
	s.mu.Lock()
	s.sb = sb
	s.sbConfigPath = configPath
	s.sbStopping = stopping
	s.mu.Unlock()
	go s.watchVM(sb, stopping)
	return joinedSandbox{PodVM: sb, started: true}, nil
}

// stopSandbox stops the sandbox on purpose (its last container is gone).
// When Stop fails it falls back to the launcher's Cleanup, which removes
// what a crashed shim would have left; only when that fails too is the
// sandbox reported as leaked.
func (s *service) stopSandbox(ctx context.Context, why string) error {
	s.mu.Lock()
	sb, stopping, configPath := s.sb, s.sbStopping, s.sbConfigPath
	s.sb, s.sbStopping, s.sbConfigPath = nil, nil, ""
	s.mu.Unlock()
	if sb == nil {
		return nil
	}
	close(stopping)
	logger := log.G(ctx).WithFields(log.Fields{"sandbox": sb.ID(), "why": why})
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	stopErr := sb.Stop(sctx)
	if stopErr == nil {
		logger.Info("sandbox stopped")
		return nil
	}
	logger.WithError(stopErr).Error("stop sandbox failed; cleaning up what is left of it")
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer ccancel()
	l, err := launcherFor(s.launcher, configPath)
	if err == nil {
		err = l.Cleanup(cctx, sb.ID())
	}
	if err != nil {
		return fmt.Errorf("stop sandbox %s: %w; then clean it up: %w", sb.ID(), stopErr, err)
	}
	logger.Warn("sandbox removed by cleanup after its stop failed")
	return nil
}

// Start starts a container's init process or an exec.
func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	resp, err := s.start(ctx, r)
	if err != nil {
		log.G(ctx).WithError(err).WithFields(log.Fields{"container": r.ID, "exec": r.ExecID}).Error("start")
	}
	return resp, toService(err)
}

func (s *service) start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	// Of concurrent Starts only one gets past this.
	if err := p.markStarting(); err != nil {
		return nil, err
	}
	sb, err := s.sandbox()
	if err != nil {
		p.markExited(vmDeathExitStatus, time.Now(), nil)
		return nil, err
	}
	if r.ExecID == "" {
		_, err = sb.Agent().StartContainer(ctx, &api.ContainerRequest{ContainerId: c.id})
		err = fromAgent(err, "sandbox %s", sb.ID())
	} else {
		err = s.startExec(ctx, sb, p)
	}
	if err != nil {
		// The agent may have started the process before the call failed
		// (a timeout, a cut connection): make sure it does not run on
		// while the host believes it never did.
		s.killAfterFailedStart(ctx, sb, p)
		p.markExited(vmDeathExitStatus, time.Now(), nil)
		return nil, err
	}
	if err := p.markRunning(); err != nil {
		return nil, err
	}
	pid := p.status().Pid
	if r.ExecID == "" {
		s.send(&eventstypes.TaskStart{ContainerID: c.id, Pid: pid})
	} else {
		s.send(&eventstypes.TaskExecStarted{ContainerID: c.id, ExecID: r.ExecID, Pid: pid})
	}
	go s.waitProcess(sb, p)
	return &taskAPI.StartResponse{Pid: pid}, nil
}

// startExec connects an exec's streams and has the agent run it.
func (s *service) startExec(ctx context.Context, sb PodVM, p *process) error {
	st, stdio, err := openStreams(ctx, s.ctx, sb, sb.Config().Timeouts.AgentRequest.Duration, p.containerID, p.execID, p.stdio)
	if err != nil {
		return err
	}
	_, err = sb.Agent().ExecProcess(ctx, &api.ExecProcessRequest{
		ContainerId: p.containerID,
		ExecId:      p.execID,
		Process:     p.spec,
		Stdio:       stdio,
	})
	if err != nil {
		st.abort()
		return fromAgent(err, "sandbox %s", sb.ID())
	}
	st.start(s.ctx)
	p.setStreams(st)
	p.setPid(uint32(sb.VMMPid()))
	return nil
}

// killAfterFailedStart SIGKILLs a process (an init with every process of
// its container) whose start failed on the host side. Errors only mean
// there is nothing to kill, or a dead agent: they are logged.
func (s *service) killAfterFailedStart(ctx context.Context, sb PodVM, p *process) {
	if vmGone(sb) {
		return
	}
	_, err := sb.Agent().SignalProcess(context.WithoutCancel(ctx), &api.SignalRequest{
		ContainerId: p.containerID,
		ExecId:      p.execID,
		Signal:      uint32(unix.SIGKILL),
		All:         p.execID == "",
	})
	if err != nil {
		log.G(ctx).WithError(fromAgent(err, "kill %s after its failed start", p.name())).Debug("nothing killed")
	}
}
