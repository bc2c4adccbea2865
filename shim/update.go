package shim

import (
	"context"
	"encoding/json"
	"fmt"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/veil-runtime/veil/agent/api"
)

// Resizer is a sandbox that can grow its VM while it runs (CPU and memory
// hotplug).
type Resizer interface {
	// Resize grows the VM to at least vcpus and memoryMiB (0 leaves a
	// value alone); it never shrinks it.
	Resize(ctx context.Context, vcpus uint32, memoryMiB uint64) error
}

// Update applies new resources to a container's cgroup in the guest. When
// the new limits exceed what the VM was booted with, a sandbox that can
// hotplug is grown first; one that cannot keeps its size, and the
// container's limits are bounded by the VM's.
func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	err := s.update(ctx, r)
	if err != nil {
		log.G(ctx).WithError(err).WithField("container", r.ID).Error("update")
	}
	return empty, toService(err)
}

func (s *service) update(ctx context.Context, r *taskAPI.UpdateTaskRequest) error {
	if _, err := s.getContainer(r.ID); err != nil {
		return err
	}
	if r.Resources == nil {
		return fmt.Errorf("update container %s: no resources: %w", r.ID, errdefs.ErrInvalidArgument)
	}
	v, err := typeurl.UnmarshalAny(r.Resources)
	if err != nil {
		return fmt.Errorf("update container %s: decode resources: %w: %w", r.ID, err, errdefs.ErrInvalidArgument)
	}
	res, ok := v.(*specs.LinuxResources)
	if !ok {
		return fmt.Errorf("update container %s: resources are %T, not Linux resources: %w", r.ID, v, errdefs.ErrInvalidArgument)
	}
	sb, err := s.sandbox()
	if err != nil {
		return err
	}
	if err := s.growFor(ctx, sb, res); err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("update container %s: encode resources: %w", r.ID, err)
	}
	if _, err := sb.Agent().UpdateContainer(ctx, &api.UpdateContainerRequest{ContainerId: r.ID, Resources: b}); err != nil {
		return fromAgent(err, "sandbox %s: update container %s", sb.ID(), r.ID)
	}
	return nil
}

// growFor hotplugs vCPUs and memory when res asks for more than the VM
// has: a CPU quota above the VM's vCPUs, or a memory limit above its
// memory.
func (s *service) growFor(ctx context.Context, sb Sandbox, res *specs.LinuxResources) error {
	cfg := sb.Config()
	vcpus, mem := wantedSize(res)
	if vcpus <= cfg.Guest.VCPUs && mem <= uint64(cfg.Guest.MemoryMiB) {
		return nil
	}
	rs, ok := sb.(Resizer)
	if !ok {
		log.G(ctx).WithFields(log.Fields{"vcpus": vcpus, "memory_mib": mem, "vm_vcpus": cfg.Guest.VCPUs, "vm_memory_mib": cfg.Guest.MemoryMiB}).
			Warn("limits exceed the VM's size and this hypervisor cannot hotplug: the VM's size bounds them")
		return nil
	}
	if err := rs.Resize(ctx, vcpus, mem); err != nil {
		if errdefs.IsNotImplemented(err) {
			log.G(ctx).WithError(err).Warn("limits exceed the VM's size: the VM's size bounds them")
			return nil
		}
		return fmt.Errorf("sandbox %s: hotplug to %d vCPUs, %d MiB: %w", sb.ID(), vcpus, mem, err)
	}
	return nil
}

// wantedSize is the VM size a container's limits need: vCPUs enough for
// its CPU quota, and MiB enough for its memory limit (0 when unlimited).
func wantedSize(res *specs.LinuxResources) (vcpus uint32, memoryMiB uint64) {
	if c := res.CPU; c != nil && c.Quota != nil && *c.Quota > 0 && c.Period != nil && *c.Period > 0 {
		q, p := uint64(*c.Quota), *c.Period
		vcpus = uint32((q + p - 1) / p)
	}
	if m := res.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
		memoryMiB = (uint64(*m.Limit) + (1<<20 - 1)) >> 20
	}
	return vcpus, memoryMiB
}
