package agentclient

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestBoundRequests: every agent request but WaitProcess gets the
// configured bound, and one that runs out names itself with gRPC
// DeadlineExceeded; a caller's earlier deadline is the caller's error.
func TestBoundRequests(t *testing.T) {
	// hang is an agent that never answers.
	hang := func(ctx context.Context, _ *ttrpc.Request, _ *ttrpc.Response) error {
		<-ctx.Done()
		return ctx.Err()
	}
	cases := []struct {
		name     string
		method   string
		caller   time.Duration // 0: no deadline of the caller's
		invoke   ttrpc.Invoker
		wantCode codes.Code
		wantMsg  string
	}{
		{name: "unanswered request", method: "SignalProcess", invoke: hang, wantCode: codes.DeadlineExceeded, wantMsg: "agent did not answer SignalProcess within 20ms"},
		{name: "answered request", method: "Stats", invoke: func(context.Context, *ttrpc.Request, *ttrpc.Response) error { return nil }, wantCode: codes.OK},
		{name: "caller's deadline first", method: "Stats", caller: time.Millisecond, invoke: hang, wantCode: codes.Unknown, wantMsg: "context deadline exceeded"},
		{name: "WaitProcess unbounded", method: "WaitProcess", invoke: func(ctx context.Context, _ *ttrpc.Request, _ *ttrpc.Response) error {
			if _, ok := ctx.Deadline(); ok {
				return status.Error(codes.Internal, "WaitProcess got a deadline")
			}
			return nil
		}, wantCode: codes.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.caller > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.caller)
				defer cancel()
			}
			err := boundRequests(20*time.Millisecond)(ctx, &ttrpc.Request{}, &ttrpc.Response{},
				&ttrpc.UnaryClientInfo{FullMethod: "/veil.agent.v1.Agent/" + tc.method}, tc.invoke)
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("code %s (%v), want %s", got, err, tc.wantCode)
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q lacks %q", err, tc.wantMsg)
			}
		})
	}
}
