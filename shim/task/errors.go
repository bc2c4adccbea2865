package task

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

// toService converts an error for the ttrpc edge of the task service. Only
// the exported task methods call it; everything below works with ordinary
// wrapped errors so the messages (for example the agent's
// `exec: "nosuchcmd": executable file not found in $PATH`) reach ctr intact.
func toService(err error) error {
	if err == nil {
		return nil
	}
	return errgrpc.ToGRPC(err)
}

// fromAgent turns an error returned by an agent RPC back into a native
// error of the matching errdefs class, keeping the agent's message, and adds
// what the host was doing.
func fromAgent(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errgrpc.ToNative(err))
}

// errProcessFinished is returned for operations on a process that exited.
var errProcessFinished = fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)
