package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/proc"
)

// quitTimeout bounds the QMP "quit" exchange.
const quitTimeout = time.Second

// helperDeathStopTimeout bounds the stop of the survivor after QEMU or
// vhost-device-vsock died.
const helperDeathStopTimeout = 10 * time.Second

// vm is a running QEMU and its vhost-device-vsock. The guest is usable
// only while both run: without the vsock daemon every agent RPC fails, so
// the VM counts as dead when either exits.
type vm struct {
	cfg         hypervisor.VMConfig
	stopTimeout time.Duration
	qmpPath     string
	// maxVCPUs is how many vCPUs QEMU has, cfg.VCPUs of them online at boot.
	maxVCPUs uint32
	qemu     *proc.Process // nil until started
	vsockd   *proc.Process // nil until started

	done     chan struct{} // closed by watch when either process exited
	stopping chan struct{} // closed when stop begins

	stopOnce sync.Once
	stopErr  error
}

var (
	_ hypervisor.VM         = (*vm)(nil)
	_ hypervisor.HelperPids = (*vm)(nil)
	_ hypervisor.LogTailer  = (*vm)(nil)
	_ hypervisor.Resizer    = (*vm)(nil)
)

func (v *vm) Pid() int { return v.qemu.Pid() }

// Done is closed when QEMU or vhost-device-vsock exited; the survivor is
// then stopped by watch.
func (v *vm) Done() <-chan struct{} { return v.done }

// watch closes done when QEMU or vhost-device-vsock exits. Unless Stop
// caused the exit, it logs the dead process's exit with its log tail and
// stops the VM: QEMU is killed when the vsock daemon died (its guest can
// no longer be reached), the daemon is stopped when QEMU died.
func (v *vm) watch(ctx context.Context) {
	var dead *proc.Process
	name := qemuName
	select {
	case <-v.qemu.Done():
		dead = v.qemu
	case <-v.vsockd.Done():
		dead, name = v.vsockd, vhostVsockName
	}
	close(v.done)
	select {
	case <-v.stopping:
		return // Stop ends both
	default:
	}
	lg := log.G(ctx).WithField("vm", v.cfg.ID)
	lg.WithError(dead.ExitError()).Errorf("%s died: stopping the VM", name)
	sctx, cancel := context.WithTimeout(ctx, helperDeathStopTimeout)
	defer cancel()
	if dead == v.vsockd {
		if err := v.qemu.Kill(sctx); err != nil {
			lg.WithError(err).Warn("kill qemu after vhost-device-vsock died")
		}
	}
	if err := v.Stop(sctx); err != nil {
		lg.WithError(err).Warn("stop VM after a helper died")
	}
}

func (v *vm) HelperPids() map[string]int {
	return map[string]int{"vhost-device-vsock": v.vsockd.Pid()}
}

// Stop asks QEMU to quit over QMP, waits up to the stop timeout, then
// kills it; then it stops vhost-device-vsock and removes the sockets.
func (v *vm) Stop(ctx context.Context) error {
	v.stopOnce.Do(func() { v.stopErr = v.stop(ctx) })
	return v.stopErr
}

func (v *vm) stop(ctx context.Context) error {
	close(v.stopping)
	var errs []error
	if v.qemu != nil {
		select {
		case <-v.qemu.Done():
		default:
			if err := v.quit(ctx); err != nil {
				select {
				case <-v.qemu.Done(): // it was exiting anyway
				default:
					log.G(ctx).WithError(err).Warn("qemu: graceful quit failed, killing")
				}
			}
		}
		// Stop escalates to SIGKILL when quit did not end QEMU in time.
		if err := v.qemu.Stop(ctx, 0); err != nil {
			errs = append(errs, err)
		}
	}
	if v.vsockd != nil {
		if err := v.vsockd.Stop(ctx, 0); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range []string{v.qmpPath, filepath.Join(v.cfg.Dir, vhostVsockSocket), v.cfg.VsockSocket} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// quit sends QMP "quit" and waits up to the stop timeout for QEMU to exit.
func (v *vm) quit(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, quitTimeout)
	q, err := dialQMP(qctx, v.qmpPath)
	cancel()
	if err != nil {
		return err
	}
	defer func() { _ = q.Close() }()
	_ = q.conn.SetDeadline(time.Now().Add(quitTimeout))
	// QEMU may close the connection before it answers: the exit is what counts.
	qerr := q.execute("quit")
	t := time.NewTimer(v.stopTimeout)
	defer t.Stop()
	select {
	case <-v.qemu.Done():
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	if qerr != nil {
		return fmt.Errorf("pid %d still runs after quit (%w)", v.qemu.Pid(), qerr)
	}
	return fmt.Errorf("pid %d still runs after quit", v.qemu.Pid())
}

// LogTail is the end of QEMU's own log (its stderr, not the console) and
// of vhost-device-vsock's.
func (v *vm) LogTail() string {
	out := "qemu: (not started)"
	if v.qemu != nil {
		out = "qemu:\n" + v.qemu.LogTail()
	}
	if v.vsockd != nil {
		out += "\nvhost-device-vsock:\n" + v.vsockd.LogTail()
	}
	return out
}

// Resize grows the VM's online vCPUs up to the vCPUs it was started with
// (Driver.MaxVCPUs): they are present, and the guest onlines them (the
// caller asks the agent). Memory cannot grow: microvm has no memory
// hotplug.
func (v *vm) Resize(ctx context.Context, r hypervisor.Resize) error {
	if r.MemoryMiB > v.cfg.MemoryMiB {
		return fmt.Errorf("qemu: grow memory to %d MiB: microvm has no memory hotplug (boot size %d MiB): %w", r.MemoryMiB, v.cfg.MemoryMiB, errdefs.ErrNotImplemented)
	}
	if r.VCPUs > v.maxVCPUs {
		return fmt.Errorf("qemu: %d vCPUs: the VM has %d (guest.max_vcpus): %w", r.VCPUs, v.maxVCPUs, errdefs.ErrOutOfRange)
	}
	return nil
}
