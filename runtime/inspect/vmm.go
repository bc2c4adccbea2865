package inspect

import (
	"context"
	"fmt"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/hypervisor/registry"
)

// VMInfo is the VMM's view of a sandbox's VM.
type VMInfo struct {
	ID         string `json:"id"`
	Hypervisor string `json:"hypervisor"`
	hypervisor.VMInfo
}

// vmmClient reaches the VMM of sb through its API socket, as its
// hypervisor's registry entry does (QMP for QEMU, the HTTP API for Cloud
// Hypervisor). close releases it.
func vmmClient(sb SandboxInfo) (hypervisor.InfoReader, func(), error) {
	if sb.Hypervisor == "" {
		return nil, nil, fmt.Errorf("sandbox %s: no VMM pid file in %s", sb.ID, sb.Dir)
	}
	e, ok := registry.Lookup(sb.Hypervisor)
	if !ok {
		return nil, nil, fmt.Errorf("sandbox %s: unknown hypervisor %q", sb.ID, sb.Hypervisor)
	}
	r, closeFn := e.Connect(sb.Dir)
	return r, closeFn, nil
}

// VMInfo asks the VMM of sandbox id for the VM's state (QEMU:
// query-status; Cloud Hypervisor: vm.info).
func (r *Reader) VMInfo(ctx context.Context, id string) (VMInfo, error) {
	sb, err := r.Get(id)
	if err != nil {
		return VMInfo{}, err
	}
	if sb.State != StateRunning {
		return VMInfo{}, fmt.Errorf("sandbox %s: VMM is %s (pid %d)", id, sb.State, sb.VMMPid)
	}
	c, closeFn, err := vmmClient(sb)
	if err != nil {
		return VMInfo{}, err
	}
	defer closeFn()
	info, err := c.Info(ctx)
	if err != nil {
		return VMInfo{}, fmt.Errorf("sandbox %s: %w", id, err)
	}
	return VMInfo{ID: id, Hypervisor: sb.Hypervisor, VMInfo: info}, nil
}
