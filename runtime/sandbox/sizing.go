package sandbox

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// FitResources is the VM sizing policy for a container's new limits res:
// when they ask for more than the VM was booted with (a CPU quota above
// its vCPUs, a memory limit above its memory), the VM is grown by
// hotplug (Resize). A hypervisor that cannot hotplug, or cannot grow
// what is asked, leaves the VM at its size with a warning: the VM's size
// then bounds the container's limits. Only a failed hotplug is an error.
func (s *Sandbox) FitResources(ctx context.Context, res *specs.LinuxResources) error {
	cfg := s.cfg
	vcpus, mem := wantedSize(res)
	if vcpus <= cfg.Guest.VCPUs && mem <= uint64(cfg.Guest.MemoryMiB) {
		return nil
	}
	if _, ok := s.vm.(hypervisor.Resizer); !ok {
		log.G(ctx).WithFields(log.Fields{"vcpus": vcpus, "memory_mib": mem, "vm_vcpus": cfg.Guest.VCPUs, "vm_memory_mib": cfg.Guest.MemoryMiB}).
			Warn("limits exceed the VM's size and this hypervisor cannot hotplug: the VM's size bounds them")
		return nil
	}
	if err := s.Resize(ctx, vcpus, mem); err != nil {
		if errdefs.IsNotImplemented(err) {
			log.G(ctx).WithError(err).Warn("limits exceed the VM's size: the VM's size bounds them")
			return nil
		}
		return fmt.Errorf("sandbox %s: hotplug to %d vCPUs, %d MiB: %w", s.id, vcpus, mem, err)
	}
	return nil
}

// wantedSize is the VM size a container's limits need: vCPUs enough for
// its CPU quota, and MiB enough for its memory limit (0 when unlimited).
func wantedSize(res *specs.LinuxResources) (vcpus uint32, memoryMiB uint64) {
	if res == nil {
		return 0, 0
	}
	if c := res.CPU; c != nil && c.Quota != nil && *c.Quota > 0 && c.Period != nil && *c.Period > 0 {
		q, p := uint64(*c.Quota), *c.Period
		vcpus = uint32((q + p - 1) / p)
	}
	if m := res.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
		memoryMiB = (uint64(*m.Limit) + (1<<20 - 1)) >> 20
	}
	return vcpus, memoryMiB
}
