package inspect

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/agentclient"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// dialTimeout bounds connecting to the agent and its Health answer.
const dialTimeout = 10 * time.Second

// Agent is the part of the guest agent the operator tool uses.
type Agent interface {
	// DebugExec runs a program in the guest outside any container.
	DebugExec(ctx context.Context, r *api.DebugExecRequest) (*api.DebugExecResponse, error)
	// Stats reports the guest's and its containers' resource use.
	Stats(ctx context.Context, r *api.StatsRequest) (*api.StatsResponse, error)
	// Close closes the connection.
	Close() error
}

// DialFunc connects to the agent of the sandbox whose state directory is
// dir.
type DialFunc func(ctx context.Context, dir string) (Agent, error)

// DialAgent opens a second connection to a running sandbox's agent (the
// shim keeps its own) through the hybrid vsock socket <dir>/vsock.sock,
// and checks the agent's protocol version (runtime/agentclient).
func DialAgent(ctx context.Context, dir string) (Agent, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := agentclient.Dial(ctx, filepath.Join(dir, statedir.VsockSocket), agentclient.Options{})
	var cerr *agentclient.ConnectError
	if errors.As(err, &cerr) {
		return nil, fmt.Errorf("%w (is the sandbox running?)", err)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ExecOptions describe a debug process.
type ExecOptions struct {
	// Argv is the program and its arguments.
	Argv []string
	// Env entries (KEY=VALUE) are added to the agent's environment.
	Env []string
	// Stdin is the process's whole standard input.
	Stdin []byte
	// Timeout bounds the run in the guest; 0 is the agent's default.
	Timeout time.Duration
}

// Exec runs a debug process in the guest of sandbox id, outside any
// container, and returns its exit status and output.
func (r *Reader) Exec(ctx context.Context, id string, dial DialFunc, opts ExecOptions) (*api.DebugExecResponse, error) {
	dir, err := r.Dir(id)
	if err != nil {
		return nil, err
	}
	agent, err := dial(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", id, err)
	}
	defer func() { _ = agent.Close() }()
	resp, err := agent.DebugExec(ctx, &api.DebugExecRequest{
		Argv:      opts.Argv,
		Env:       opts.Env,
		Stdin:     opts.Stdin,
		TimeoutMs: uint32(opts.Timeout / time.Millisecond),
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: debug exec %q: %w", id, opts.Argv, err)
	}
	return resp, nil
}
