package agentclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-runtime/veil/agent/api"
)

// fakeAgent answers Health with version (or err) and never answers Stats.
type fakeAgent struct {
	api.AgentService
	version uint32
	err     error
}

func (a *fakeAgent) Health(context.Context, *api.HealthRequest) (*api.HealthResponse, error) {
	if a.err != nil {
		return nil, a.err
	}
	return &api.HealthResponse{ApiVersion: a.version, AgentVersion: "test"}, nil
}

func (a *fakeAgent) Stats(ctx context.Context, _ *api.StatsRequest) (*api.StatsResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// hybridListener is a hybrid vsock socket in front of the agent port:
// Accept takes the CONNECT line and answers OK before handing the
// connection on.
type hybridListener struct{ net.Listener }

func (l hybridListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		line, err := bufio.NewReader(io.LimitReader(c, 32)).ReadString('\n')
		if err == nil && line == "CONNECT 1024\n" {
			if _, err := io.WriteString(c, "OK 1\n"); err == nil {
				return c, nil
			}
		}
		_ = c.Close()
	}
}

// serveAgent serves a on a hybrid vsock socket and returns its path.
func serveAgent(t *testing.T, a api.AgentService) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vsock.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	api.RegisterAgentService(srv, a)
	done := make(chan struct{})
	go func() { _ = srv.Serve(context.Background(), hybridListener{ln}); close(done) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return path
}

func TestDial(t *testing.T) {
	for _, tc := range []struct {
		name        string
		agent       *fakeAgent // nil: no socket
		wantConnect bool       // the error is a ConnectError
		wantErr     string
	}{
		{name: "agent answers", agent: &fakeAgent{version: api.APIVersion}},
		{name: "other API version", agent: &fakeAgent{version: api.APIVersion + 1}, wantErr: "speaks API version"},
		{name: "health fails", agent: &fakeAgent{err: errors.New("sick")}, wantErr: "agent health via"},
		{name: "no socket", wantConnect: true, wantErr: "connect to the agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "none.sock")
			if tc.agent != nil {
				path = serveAgent(t, tc.agent)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := Dial(ctx, path, Options{})
			var cerr *ConnectError
			if errors.As(err, &cerr) != tc.wantConnect {
				t.Errorf("error %v: ConnectError %v, want %v", err, !tc.wantConnect, tc.wantConnect)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Dial = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Health(ctx, &api.HealthRequest{}); err != nil {
				t.Fatalf("Health after Dial: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDialBoundsRequests: a connection made with a RequestTimeout bounds
// its requests; one made without leaves them to the caller.
func TestDialBoundsRequests(t *testing.T) {
	path := serveAgent(t, &fakeAgent{version: api.APIVersion})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name    string
		opts    Options
		caller  time.Duration
		bounded bool // the error is the bound's, naming the request
	}{
		{name: "bounded", opts: Options{RequestTimeout: 20 * time.Millisecond}, bounded: true},
		{name: "unbounded: the caller's deadline", caller: 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(ctx, path, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			rctx := ctx
			if tc.caller > 0 {
				var cancel context.CancelFunc
				rctx, cancel = context.WithTimeout(ctx, tc.caller)
				defer cancel()
			}
			_, err = c.Stats(rctx, &api.StatsRequest{})
			if err == nil {
				t.Fatal("Stats answered")
			}
			if got := status.Code(err); tc.bounded && got != codes.DeadlineExceeded {
				t.Fatalf("Stats: code %s (%v), want DeadlineExceeded", got, err)
			}
			if named := strings.Contains(err.Error(), "agent did not answer Stats"); named != tc.bounded {
				t.Fatalf("Stats: %v; bounded by the connection: %v, want %v", err, named, tc.bounded)
			}
		})
	}
}
