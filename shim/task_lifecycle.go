package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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

func (s *service) create(ctx context.Context, r *taskAPI.CreateTaskRequest) (_ *taskAPI.CreateTaskResponse, retErr error) {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if r.Checkpoint != "" {
		return nil, fmt.Errorf("checkpoint restore: %w", errdefs.ErrNotImplemented)
	}
	if _, err := s.getContainer(r.ID); err == nil {
		return nil, fmt.Errorf("container %q: %w", r.ID, errdefs.ErrAlreadyExists)
	}
	bs, err := readSpec(r.Bundle)
	if err != nil {
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
		rollback = append(rollback, func() { s.stopSandbox(ctx, "its first container failed to create") })
	}

	target := hostRootfsPath(sb.SharedDir(), r.ID)
	bundleRootfs := "rootfs"
	if bs.Spec.Root != nil && bs.Spec.Root.Path != "" {
		bundleRootfs = bs.Spec.Root.Path
	}
	if !filepath.IsAbs(bundleRootfs) {
		bundleRootfs = filepath.Join(r.Bundle, bundleRootfs)
	}
	if err := s.mounter.Mount(r.Rootfs, bundleRootfs, target); err != nil {
		return nil, err
	}
	rollback = append(rollback, func() {
		if err := s.mounter.Unmount(target); err != nil {
			log.G(ctx).WithError(err).Warn("rollback: unmount rootfs")
		}
	})
	if err := writeShimState(r.Bundle, shimState{SandboxID: sb.ID(), HostRootfs: target, ShimPid: os.Getpid(), ConfigPath: configPath}); err != nil {
		return nil, err
	}

	spec, err := guestSpec(bs.Spec)
	if err != nil {
		return nil, err
	}
	paths := stdioPaths{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	p := newProcess(r.ID, "", paths, nil)
	st, stdio, err := openStreams(ctx, s.ctx, sb, r.ID, "", paths)
	if err != nil {
		return nil, err
	}
	rollback = append(rollback, st.abort)

	_, err = sb.Agent().CreateContainer(ctx, &api.CreateContainerRequest{
		ContainerId: r.ID,
		Spec:        spec,
		Rootfs:      guestRootfsPath(r.ID),
		Stdio:       stdio,
	})
	if err != nil {
		return nil, fromAgent(err, "sandbox %s", sb.ID())
	}
	st.start(s.ctx)
	p.setStreams(st)
	p.setPid(vmmPid(sb.Pids()))

	c := newContainer(r.ID, r.Bundle, target, p)
	s.mu.Lock()
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

// joinedSandbox is the sandbox a container goes into, and whether this
// Create started it.
type joinedSandbox struct {
	Sandbox
	started bool
}

// joinOrStartSandbox returns the shim's sandbox, starting it for the first
// container (with the config file configPath when not empty, and the
// container's io.veil.config.* annotations). A container of another pod is
// refused.
func (s *service) joinOrStartSandbox(ctx context.Context, containerID string, bs *bundleSpec, configPath string) (joinedSandbox, error) {
	want := sandboxIDFor(containerID, bs.Spec.Annotations)
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
		return joinedSandbox{Sandbox: sb}, nil
	}
	opts := SandboxOptions{NetNSPath: bs.hostNetNS(), Hostname: bs.Spec.Hostname, ConfigPath: configPath, Annotations: bs.Spec.Annotations}
	start := time.Now()
	// The VM outlives this request: it is bound to the shim's context;
	// the sandbox bounds its own start with the configured timeouts.
	sb, err := s.launcher.Start(s.ctx, want, opts)
	if err != nil {
		return joinedSandbox{}, fmt.Errorf("start sandbox %s: %w", want, err)
	}
	log.G(ctx).WithFields(log.Fields{"sandbox": want, "took": time.Since(start)}).Info("sandbox started")
	stopping := make(chan struct{})
	s.mu.Lock()
	s.sb = sb
	s.sbStopping = stopping
	s.mu.Unlock()
	go s.watchVM(sb, stopping)
	return joinedSandbox{Sandbox: sb, started: true}, nil
}

// stopSandbox stops the sandbox on purpose (its last container is gone).
func (s *service) stopSandbox(ctx context.Context, why string) {
	s.mu.Lock()
	sb, stopping := s.sb, s.sbStopping
	s.sb, s.sbStopping = nil, nil
	s.mu.Unlock()
	if sb == nil {
		return
	}
	close(stopping)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := sb.Stop(sctx); err != nil {
		log.G(ctx).WithError(err).WithField("sandbox", sb.ID()).Error("stop sandbox")
		return
	}
	log.G(ctx).WithFields(log.Fields{"sandbox": sb.ID(), "why": why}).Info("sandbox stopped")
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
	if p.status().State != stateCreated {
		return nil, fmt.Errorf("process %s is %s: %w", p.name(), p.status().State, errdefs.ErrFailedPrecondition)
	}
	sb, err := s.sandbox()
	if err != nil {
		return nil, err
	}
	if r.ExecID == "" {
		if _, err := sb.Agent().StartContainer(ctx, &api.ContainerRequest{ContainerId: c.id}); err != nil {
			p.markExited(vmDeathExitStatus, time.Now())
			return nil, fromAgent(err, "sandbox %s", sb.ID())
		}
	} else {
		if err := s.startExec(ctx, sb, p); err != nil {
			p.markExited(vmDeathExitStatus, time.Now())
			return nil, err
		}
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
func (s *service) startExec(ctx context.Context, sb Sandbox, p *process) error {
	st, stdio, err := openStreams(ctx, s.ctx, sb, p.containerID, p.execID, p.stdio)
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
	p.setPid(vmmPid(sb.Pids()))
	return nil
}

// Delete deletes an exec, or a container (its rootfs, and the sandbox
// with its last container).
func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	resp, err := s.delete(ctx, r)
	if err != nil {
		log.G(ctx).WithError(err).WithFields(log.Fields{"container": r.ID, "exec": r.ExecID}).Error("delete")
	}
	return resp, toService(err)
}

func (s *service) delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, err := s.getContainer(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		p, err := c.removeExec(r.ExecID)
		if err != nil {
			return nil, err
		}
		if st := p.getStreams(); st != nil {
			st.abort()
		}
		ps := p.status()
		return &taskAPI.DeleteResponse{Pid: ps.Pid, ExitStatus: ps.ExitStatus, ExitedAt: timestamp(ps.ExitedAt)}, nil
	}

	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	ps := c.init.status()
	if ps.State == stateRunning {
		return nil, fmt.Errorf("container %s is running: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	if sb, err := s.sandbox(); err == nil {
		_, err := sb.Agent().RemoveContainer(ctx, &api.RemoveContainerRequest{ContainerId: c.id, Force: ps.State == stateCreated})
		if err != nil {
			log.G(ctx).WithError(fromAgent(err, "remove container %s", c.id)).Warn("guest kept the container; removing it on the host anyway")
		}
	}
	c.init.markExited(128+uint32(unix.SIGKILL), time.Now())
	for _, p := range c.all() {
		if st := p.getStreams(); st != nil {
			st.abort()
		}
	}
	if err := s.mounter.Unmount(c.hostRootfs); err != nil {
		return nil, err
	}

	s.mu.Lock()
	delete(s.containers, c.id)
	last := len(s.containers) == 0
	s.mu.Unlock()
	if last {
		s.stopSandbox(ctx, "its last container was deleted")
	}

	ps = c.init.status()
	s.send(&eventstypes.TaskDelete{
		ContainerID: c.id,
		Pid:         ps.Pid,
		ExitStatus:  ps.ExitStatus,
		ExitedAt:    timestamp(ps.ExitedAt),
	})
	return &taskAPI.DeleteResponse{Pid: ps.Pid, ExitStatus: ps.ExitStatus, ExitedAt: timestamp(ps.ExitedAt)}, nil
}
