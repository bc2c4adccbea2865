package qemu

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// QEMU run states (QMP query-status) that Pause and Resume go between.
const (
	statusRunning = "running"
	statusPaused  = "paused"
)

var _ hypervisor.Pauser = (*vm)(nil)

// Pause is QMP "stop": QEMU freezes the vCPUs and keeps running. A VM
// that is not running (already paused, or shutting down) is refused with
// errdefs.ErrFailedPrecondition, as Cloud Hypervisor refuses it.
func (v *vm) Pause(ctx context.Context) error {
	return v.transition(ctx, "stop", statusRunning)
}

// Resume is QMP "cont" on a paused VM; a VM that is not paused is refused
// with errdefs.ErrFailedPrecondition.
func (v *vm) Resume(ctx context.Context) error {
	return v.transition(ctx, "cont", statusPaused)
}

// transition runs cmd over one QMP connection when query-status says
// from, the state cmd leaves.
func (v *vm) transition(ctx context.Context, cmd, from string) error {
	q, err := dialQMP(ctx, v.qmpPath)
	if err != nil {
		return fmt.Errorf("qemu %s: qmp %s: %w", cmd, v.qmpPath, err)
	}
	defer func() { _ = q.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = q.Close() })
	defer stop()
	status, _, err := queryStatus(q)
	if err != nil {
		return fmt.Errorf("qemu %s: %w", cmd, err)
	}
	if status != from {
		return fmt.Errorf("qemu %s: the VM is %s, not %s: %w", cmd, status, from, errdefs.ErrFailedPrecondition)
	}
	if err := q.execute(cmd); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}

// queryStatus is QMP query-status: QEMU's run state ("running",
// "paused", ...) and the raw answer.
func queryStatus(q *qmp) (string, json.RawMessage, error) {
	var raw json.RawMessage
	if err := q.call("query-status", nil, &raw); err != nil {
		return "", nil, err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", nil, fmt.Errorf("query-status answer %s: %w", raw, err)
	}
	return st.Status, raw, nil
}
