package agentclient

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/vsock"
)

// Options tune a connection.
type Options struct {
	// RequestTimeout bounds every request but WaitProcess
	// (timeouts.agent_request); 0 leaves requests bounded by their
	// callers only.
	RequestTimeout time.Duration
	// Observe, when set, is told each request's method, duration and
	// error (WaitProcess, which lasts as long as a process, excluded).
	Observe Observer
}

// Observer is told of each finished agent request.
type Observer func(method string, took time.Duration, err error)

// Client is a connection to an agent that answered Health with this
// host's API version.
type Client struct {
	api.AgentService
	ttrpc *ttrpc.Client
}

// Close closes the connection; requests in flight fail.
func (c *Client) Close() error { return c.ttrpc.Close() }

// ConnectError is Dial's error when the agent's port could not be
// reached at all (no VM, no hybrid vsock socket, no listener).
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return "connect to the agent: " + e.Err.Error() }

func (e *ConnectError) Unwrap() error { return e.Err }

// Dial connects to the agent (api.AgentPort) through the hybrid vsock
// socket at vsockPath, asks for Health and checks the agent's API
// version; ctx bounds all of it. On error nothing stays open.
func Dial(ctx context.Context, vsockPath string, opts Options) (*Client, error) {
	conn, err := vsock.Dial(ctx, vsockPath, api.AgentPort)
	if err != nil {
		return nil, &ConnectError{Err: err}
	}
	var copts []ttrpc.ClientOpts
	var chain []ttrpc.UnaryClientInterceptor
	if opts.Observe != nil {
		chain = append(chain, observeRequests(opts.Observe))
	}
	if opts.RequestTimeout > 0 {
		chain = append(chain, boundRequests(opts.RequestTimeout))
	}
	if len(chain) > 0 {
		copts = append(copts, ttrpc.WithChainUnaryClientInterceptor(chain...))
	}
	tc := ttrpc.NewClient(conn, copts...)
	c := &Client{AgentService: api.NewAgentClient(tc), ttrpc: tc}
	h, err := c.Health(ctx, &api.HealthRequest{})
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("agent health via %s: %w", vsockPath, err)
	}
	if h.ApiVersion != api.APIVersion {
		_ = c.Close()
		return nil, fmt.Errorf("agent %s speaks API version %d, this host speaks %d", h.AgentVersion, h.ApiVersion, api.APIVersion)
	}
	return c, nil
}
