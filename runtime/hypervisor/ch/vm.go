package ch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/generated/models"
	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/proc"
)

// errVMMExited cancels the start steps when cloud-hypervisor exits.
var errVMMExited = errors.New("cloud-hypervisor exited")

// vm is a running cloud-hypervisor process and the VM inside it.
type vm struct {
	cfg hypervisor.VMConfig
	// layout shows the host to a jailed VMM (nil: not jailed); paths are
	// what the VMM is given.
	layout *jailLayout
	paths  vmmPaths
	// apiSock and consoleSock are the host's paths of its sockets.
	apiSock     string
	consoleSock string
	stopTimeout time.Duration
	apiTimeout  time.Duration
	bootTimeout time.Duration
	api         *httpAPI
	proc        *proc.Process  // nil until started
	console     *serialConsole // nil until attached

	stopOnce sync.Once
	stopErr  error
}

var (
	_ hypervisor.VM        = (*vm)(nil)
	_ hypervisor.LogTailer = (*vm)(nil)
)

func (v *vm) Pid() int { return v.proc.Pid() }

func (v *vm) Done() <-chan struct{} { return v.proc.Done() }

// LogTail is the end of cloud-hypervisor's own output (not the console).
func (v *vm) LogTail() string {
	if v.proc == nil {
		return "cloud-hypervisor: (not started)"
	}
	return "cloud-hypervisor:\n" + v.proc.LogTail()
}

// untilExit derives a context that is cancelled (cause errVMMExited) as
// soon as the VMM process exits.
func (v *vm) untilExit(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-v.proc.Done():
			cancel(errVMMExited)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// startError explains a failed start step: when the VMM died, how it died
// and its log tail; otherwise the step's error and the log tail.
func (v *vm) startError(err error) error {
	select {
	case <-v.proc.Done():
		return fmt.Errorf("%w; %w", err, v.proc.ExitError())
	default:
	}
	return fmt.Errorf("%w; log %s:\n%s", err, v.proc.LogPath(), v.proc.LogTail())
}

// waitReady polls vmm.ping until the API answers, the VMM exits, ctx ends
// or timeout passes.
func (v *vm) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		_, err := v.api.Ping(ctx)
		if err == nil {
			return nil
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			// The server is up and refused: polling will not help.
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cloud-hypervisor API %s not ready: %w (last: %w)", v.apiSock, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// wantState checks that vm.info reports state right after step.
func (v *vm) wantState(ctx context.Context, want models.VMState, step string) error {
	info, err := v.api.Info(ctx)
	if err != nil {
		return err
	}
	if got := stateOf(info); got != string(want) {
		return fmt.Errorf("cloud-hypervisor: VM is %s after %s, want %s", got, step, want)
	}
	return nil
}

// waitRunning polls vm.info until the VM is Running, for at most the
// boot timeout. An answer that ends with the wait reports the last state.
func (v *vm) waitRunning(ctx context.Context, step string) error {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, v.bootTimeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	state := "(unknown)"
	for {
		info, err := v.api.Info(ctx)
		switch {
		case err == nil:
			state = stateOf(info)
			if state == string(models.VMStateRunning) {
				return nil
			}
		case ctx.Err() == nil:
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cloud-hypervisor: VM still %s, not Running, %v after %s: %w",
				state, time.Since(begin).Round(10*time.Millisecond), step, context.Cause(ctx))
		case <-t.C:
		}
	}
}

func stateOf(info *models.VMInfo) string {
	if info == nil || info.State == nil {
		return "(no state)"
	}
	return string(*info.State)
}

// Stop asks the VMM to shut down (vmm.shutdown), waits up to the stop
// timeout for it to exit, then kills it; it lets the console's last bytes
// reach the sink and removes the API, console and vsock sockets and the
// pid file. It is idempotent.
func (v *vm) Stop(ctx context.Context) error {
	v.stopOnce.Do(func() { v.stopErr = v.stop(ctx) })
	return v.stopErr
}

func (v *vm) stop(ctx context.Context) error {
	var errs []error
	if v.proc != nil {
		select {
		case <-v.proc.Done():
		default:
			if err := v.shutdown(ctx); err != nil {
				select {
				case <-v.proc.Done(): // it was exiting anyway
				default:
					log.G(ctx).WithError(err).Warn("cloud-hypervisor: graceful shutdown failed, killing")
				}
			}
		}
		// SIGKILL when the VMM still runs; removes the pid file.
		if err := v.proc.Stop(ctx, 0); err != nil {
			errs = append(errs, err)
		}
	}
	v.api.Close()
	v.closeConsole()
	for _, p := range []string{v.apiSock, v.consoleSock, v.cfg.VsockSocket} {
		if p == "" {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// shutdown sends vmm.shutdown and waits up to the stop timeout for the
// process to exit. CH may exit before it answers, so a failed call is
// followed by the wait too, unless the request never reached CH.
func (v *vm) shutdown(ctx context.Context) error {
	err := v.api.ShutdownVMM(ctx)
	var opErr *net.OpError
	if err != nil && errors.As(err, &opErr) && opErr.Op == "dial" {
		return err
	}
	t := time.NewTimer(v.stopTimeout)
	defer t.Stop()
	select {
	case <-v.proc.Done():
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	if err != nil {
		return fmt.Errorf("pid %d still runs %v after vmm.shutdown (%w)", v.proc.Pid(), v.stopTimeout, err)
	}
	return fmt.Errorf("pid %d still runs %v after vmm.shutdown", v.proc.Pid(), v.stopTimeout)
}
