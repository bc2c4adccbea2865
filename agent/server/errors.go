package server

import (
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus turns an internal error into the status error the host
// receives: containerd's errgrpc.ToGRPC, so every errdefs class (and
// context.DeadlineExceeded/Canceled) keeps its code and the host's
// errgrpc.ToNative gives it back; an error of no class becomes Unknown.
// The full message is kept. Only the service edge calls it.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	err = errgrpc.ToGRPC(err)
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unknown, err.Error())
}
