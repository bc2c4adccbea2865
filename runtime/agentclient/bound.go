package agentclient

import (
	"context"
	"errors"
	"path"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unboundedMethods are the agent requests that last as long as what they
// wait for: a process's exit.
var unboundedMethods = map[string]bool{"WaitProcess": true}

// boundRequests is the agent client's interceptor: every request but
// the unbounded ones gets at most d (timeouts.agent_request), and one
// that runs out says so, naming the request, instead of a bare
// "context deadline exceeded" (gRPC DeadlineExceeded). The caller's own,
// earlier deadline stays.
func boundRequests(d time.Duration) ttrpc.UnaryClientInterceptor {
	return func(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, info *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
		method := path.Base(info.FullMethod)
		if unboundedMethods[method] {
			return invoke(ctx, req, resp)
		}
		rctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		err := invoke(rctx, req, resp)
		if err != nil && ctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
			// A status, so that the class survives errgrpc.ToNative
			// in the shim and errgrpc.ToGRPC at its edge.
			return status.Errorf(codes.DeadlineExceeded,
				"agent did not answer %s within %s (timeouts.agent_request): the guest is frozen or overloaded", method, d)
		}
		return err
	}
}

// observeRequests tells observe of every request but the unbounded ones,
// once it finished (its bound included).
func observeRequests(observe Observer) ttrpc.UnaryClientInterceptor {
	return func(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, info *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
		method := path.Base(info.FullMethod)
		if unboundedMethods[method] {
			return invoke(ctx, req, resp)
		}
		began := time.Now()
		err := invoke(ctx, req, resp)
		observe(method, time.Since(began), err)
		return err
	}
}
