package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/veil-runtime/veil/agent/api"
)

var empty = &emptypb.Empty{}

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
		if err := s.thaw(ctx, fmt.Sprintf("SIGKILL to %s", p.name())); err != nil {
			return err
		}
	}
	sb, err := s.sandbox()
	if err != nil {
		return fmt.Errorf("signal %s: %w", p.name(), err)
	}
	_, err = sb.Agent().SignalProcess(ctx, &api.SignalRequest{
		ContainerId: r.ID,
		ExecId:      r.ExecID,
		Signal:      r.Signal,
		All:         r.All,
	})
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

// Exec registers an exec process; Start runs it.
func (s *service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	return empty, toService(s.exec(r))
}

func (s *service) exec(r *taskAPI.ExecProcessRequest) error {
	c, err := s.getContainer(r.ID)
	if err != nil {
		return err
	}
	if err := validateID("exec id", r.ExecID); err != nil {
		return fmt.Errorf("exec in %s: %w", r.ID, err)
	}
	if st := c.init.status().State; st != stateRunning {
		return fmt.Errorf("exec in %s: container is %s: %w", r.ID, st, errdefs.ErrFailedPrecondition)
	}
	if s.isPaused(r.ID) {
		return fmt.Errorf("exec in %s: container is paused: %w", r.ID, errdefs.ErrFailedPrecondition)
	}
	spec := r.Spec.GetValue()
	var proc specs.Process
	if err := json.Unmarshal(spec, &proc); err != nil {
		return fmt.Errorf("exec %s in %s: decode process spec: %w: %w", r.ExecID, r.ID, err, errdefs.ErrInvalidArgument)
	}
	paths := stdioPaths{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	if err := c.addExec(newProcess(r.ID, r.ExecID, paths, spec)); err != nil {
		return err
	}
	s.send(&eventstypes.TaskExecAdded{ContainerID: r.ID, ExecID: r.ExecID})
	return nil
}

// ResizePty sets a process's terminal size.
func (s *service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	return empty, toService(s.resizePty(ctx, r))
}

func (s *service) resizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) error {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return err
	}
	if !p.stdio.Terminal {
		return fmt.Errorf("resize %s: no terminal: %w", p.name(), errdefs.ErrFailedPrecondition)
	}
	sb, err := s.sandbox()
	if err != nil {
		return err
	}
	_, err = sb.Agent().ResizeTTY(ctx, &api.ResizeTTYRequest{ContainerId: r.ID, ExecId: r.ExecID, Width: r.Width, Height: r.Height})
	return fromAgent(err, "resize terminal of %s", p.name())
}

// CloseIO closes a process's stdin once what is buffered was delivered.
func (s *service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return empty, toService(err)
	}
	if !r.Stdin {
		return empty, nil
	}
	if st := p.getStreams(); st != nil {
		st.closeStdin()
	}
	return empty, nil
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

// Connect reports the shim's pid and the task's.
func (s *service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	resp := &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid())}
	if c, err := s.getContainer(r.ID); err == nil {
		resp.TaskPid = c.init.status().Pid
	}
	return resp, nil
}

// Shutdown exits the shim once no container is left.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	n := len(s.containers) + len(s.creating)
	s.mu.Unlock()
	if n > 0 {
		return empty, nil
	}
	s.shutdown.Shutdown()
	return empty, nil
}

// Checkpoint is not implemented.
func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, toService(fmt.Errorf("checkpoint: %w", errdefs.ErrNotImplemented))
}
