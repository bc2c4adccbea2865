package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// Default binaries, looked up on PATH when the Driver's paths are empty.
const (
	DefaultBinary           = "qemu-system-x86_64"
	DefaultVhostVsockBinary = "vhost-device-vsock"
)

// Process names: they name the log and pid files in the sandbox directory.
const (
	qemuName       = "qemu"
	vhostVsockName = "vhost-vsock"
)

// guestCID is the guest's vsock context id; each VM has its own
// vhost-device-vsock, so every guest can use the same one.
const guestCID = 3

// pollInterval paces the waits for sockets of freshly started helpers.
const pollInterval = 5 * time.Millisecond

// Driver starts QEMU VMs.
type Driver struct {
	// QEMUPath and VhostVsockPath are the binaries; empty means
	// qemu-system-x86_64 and vhost-device-vsock on PATH.
	QEMUPath       string
	VhostVsockPath string
	// StopTimeout bounds the graceful part of Stop.
	StopTimeout time.Duration
	// Accel is the accelerator; empty means DetectAccel().
	Accel Accel
	// MaxVCPUs, when above the VM's vCPUs, gives the VM that many vCPUs
	// of which the guest brings only VMConfig.VCPUs online at boot
	// (maxcpus=): microvm has no ACPI CPU hotplug, so Resize "plugs" a
	// vCPU by letting the guest online one that is present.
	MaxVCPUs uint32
}

var _ hypervisor.Hypervisor = (*Driver)(nil)

// Start launches vhost-device-vsock, then QEMU, and returns once QEMU
// answers on QMP. From then on the VM's Done closes when either exits,
// and the other one is stopped. On failure it stops what it started and the error holds
// the log tail of the process that failed.
func (d *Driver) Start(ctx context.Context, cfg hypervisor.VMConfig) (_ hypervisor.VM, retErr error) {
	accel := d.Accel
	if accel == "" {
		accel = DetectAccel()
	}
	qemuPath := d.QEMUPath
	if qemuPath == "" {
		qemuPath = DefaultBinary
	}
	vsockPath := d.VhostVsockPath
	if vsockPath == "" {
		vsockPath = DefaultVhostVsockBinary
	}
	v := d.newVM(cfg)
	defer func() {
		if retErr != nil {
			// Cleanup must run even when ctx expired.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := v.Stop(sctx); err != nil {
				log.G(ctx).WithError(err).Warn("qemu: rollback of failed start")
			}
		}
	}()

	var err error
	v.vsockd, err = startVsockd(ctx, cfg, vsockPath)
	if err != nil {
		return nil, err
	}
	vhostSock := filepath.Join(cfg.Dir, vhostVsockSocket)
	vsockConn, err := dialWhenListening(ctx, vhostSock, v.vsockd)
	if err != nil {
		return nil, fmt.Errorf("vhost-device-vsock: %w", err)
	}

	// Every endpoint QEMU uses is opened here and passed: it needs no
	// path in the state directory and no network namespace.
	files, fd, err := openEndpoints(ctx, cfg, v.qmpPath, vsockConn)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	defer files.close()
	go drainConsole(context.WithoutCancel(ctx), cfg.Console, files.console)

	spec := proc.Spec{
		Name:       qemuName,
		Dir:        cfg.Dir,
		Path:       qemuPath,
		ExtraFiles: files.passed,
		Cgroup:     cfg.Cgroup,
	}
	if cfg.Jail != nil {
		spec.Jail = qemuJail(cfg, accel)
	}
	spec.Args = buildArgs(cfg, accel, v.maxVCPUs, fd, spec.Jail != nil)
	v.qemu, err = proc.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := waitQMP(ctx, v.qmpPath, v.qemu); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	log.G(ctx).WithFields(log.Fields{"pid": v.qemu.Pid(), "accel": accel, "jailed": spec.Jail != nil}).Debug("qemu running")
	go v.watch(context.WithoutCancel(ctx))
	return v, nil
}

// newVM is the vm for cfg before its processes are started (Start) or
// adopted (Adopt): both take its settings from here, so that they cannot
// drift apart.
func (d *Driver) newVM(cfg hypervisor.VMConfig) *vm {
	return &vm{
		cfg:         cfg,
		stopTimeout: d.StopTimeout,
		qmpPath:     filepath.Join(cfg.Dir, qmpSocketName),
		maxVCPUs:    max(d.MaxVCPUs, cfg.VCPUs),
		done:        make(chan struct{}),
		stopping:    make(chan struct{}),
	}
}

// drainConsole keeps the guest's console until QEMU closes it.
func drainConsole(ctx context.Context, sink hypervisor.ConsoleSink, c net.Conn) {
	defer func() { _ = c.Close() }()
	if sink == nil {
		_, _ = io.Copy(io.Discard, c)
		return
	}
	if err := sink.Drain(ctx, c); err != nil {
		log.G(ctx).WithError(err).Warn("qemu: guest console")
	}
}

// dialWhenListening connects to the socket a freshly started helper
// makes, once it listens there (it binds before it listens).
func dialWhenListening(ctx context.Context, path string, p *proc.Process) (*net.UnixConn, error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		c, err := statedir.DialUnix(ctx, path)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, err
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("exited before listening on %s: %w", path, p.ExitError())
		case <-ctx.Done():
			return nil, fmt.Errorf("not listening on %s: %w (last: %w); log:\n%s", path, ctx.Err(), err, p.LogTail())
		case <-t.C:
		}
	}
}

// waitQMP waits until QEMU answers on its QMP socket, failing at once when
// it exits.
func waitQMP(ctx context.Context, path string, p *proc.Process) error {
	var lastErr error
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		q, err := dialQMP(actx, path)
		cancel()
		if err == nil {
			return q.Close()
		}
		lastErr = err
		select {
		case <-p.Done():
			return fmt.Errorf("exited during start: %w", p.ExitError())
		case <-ctx.Done():
			return fmt.Errorf("qmp %s not ready: %w (last: %w); log:\n%s", path, ctx.Err(), lastErr, p.LogTail())
		case <-t.C:
		}
	}
}
