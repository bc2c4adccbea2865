package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/containerd/log"
	"github.com/containerd/ttrpc"

	"github.com/veil-runtime/veil/shim/api"
)

// Listen creates the owner-only Unix socket at path (the sandbox
// directory's statedir.ShimSocket), replacing a stale one.
func Listen(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("telemetry socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("telemetry socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("telemetry socket: %w", err)
	}
	return l, nil
}

// Serve answers the Telemetry service from r on l until ctx ends; it
// closes l (which removes a Unix listener's socket file).
func Serve(ctx context.Context, l net.Listener, r *Recorder) error {
	srv, err := ttrpc.NewServer()
	if err != nil {
		_ = l.Close()
		return fmt.Errorf("telemetry server: %w", err)
	}
	api.RegisterTelemetryService(srv, service{r})
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	if err := srv.Serve(ctx, l); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
		log.G(ctx).WithError(err).Warn("telemetry server ended")
		return err
	}
	return nil
}

type service struct{ r *Recorder }

func (s service) Get(context.Context, *api.GetRequest) (*api.GetResponse, error) {
	return s.r.Snapshot(), nil
}
