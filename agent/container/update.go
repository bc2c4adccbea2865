package container

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Update applies an OCI LinuxResources (JSON) to a container's cgroup, the
// way `runc update` does: fields the request leaves out keep their values.
func (m *Manager) Update(ctx context.Context, id string, resources []byte) error {
	var r specs.LinuxResources
	if len(resources) == 0 {
		return fmt.Errorf("update container %s: no resources: %w", id, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(resources, &r); err != nil {
		return fmt.Errorf("update container %s: parse resources: %w: %w", id, err, errdefs.ErrInvalidArgument)
	}
	c, err := m.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed || c.box == nil {
		return fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	if err := c.box.update(&r); err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	log.G(ctx).WithField("container", id).Info("container resources updated")
	return nil
}

// applyResources copies what r sets onto res.
func applyResources(res *cgroups.Resources, r *specs.LinuxResources) {
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			res.Memory = *m.Limit
		}
		if m.Reservation != nil {
			res.MemoryReservation = *m.Reservation
		}
		if m.Swap != nil {
			res.MemorySwap = *m.Swap
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			res.CpuShares = *c.Shares
		}
		if c.Quota != nil {
			res.CpuQuota = *c.Quota
		}
		if c.Period != nil {
			res.CpuPeriod = *c.Period
		}
		if c.Cpus != "" {
			res.CpusetCpus = c.Cpus
		}
		if c.Mems != "" {
			res.CpusetMems = c.Mems
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		limit := *p.Limit
		res.PidsLimit = &limit
	}
	if len(r.Unified) > 0 {
		if res.Unified == nil {
			res.Unified = map[string]string{}
		}
		for k, v := range r.Unified {
			res.Unified[k] = v
		}
	}
}
