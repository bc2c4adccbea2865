package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-runtime/veil/agent/api"
)

func TestToStatus(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"not found", fmt.Errorf("container c1: %w", errdefs.ErrNotFound), codes.NotFound},
		{"exists", fmt.Errorf("container c1: %w", errdefs.ErrAlreadyExists), codes.AlreadyExists},
		{"invalid", fmt.Errorf("bad spec: %w", errdefs.ErrInvalidArgument), codes.InvalidArgument},
		{"precondition", fmt.Errorf("not running: %w", errdefs.ErrFailedPrecondition), codes.FailedPrecondition},
		{"not implemented", fmt.Errorf("no network: %w", errdefs.ErrNotImplemented), codes.Unimplemented},
		{"deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"plain", errors.New(`exec: "nosuchcmd": executable file not found in $PATH`), codes.Unknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, ok := status.FromError(toStatus(tc.err))
			if !ok {
				t.Fatal("not a status error")
			}
			if st.Code() != tc.want || st.Message() != tc.err.Error() {
				t.Fatalf("status = %v %q, want %v %q", st.Code(), st.Message(), tc.want, tc.err.Error())
			}
		})
	}
	if toStatus(nil) != nil {
		t.Fatal("nil error mapped to non-nil")
	}
}

// TestErrorClassesReachTheHost sends an error of every errdefs class from
// the agent's service, over a real ttrpc connection, to a client that
// turns it back the way the shim does (errgrpc.ToNative): the class and
// the message must both arrive.
func TestErrorClassesReachTheHost(t *testing.T) {
	cases := []struct {
		name  string
		cause error
		is    func(error) bool
	}{
		{"unknown", errdefs.ErrUnknown, errdefs.IsUnknown},
		{"invalid argument", errdefs.ErrInvalidArgument, errdefs.IsInvalidArgument},
		{"not found", errdefs.ErrNotFound, errdefs.IsNotFound},
		{"already exists", errdefs.ErrAlreadyExists, errdefs.IsAlreadyExists},
		{"permission denied", errdefs.ErrPermissionDenied, errdefs.IsPermissionDenied},
		{"resource exhausted", errdefs.ErrResourceExhausted, errdefs.IsResourceExhausted},
		{"failed precondition", errdefs.ErrFailedPrecondition, errdefs.IsFailedPrecondition},
		// gRPC has no codes of their own for these two: errgrpc sends
		// them as FailedPrecondition with the class in the details.
		{"conflict", errdefs.ErrConflict, errdefs.IsConflict},
		{"not modified", errdefs.ErrNotModified, errdefs.IsNotModified},
		{"aborted", errdefs.ErrAborted, errdefs.IsAborted},
		{"out of range", errdefs.ErrOutOfRange, errdefs.IsOutOfRange},
		{"not implemented", errdefs.ErrNotImplemented, errdefs.IsNotImplemented},
		{"internal", errdefs.ErrInternal, errdefs.IsInternal},
		{"unavailable", errdefs.ErrUnavailable, errdefs.IsUnavailable},
		{"data loss", errdefs.ErrDataLoss, errdefs.IsDataLoss},
		{"unauthenticated", errdefs.ErrUnauthenticated, errdefs.IsUnauthorized},
		{"deadline exceeded", context.DeadlineExceeded, errdefs.IsDeadlineExceeded},
		{"canceled", context.Canceled, errdefs.IsCanceled},
		{"no class", errors.New("plain"), errdefs.IsUnknown},
	}
	fc := &fakeContainers{}
	client := serveOverTTRPC(t, NewService("test", fc, &fakeGuest{}))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc.startErr = fmt.Errorf(`start container c1: exec: "nosuchcmd": %w`, tc.cause)
			_, err := client.StartContainer(t.Context(), &api.ContainerRequest{ContainerId: "c1"})
			if err == nil {
				t.Fatal("StartContainer succeeded")
			}
			native := errgrpc.ToNative(err)
			if !tc.is(native) {
				t.Errorf("host got %v (%T), not of class %q", native, native, tc.name)
			}
			if want := fc.startErr.Error(); native.Error() != want {
				t.Errorf("host got message %q, want %q", native.Error(), want)
			}
		})
	}
}

// serveOverTTRPC serves svc on a Unix socket and returns a client of it.
func serveOverTTRPC(t *testing.T, svc api.AgentService) api.AgentService {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	api.RegisterAgentService(srv, svc)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.WithoutCancel(t.Context()), l) }()
	conn, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	t.Cleanup(func() {
		_ = client.Close()
		_ = srv.Close()
		if err := <-done; err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return api.NewAgentClient(client)
}
