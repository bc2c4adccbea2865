package task

import (
	"context"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/shim/telemetry"
)

// serveTelemetry serves the shim's telemetry on sb's socket until the
// shim stops sb (stopping) or ends. A socket that cannot be made costs
// the metrics, not the pod: it is logged.
func (s *service) serveTelemetry(sb PodVM, stopping <-chan struct{}) {
	ts, ok := sb.(telemetryServer)
	if !ok {
		return
	}
	l, err := telemetry.Listen(ts.TelemetrySocket())
	if err != nil {
		log.G(s.ctx).WithError(err).WithField("sandbox", sb.ID()).Warn("no telemetry for veil monitor")
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	go func() {
		defer cancel()
		select {
		case <-stopping:
		case <-ctx.Done():
		}
	}()
	go func() { _ = telemetry.Serve(ctx, l, s.tele) }()
}
