package task

import (
	"context"
	"encoding/json"
	"fmt"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/veil-runtime/veil/agent/api"
)

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
