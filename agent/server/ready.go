package server

import (
	"context"
	"fmt"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/veil-runtime/veil/agent/api"
)

// readyTimeout bounds the ready notification; a host that does not accept
// it will fail the sandbox start on its own dial timeout.
const readyTimeout = 10 * time.Second

// notifyReady tells the host that the agent serves: it connects to the
// host's vsock port api.ReadyPort and writes api.ReadyMessage.
func notifyReady(ctx context.Context) error {
	conn, err := vsock.Dial(vsock.Host, api.ReadyPort, nil)
	if err != nil {
		return fmt.Errorf("dial host vsock port %d: %w", api.ReadyPort, err)
	}
	defer func() { _ = conn.Close() }()
	deadline := time.Now().Add(readyTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("ready notification: %w", err)
	}
	if _, err := conn.Write([]byte(api.ReadyMessage)); err != nil {
		return fmt.Errorf("write ready notification: %w", err)
	}
	return nil
}
