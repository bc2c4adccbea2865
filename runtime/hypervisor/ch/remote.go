package ch

import (
	"context"
	"path/filepath"

	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// Remote reaches the API of a cloud-hypervisor started by another process
// (the shim), through the API socket in the sandbox directory: enough for
// an operator tool to read the VM's state and counters.
type Remote struct{ api *httpAPI }

var (
	_ hypervisor.InfoReader     = (*Remote)(nil)
	_ hypervisor.CountersReader = (*Remote)(nil)
)

// Connect returns a client of the cloud-hypervisor whose sandbox directory
// is dir. It does not dial: every call does.
func Connect(dir string) *Remote {
	return &Remote{api: newHTTPAPI(filepath.Join(dir, apiSocketName), defaultAPITimeout)}
}

// Info is vm.info.
func (r *Remote) Info(ctx context.Context) (hypervisor.VMInfo, error) {
	return (&vm{api: r.api}).Info(ctx)
}

// Counters is vm.counters.
func (r *Remote) Counters(ctx context.Context) (map[string]map[string]int64, error) {
	return (&vm{api: r.api}).Counters(ctx)
}

// Close releases idle connections.
func (r *Remote) Close() { r.api.Close() }
