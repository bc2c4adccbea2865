package qemu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// vsockPollInterval paces the device status queries of WaitVsock.
const vsockPollInterval = 10 * time.Millisecond

var _ hypervisor.VsockWaiter = (*vm)(nil)

// WaitVsock waits until QEMU has started the vhost-user vsock device, that
// is, until the guest driver set it up and QEMU handed the guest memory
// and vrings to vhost-device-vsock.
//
// Measured with vhost-device-vsock 0.3.0: a host connection whose CONNECT
// line arrives before the back-end has the guest memory makes its worker
// fail ("Received a backend event before vring initialization"), and the
// device never serves again (about 1 boot in 12 when dialing every 20 ms
// from launch). So the hybrid socket is used only after this returns.
func (v *vm) WaitVsock(ctx context.Context) error {
	q, err := dialQMP(ctx, v.qmpPath)
	if err != nil {
		return fmt.Errorf("vsock readiness: %w", err)
	}
	defer q.Close()
	stop := context.AfterFunc(ctx, func() { q.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	t := time.NewTicker(vsockPollInterval)
	defer t.Stop()
	for {
		var st struct {
			VhostStarted bool `json:"vhost-started"`
		}
		err := q.call("x-query-virtio-status", map[string]string{"path": vsockDevicePath}, &st)
		var qerr *qmpError
		switch {
		case errors.As(err, &qerr) && qerr.Class == "CommandNotFound":
			// QEMU < 7.2 cannot tell; proceed and hope.
			log.G(ctx).Warn("qemu lacks x-query-virtio-status: cannot wait for the vsock device")
			return nil
		case err != nil:
			if ctx.Err() != nil {
				return fmt.Errorf("vsock device not started: %w", ctx.Err())
			}
			return fmt.Errorf("vsock readiness: %w", err)
		case st.VhostStarted:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vsock device not started: %w", ctx.Err())
		case <-v.qemu.Done():
			return fmt.Errorf("vsock readiness: %w", v.qemu.ExitError())
		case <-t.C:
		}
	}
}
