package qemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/proc"
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
		qemuPath = "qemu-system-x86_64"
	}
	vsockPath := d.VhostVsockPath
	if vsockPath == "" {
		vsockPath = "vhost-device-vsock"
	}
	v := &vm{
		cfg:         cfg,
		stopTimeout: d.StopTimeout,
		qmpPath:     filepath.Join(cfg.Dir, qmpSocketName),
		maxVCPUs:    max(d.MaxVCPUs, cfg.VCPUs),
		done:        make(chan struct{}),
		stopping:    make(chan struct{}),
	}
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

	vhostSock := filepath.Join(cfg.Dir, vhostVsockSocket)
	var err error
	v.vsockd, err = proc.Start(ctx, proc.Spec{
		Name: vhostVsockName,
		Dir:  cfg.Dir,
		Path: vsockPath,
		Args: []string{
			"--guest-cid", fmt.Sprint(guestCID),
			"--socket", vhostSock,
			"--uds-path", cfg.VsockSocket,
		},
	})
	if err != nil {
		return nil, err
	}
	if err := waitSocket(ctx, vhostSock, v.vsockd); err != nil {
		return nil, fmt.Errorf("vhost-device-vsock: %w", err)
	}

	args := buildArgs(cfg, accel, v.maxVCPUs)
	v.qemu, err = proc.Start(ctx, proc.Spec{
		Name:      qemuName,
		Dir:       cfg.Dir,
		Path:      qemuPath,
		Args:      args,
		NetNSPath: cfg.NetNSPath,
	})
	if err != nil {
		return nil, err
	}
	if err := waitQMP(ctx, v.qmpPath, v.qemu); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	log.G(ctx).WithFields(log.Fields{"pid": v.qemu.Pid(), "accel": accel}).Debug("qemu running")
	// The watcher outlives Start's ctx, keeping its logger.
	go v.watch(context.WithoutCancel(ctx))
	return v, nil
}

// waitSocket waits until the Unix socket path exists, failing at once
// when p exits. It does not connect: a vhost-user back-end serves one
// front-end, and a probe connection would count as that front-end.
func waitSocket(ctx context.Context, path string, p *proc.Process) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if st, err := os.Stat(path); err == nil && st.Mode().Type() == os.ModeSocket {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("exited before listening on %s: %w", path, p.ExitError())
		case <-ctx.Done():
			return fmt.Errorf("no socket %s: %w; log:\n%s", path, ctx.Err(), p.LogTail())
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
			return fmt.Errorf("qmp %s not ready: %w (last: %v); log:\n%s", path, ctx.Err(), lastErr, p.LogTail())
		case <-t.C:
		}
	}
}
