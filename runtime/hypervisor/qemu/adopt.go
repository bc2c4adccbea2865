package qemu

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/proc"
)

// adoptQMPTimeout bounds Adopt's wait for QEMU to answer on QMP: it has
// been running for a while, so it answers at once or not at all.
const adoptQMPTimeout = 5 * time.Second

// Driver can take over a VM that another process started (the warm
// pool's keeper starts it, the shim adopts it). runtime/hypervisor has no
// interface for that; this assertion pins Adopt's signature for its
// callers.
var _ interface {
	Adopt(ctx context.Context, cfg hypervisor.VMConfig) (hypervisor.VM, error)
} = (*Driver)(nil)

// Adopt returns the VM that Start ran, in another process, with the same
// cfg and Driver settings: the QEMU and vhost-device-vsock running in
// cfg.Dir are adopted (proc.Adopt: this process learns of their exits
// and can stop them, but not their exit status) and QEMU must answer on
// QMP. From then on the VM behaves as one Start returned: Done closes
// when either process exits, and the survivor is then stopped. The
// guest's console is not drained here (the starting process keeps doing
// that): cfg.Console is ignored. On failure both processes are left
// running, since Adopt did not start them, and the error says which one
// could not be adopted, or that QMP did not answer.
func (d *Driver) Adopt(ctx context.Context, cfg hypervisor.VMConfig) (_ hypervisor.VM, retErr error) {
	v := d.newVM(cfg)
	defer func() {
		if retErr != nil {
			for _, p := range []*proc.Process{v.vsockd, v.qemu} {
				if p != nil {
					p.Release()
				}
			}
		}
	}()
	var err error
	if v.vsockd, err = proc.Adopt(ctx, proc.Spec{Name: vhostVsockName, Dir: cfg.Dir}); err != nil {
		return nil, fmt.Errorf("qemu: adopt vhost-device-vsock: %w", err)
	}
	if v.qemu, err = proc.Adopt(ctx, proc.Spec{Name: qemuName, Dir: cfg.Dir}); err != nil {
		return nil, fmt.Errorf("qemu: adopt: %w", err)
	}
	qctx, cancel := context.WithTimeout(ctx, adoptQMPTimeout)
	err = waitQMP(qctx, v.qmpPath, v.qemu)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("qemu: adopt pid %d: %w", v.qemu.Pid(), err)
	}
	log.G(ctx).WithFields(log.Fields{"pid": v.qemu.Pid(), "vhost-device-vsock": v.vsockd.Pid()}).Debug("qemu adopted")
	go v.watch(context.WithoutCancel(ctx))
	return v, nil
}
