package inspect

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/statedir"
	shimapi "github.com/veil-runtime/veil/shim/api"
)

// ShimTelemetry asks sb's shim for what only it knows (shim/api: agent
// request durations, stdio bytes) over the
// sandbox directory's statedir.ShimSocket; pid is the shim's, the
// socket's peer as the kernel reports it.
func (r *Reader) ShimTelemetry(ctx context.Context, sb SandboxInfo) (pid int, _ *shimapi.GetResponse, _ error) {
	conn, err := statedir.DialUnix(ctx, filepath.Join(sb.Dir, statedir.ShimSocket))
	if err != nil {
		return 0, nil, fmt.Errorf("sandbox %s: shim: %w", sb.ID, err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		_ = conn.Close()
		return 0, nil, fmt.Errorf("sandbox %s: shim: %w", sb.ID, err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		_ = conn.Close()
		return 0, nil, fmt.Errorf("sandbox %s: shim's credentials: %w", sb.ID, errors.Join(err, credErr))
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c := ttrpc.NewClient(conn)
	defer func() { _ = c.Close() }()
	resp, err := shimapi.NewTelemetryClient(c).Get(ctx, &shimapi.GetRequest{})
	if err != nil {
		return 0, nil, fmt.Errorf("sandbox %s: shim telemetry: %w", sb.ID, err)
	}
	return int(cred.Pid), resp, nil
}
