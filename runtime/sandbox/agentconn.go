package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/agentclient"
	"github.com/veil-runtime/veil/runtime/console"
	"github.com/veil-runtime/veil/runtime/hypervisor"
)

const (
	// dialInterval paces the agent dial attempts once the agent said it
	// serves.
	dialInterval = 20 * time.Millisecond
	// attemptTimeout bounds one dial + Health attempt.
	attemptTimeout = 2 * time.Second
)

// connectAgent waits for the agent's ready notification, then dials it
// until Health answers, all within the agent dial timeout counted from
// launch; it fails at once when the VM or virtiofsd dies.
//
// The host never dials a guest port that has no listener yet: measured
// with vhost-device-vsock 0.3.0, such a refused connection now and then
// leaves the device deaf to every later one (about 1 boot in 12).
func (s *Sandbox) connectAgent(ctx context.Context, launch time.Time, ready <-chan struct{}) error {
	dctx, cancel := context.WithDeadline(ctx, launch.Add(s.cfg.Timeouts.AgentDial.Duration))
	defer cancel()
	lg := logger(ctx, s.id)
	select {
	case <-ready:
		s.readyAt = time.Now()
		lg.WithField("after", time.Since(launch).Round(time.Millisecond)).Debug("agent reported ready")
	case <-s.vm.Done():
		return fmt.Errorf("VM exited before the agent reported ready\n%s", s.diagnostics())
	case <-s.fsd.Done():
		return fmt.Errorf("virtiofsd exited: %w\n%s", s.fsd.ExitError(), s.diagnostics())
	case <-dctx.Done():
		return fmt.Errorf("agent did not report ready on vsock port %d within %s: %w\n%s",
			api.ReadyPort, time.Since(launch).Round(time.Millisecond), dctx.Err(), s.diagnostics())
	}
	t := time.NewTicker(dialInterval)
	defer t.Stop()
	var lastErr error
	for attempt := 1; ; attempt++ {
		agent, err := s.dialAgent(dctx)
		if err == nil {
			s.agent = agent
			lg.WithField("attempts", attempt).Debug("agent answered")
			return nil
		}
		lastErr = err
		select {
		case <-s.vm.Done():
			return fmt.Errorf("VM exited before the agent answered (last: %w)\n%s", lastErr, s.diagnostics())
		case <-s.fsd.Done():
			return fmt.Errorf("virtiofsd exited: %w\n%s", s.fsd.ExitError(), s.diagnostics())
		case <-dctx.Done():
			return fmt.Errorf("no answer after %d attempts in %s: %w (last: %w)\n%s",
				attempt, time.Since(launch).Round(time.Millisecond), dctx.Err(), lastErr, s.diagnostics())
		case <-t.C:
		}
	}
}

// dialAgent makes one bounded attempt: connect to the agent port and ask
// for Health.
func (s *Sandbox) dialAgent(ctx context.Context) (*agentclient.Client, error) {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	return agentclient.Dial(actx, s.vsockPath(), agentclient.Options{RequestTimeout: s.cfg.Timeouts.AgentRequest.Duration, Observe: s.observe})
}

// diagnostics quotes the logs that explain a failed start.
func (s *Sandbox) diagnostics() string {
	var out string
	if s.vm != nil {
		if lt, ok := s.vm.(hypervisor.LogTailer); ok {
			out += "VMM log:\n" + lt.LogTail() + "\n"
		}
	}
	out += "console log:\n" + console.Tail(s.consolePath(), logTailLines)
	if s.fsd != nil {
		out += "\nvirtiofsd log:\n" + s.fsd.LogTail()
	}
	return out
}
