package qemu

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// Remote reaches the QMP socket of a QEMU started by another process (the
// shim), in the sandbox directory: enough for an operator tool to read the
// VM's state. QEMU reports no device counters, so it is no
// hypervisor.CountersReader.
type Remote struct{ qmpPath string }

var _ hypervisor.InfoReader = (*Remote)(nil)

// Connect returns a client of the QEMU whose sandbox directory is dir. It
// does not dial: every call does.
func Connect(dir string) *Remote {
	return &Remote{qmpPath: filepath.Join(dir, qmpSocketName)}
}

// Info is QMP's query-status: State is QEMU's run state ("running",
// "paused", ...).
func (r *Remote) Info(ctx context.Context) (hypervisor.VMInfo, error) {
	q, err := dialQMP(ctx, r.qmpPath)
	if err != nil {
		return hypervisor.VMInfo{}, fmt.Errorf("qemu: qmp %s: %w", r.qmpPath, err)
	}
	defer func() { _ = q.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = q.Close() })
	defer stop()
	status, raw, err := queryStatus(q)
	if err != nil {
		return hypervisor.VMInfo{}, fmt.Errorf("qemu: %s: %w", r.qmpPath, err)
	}
	return hypervisor.VMInfo{State: status, Raw: raw}, nil
}
